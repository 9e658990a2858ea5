// bench_vae: training steps/s and memory of the MIG-Vis VAE (worker/vae) at
// batch 256 and 1024, against the reference code's formulation of the group-TC
// estimator (elementwise over a [B, B, D] tensor) as a plain PyTorch loop
// (bench/python/bench_vae.py, run with /usr/bin/python3 in the same run) and as
// a C++ loop (vae::group_tc_reference), so the ratio splits into language and
// formulation. Memory per step: the peak resident set over the timed steps
// minus the resident set before them (Linux: /proc/self/clear_refs resets the
// peak), and the size of the estimator's largest temporary.
// Prints a table and, with --json FILE, writes the figures as JSON.
//
//   build/bench/bench_vae [--steps 100] [--batch 256 --batch 1024] [--threads 1]
//                         [--neurons 168] [--json out.json] [--python bench/python/bench_vae.py]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "worker/vae/vae.h"

namespace {

using namespace migvis;

// kB from a "Key:   123 kB" line of /proc/self/status; -1 if absent.
double status_kb(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream is(line.substr(key.size() + 1));
      double v = -1;
      is >> v;
      return v;
    }
  return -1;
}

// Resets the peak resident set (VmHWM) to the current one; false if the kernel refuses.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

struct Measure {
  double steps_per_s = 0;
  double peak_rss_delta_mb = -1;  // -1: not measurable here
};

Measure cpp_measure(bool reference_tc, int threads, int64_t neurons, int64_t batch, int steps, int warmup) {
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
    auto out = model->forward(x);
    torch::Tensor total;
    if (!reference_tc) {
      total = vae::vae_loss(out, x, pose, cat, o, w).total;  // the training step the vae stage runs
    } else {  // the same objective with the [B, B, D] estimator
      vae::LossWeights plain = w;
      plain.model = vae::ModelKind::kVae;
      auto p = vae::vae_loss(out, x, pose, cat, o, plain);
      total = p.recon + w.w_kl * p.kl + w.w_tc * vae::group_tc_reference(out.z, out.mu, out.logvar, o.group_rank) +
              w.w_guid * (torch::mse_loss(out.pose_hat, pose) +
                          0.1 * torch::nn::functional::cross_entropy(out.class_logits, cat));
    }
    total.backward();
    opt.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  Measure m;
  const bool peak_ok = reset_peak_rss();
  const double rss0 = status_kb("VmRSS");
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  m.steps_per_s = steps / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double hwm = status_kb("VmHWM");
  if (peak_ok && rss0 > 0 && hwm > 0) m.peak_rss_delta_mb = (hwm - rss0) / 1024.0;
  return m;
}

Measure python_measure(const std::string& script, int threads, int64_t neurons, int64_t batch, int steps, int warmup,
                       double w_tc) {
  std::string cmd =
      fmt::format("/usr/bin/python3 {} --threads {} --neurons {} --batch {} --steps {} --warmup {} --w-tc {}", script,
                  threads, neurons, batch, steps, warmup, w_tc);
  Measure m;
  m.steps_per_s = -1;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return m;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  if (pclose(p) != 0) return m;
  try {
    auto j = nlohmann::json::parse(out.substr(out.rfind('{')));
    m.steps_per_s = j["steps_per_s"].get<double>();
    if (j.contains("peak_rss_delta_mb") && !j["peak_rss_delta_mb"].is_null())
      m.peak_rss_delta_mb = j["peak_rss_delta_mb"].get<double>();
  } catch (...) {
    m.steps_per_s = -1;
  }
  return m;
}

nlohmann::json opt_num(double v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(); }
std::string opt_str(double v, const char* f) { return v >= 0 ? fmt::format(fmt::runtime(f), v) : "n/a"; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_vae: MIG-Vis VAE training steps/s and memory, C++ (LibTorch) vs the reference formulation"};
  int steps = 100, warmup = 5;
  int64_t neurons = 168;
  std::vector<int64_t> batches = {256, 1024};
  std::string json_path, script = "bench/python/bench_vae.py";
  std::vector<int> thread_counts = {1};
  app.add_option("--steps", steps, "timed steps per measurement at batch 256 (scaled by 256 / batch, at least 10)");
  app.add_option("--warmup", warmup, "untimed steps first");
  app.add_option("--neurons", neurons, "neurons (input/output width)");
  app.add_option("--batch", batches, "batch sizes");
  app.add_option("--threads", thread_counts, "thread counts to measure");
  app.add_option("--python", script, "the Python reference script (empty: skip)");
  app.add_option("--json", json_path, "write results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  vae::VaeOptions o;
  const vae::LossWeights w;
  const int64_t d = o.latent_dim(), g = o.groups;
  nlohmann::json rows = nlohmann::json::array();
  std::cout << fmt::format("{:>5} {:>3} | {:>10} {:>10} {:>10} | {:>7} {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>9}\n",
                           "batch", "thr", "C++ st/s", "C++ref st/s", "Py-ref st/s", "C++/Py", "C++/ref", "C++ dRSS",
                           "C++ref dRSS", "Py dRSS", "tmp MB", "ref tmp MB");
  for (int64_t batch : batches) {
    const int n = std::max<int>(10, static_cast<int>(steps * 256 / batch));
    // Largest temporary of the estimator: [G, B, B] float64 vs [B, B, D] float32.
    const double tmp_mb = static_cast<double>(g * batch * batch * 8) / (1 << 20);
    const double ref_tmp_mb = static_cast<double>(batch * batch * d * 4) / (1 << 20);
    for (int t : thread_counts) {
      auto c = cpp_measure(false, t, neurons, batch, n, warmup);
      auto cr = cpp_measure(true, t, neurons, batch, n, warmup);
      Measure py;
      py.steps_per_s = -1;
      if (!script.empty()) py = python_measure(script, t, neurons, batch, n, warmup, w.w_tc);
      const double r_py = py.steps_per_s > 0 ? c.steps_per_s / py.steps_per_s : -1;
      const double r_ref = c.steps_per_s / cr.steps_per_s;
      std::cout << fmt::format("{:>5} {:>3} | {:>10.1f} {:>10.1f} {:>10} | {:>7} {:>7.2f} | {:>9} {:>9} {:>9} | {:>9.1f} {:>9.1f}\n",
                               batch, t, c.steps_per_s, cr.steps_per_s, opt_str(py.steps_per_s, "{:.1f}"),
                               opt_str(r_py, "{:.2f}"), r_ref, opt_str(c.peak_rss_delta_mb, "{:.1f}"),
                               opt_str(cr.peak_rss_delta_mb, "{:.1f}"), opt_str(py.peak_rss_delta_mb, "{:.1f}"), tmp_mb,
                               ref_tmp_mb);
      rows.push_back({{"benchmark", "vae_train_step"}, {"threads", t}, {"batch", batch}, {"neurons", neurons},
                      {"steps", n}, {"cpp_steps_per_s", c.steps_per_s}, {"cpp_reference_tc_steps_per_s", cr.steps_per_s},
                      {"python_reference_steps_per_s", opt_num(py.steps_per_s)},
                      {"ratio_cpp_over_python_reference", opt_num(r_py)}, {"ratio_cpp_over_cpp_reference", r_ref},
                      {"cpp_peak_rss_delta_mb", opt_num(c.peak_rss_delta_mb)},
                      {"cpp_reference_peak_rss_delta_mb", opt_num(cr.peak_rss_delta_mb)},
                      {"python_reference_peak_rss_delta_mb", opt_num(py.peak_rss_delta_mb)},
                      {"tc_largest_temporary_mb", tmp_mb}, {"reference_tc_largest_temporary_mb", ref_tmp_mb}});
    }
  }
  if (!json_path.empty()) {
    nlohmann::json doc = {{"bench", "bench_vae"}, {"w_tc", w.w_tc}, {"results", rows}};
    Status st = write_file_atomic(json_path, doc.dump(2) + "\n");
    if (!st.ok()) {
      std::cerr << st.to_string() << "\n";
      return 1;
    }
  }
  return 0;
}
