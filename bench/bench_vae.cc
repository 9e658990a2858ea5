// bench_vae: training steps/s of the MIG-Vis VAE (worker/vae) at batch 256 on
// 1 and 2 threads, against the same model as a plain PyTorch loop
// (bench/python/bench_vae.py, run with /usr/bin/python3 in the same run).
// Prints a table and, with --json FILE, writes the figures as JSON.
//
//   build/bench/bench_vae [--steps 200] [--neurons 168] [--json out.json]
//                         [--python bench/python/bench_vae.py]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "worker/vae/vae.h"

namespace {

using namespace migvis;

double cpp_steps_per_s(int threads, int64_t neurons, int64_t batch, int steps, int warmup) {
  at::set_num_threads(threads);
  torch::manual_seed(0);
  vae::VaeOptions o;
  o.session_neurons = {neurons};
  vae::Vae model(o);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(1e-5));
  auto x = torch::randn({batch, neurons});
  auto pose = torch::randn({batch, o.pose_dims});
  auto cat = torch::randint(o.n_classes, {batch}, torch::kInt64);
  vae::LossWeights w;  // migvis defaults: recon + supervision + KL + group TC
  auto step = [&] {
    opt.zero_grad();
    auto parts = vae::vae_loss(model->forward(x), x, pose, cat, o, w);
    parts.total.backward();
    opt.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  return steps / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double python_steps_per_s(const std::string& script, int threads, int64_t neurons, int64_t batch, int steps,
                          int warmup) {
  std::string cmd = fmt::format("/usr/bin/python3 {} --threads {} --neurons {} --batch {} --steps {} --warmup {}",
                                script, threads, neurons, batch, steps, warmup);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  if (pclose(p) != 0) return -1;
  try {
    return nlohmann::json::parse(out.substr(out.rfind('{')))["steps_per_s"].get<double>();
  } catch (...) {
    return -1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_vae: MIG-Vis VAE training steps/s, C++ (LibTorch) vs Python (PyTorch)"};
  int steps = 200, warmup = 10;
  int64_t neurons = 168, batch = 256;
  std::string json_path, script = "bench/python/bench_vae.py";
  std::vector<int> thread_counts = {1, 2};
  app.add_option("--steps", steps, "timed steps per measurement");
  app.add_option("--warmup", warmup, "untimed steps first");
  app.add_option("--neurons", neurons, "neurons (input/output width)");
  app.add_option("--batch", batch, "batch size");
  app.add_option("--threads", thread_counts, "thread counts to measure");
  app.add_option("--python", script, "the Python reference script (empty: skip)");
  app.add_option("--json", json_path, "write results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  nlohmann::json rows = nlohmann::json::array();
  std::cout << fmt::format("{:<34} {:>7} {:>12} {:>12} {:>8}\n", "benchmark", "threads", "C++ steps/s", "Py steps/s",
                           "C++/Py");
  for (int t : thread_counts) {
    double c = cpp_steps_per_s(t, neurons, batch, steps, warmup);
    double py = script.empty() ? -1 : python_steps_per_s(script, t, neurons, batch, steps, warmup);
    double ratio = py > 0 ? c / py : 0;
    std::cout << fmt::format("{:<34} {:>7} {:>12.1f} {:>12} {:>8}\n", fmt::format("vae train (bs {}, M {})", batch, neurons),
                             t, c, py > 0 ? fmt::format("{:.1f}", py) : "n/a",
                             py > 0 ? fmt::format("{:.2f}", ratio) : "n/a");
    rows.push_back({{"benchmark", "vae_train_steps_per_s"}, {"threads", t}, {"batch", batch}, {"neurons", neurons},
                    {"cpp_steps_per_s", c}, {"python_steps_per_s", py > 0 ? nlohmann::json(py) : nlohmann::json()},
                    {"ratio_cpp_over_python", py > 0 ? nlohmann::json(ratio) : nlohmann::json()}});
  }
  if (!json_path.empty()) {
    nlohmann::json doc = {{"bench", "bench_vae"}, {"steps", steps}, {"results", rows}};
    Status st = write_file_atomic(json_path, doc.dump(2) + "\n");
    if (!st.ok()) {
      std::cerr << st.to_string() << "\n";
      return 1;
    }
  }
  return 0;
}
