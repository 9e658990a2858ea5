// bench_unet: diffusion UNet (worker/diffusion/unet.h) training images/s at 1 and
// 2 threads and DDIM step time, against the same UNet in plain PyTorch
// (bench/python/bench_unet.py, run with /usr/bin/python3 in the same run).
// Prints a table; writes JSON to --json (default bench_unet.json).
//   build/bench/bench_unet [--batch 64] [--train-steps 3] [--fwd-steps 5] [--json out.json]
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/diffusion/schedule.h"
#include "worker/diffusion/unet.h"

using namespace migvis::worker::diffusion;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 64, train_steps = 3, fwd_steps = 5;
  std::string json_path = "bench_unet.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--batch") batch = std::stoll(v);
    else if (k == "--train-steps") train_steps = std::stoll(v);
    else if (k == "--fwd-steps") fwd_steps = std::stoll(v);
    else if (k == "--json") json_path = v;
  }
  UNetOptions uo;  // CPU default: 32x32, width 32, mults (1,2,2)
  torch::manual_seed(0);
  UNet net(uo);
  NoiseSchedule s;
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(2e-4).betas({0.9, 0.99}));
  torch::Tensor x0 = torch::rand({batch, 1, uo.image_size, uo.image_size}) * 2 - 1;
  nlohmann::json cpp = {{"params", net->num_parameters()}};
  for (int th : {1, 2}) {
    at::set_num_threads(th);
    auto train_step = [&] {
      torch::Tensor t = torch::randint(0, s.timesteps(), {batch}, torch::kLong);
      torch::Tensor noise = torch::randn_like(x0);
      torch::Tensor loss = diffusion_loss(s, net->forward(q_sample(s, x0, t, noise), t).pred, noise, t).loss;
      opt.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
      opt.step();
    };
    train_step();
    double t0 = now_s();
    for (int64_t i = 0; i < train_steps; ++i) train_step();
    cpp["train_img_s"][std::to_string(th)] = static_cast<double>(batch * train_steps) / (now_s() - t0);
    auto ddim = [&](const torch::Tensor& x) {
      torch::NoGradGuard g;
      torch::Tensor eps = net->forward(x, torch::full({batch}, 100, torch::kLong)).pred;
      return ddim_step(s, x, eps, 100, 97, 0.0, torch::Tensor());
    };
    torch::Tensor x = torch::randn_like(x0);
    x = ddim(x);
    t0 = now_s();
    for (int64_t i = 0; i < fwd_steps; ++i) x = ddim(x);
    cpp["ddim_step_s"][std::to_string(th)] = (now_s() - t0) / static_cast<double>(fwd_steps);
  }
  std::string py_cmd = fmt::format(
      "/usr/bin/python3 {}/bench/python/bench_unet.py --width {} --mults 1,2,2 --size {} --batch {} "
      "--train-steps {} --fwd-steps {} --threads 1,2",
      MIGVIS_SOURCE_DIR, uo.width, uo.image_size, batch, train_steps, fwd_steps);
  nlohmann::json py;
  try {
    std::string out = run(py_cmd + " 2>/dev/null");
    py = nlohmann::json::parse(out.substr(out.find('{')));
  } catch (const std::exception& e) {
    fmt::print(stderr, "python reference failed ({}); C++ numbers only\n", e.what());
  }
  fmt::print("UNet 32x32x1, width 32, mults (1,2,2), batch {}: C++ {} params, Python {} params\n", batch,
             cpp["params"].get<int64_t>(), py.contains("params") ? py["params"].dump() : "n/a");
  fmt::print("| benchmark | threads | C++ | Python | C++/Py |\n|---|---|---|---|---|\n");
  nlohmann::json rows = nlohmann::json::array();
  for (const char* key : {"train_img_s", "ddim_step_s"})
    for (const char* th : {"1", "2"}) {
      double c = cpp[key][th].get<double>();
      double p = py.contains(key) ? py[key][th].get<double>() : 0.0;
      // Ratio > 1 means C++ is faster (speed for img/s, inverse for seconds).
      double ratio = p > 0 ? (std::string(key) == "train_img_s" ? c / p : p / c) : 0.0;
      fmt::print("| {} | {} | {:.4g} | {:.4g} | {:.2f} |\n",
                 std::string(key) == "train_img_s" ? "UNet train images/s" : "DDIM step s (batch 64)", th, c, p, ratio);
      rows.push_back({{"benchmark", key}, {"threads", std::stoi(th)}, {"cpp", c}, {"python", p}, {"speed_ratio_cpp_over_py", ratio}});
    }
  nlohmann::json j = {{"bench", "unet"}, {"batch", batch}, {"image_size", uo.image_size}, {"width", uo.width},
                      {"cpp", cpp}, {"python", py}, {"rows", rows}};
  std::ofstream(json_path) << j.dump(2) << "\n";
  fmt::print("wrote {}\n", json_path);
  return 0;
}
