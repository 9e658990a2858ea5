// bench_unet: diffusion UNet (worker/diffusion/unet.h) training images/s at 1 and
// 2 threads and DDIM step time, against the same UNet in plain PyTorch
// (bench/python/bench_unet.py, run with /usr/bin/python3 in the same run).
// Also the figure against the machine's limit: the train step's achieved
// GFLOP/s next to one large dense fp32 torch::mm at the same threads (their
// ratio is what to improve), and two things LibTorch offers for CPU convs:
// channels-last memory format (train step) and InferenceMode instead of
// NoGradGuard (DDIM step).
//
// FLOPs are counted, not estimated by hand: a RecordFunction observer sees
// every outermost conv / linear / matmul of one forward pass with its shapes
// and adds 2 x K x (output elements), K being the reduction length (Cin/groups
// x kh x kw for a conv, in_features for linear, the inner dimension for a
// matmul). Elementwise work (norms, SiLU, softmax) is left out: it is a few
// percent of the FLOPs and not what a matmul peak measures. A train step
// counts as 3 x forward (backward computes the input and the weight
// gradients, each about one forward's worth) -- the usual convention.
//
// Prints a table; writes JSON to --json (default bench_unet.json).
//   build/bench/bench_unet [--batch 64] [--train-steps 3] [--fwd-steps 5] [--json out.json]
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>
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

// ------------------------------------------------------------ FLOP counter

thread_local int g_depth = 0;         // counted ops open on this thread (inner ones are not counted again)
thread_local double g_flops = 0;

struct FlopContext : at::ObserverContext {
  bool counted_op = false;  // one of the ops we count (depth was raised)
  double per_output = 0;    // 2 x K; 0 for an inner op
};

bool counted_name(const char* n) {
  static const char* names[] = {"aten::conv2d", "aten::convolution", "aten::linear", "aten::matmul",
                                "aten::mm",     "aten::addmm",       "aten::bmm",    "aten::baddbmm"};
  for (const char* x : names)
    if (std::strcmp(n, x) == 0) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> flop_start(const at::RecordFunction& fn) {
  if (!counted_name(fn.name())) return nullptr;
  auto ctx = std::make_unique<FlopContext>();
  ctx->counted_op = true;
  if (g_depth++ > 0) return ctx;  // inside a counted op: its parent counts it
  auto in = fn.inputs();
  if (in.size() < 2 || !in[0].isTensor() || !in[1].isTensor()) return ctx;
  const at::Tensor& a = in[0].toTensor();
  const at::Tensor& w = in[1].toTensor();
  std::string n = fn.name();
  double k = 0;
  if (n == "aten::conv2d" || n == "aten::convolution") {
    k = static_cast<double>(w.size(1) * w.size(2) * w.size(3));  // weight [Cout, Cin/g, kh, kw]
  } else if (n == "aten::linear") {
    k = static_cast<double>(w.size(-1));  // weight [out, in]
  } else if (n == "aten::addmm" || n == "aten::baddbmm") {
    // (bias, a, b): the reduction is a's last dimension.
    if (in.size() >= 3 && in[1].isTensor()) k = static_cast<double>(in[1].toTensor().size(-1));
  } else {
    k = static_cast<double>(a.size(-1));  // mm, bmm, matmul: a [..., n, k]
  }
  ctx->per_output = 2 * k;
  return ctx;
}

void flop_end(const at::RecordFunction& fn, at::ObserverContext* c) {
  auto* ctx = static_cast<FlopContext*>(c);
  if (!ctx || !ctx->counted_op) return;
  --g_depth;
  if (ctx->per_output <= 0) return;
  const auto& out = fn.outputs();
  if (!out.empty() && out[0].isTensor()) g_flops += ctx->per_output * static_cast<double>(out[0].toTensor().numel());
}

// FLOPs of `f()` (conv / linear / matmul only, see above).
template <typename F>
double count_flops(F f) {
  g_flops = 0;
  g_depth = 0;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(flop_start, flop_end).needsInputs(true).needsOutputs(true));
  f();
  at::removeCallback(handle);
  return g_flops;
}

// Dense fp32 matmul GFLOP/s: one n x n x n torch::mm, best of `reps`.
double mm_gflops(int64_t n, int reps) {
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::Tensor c = torch::mm(a, b);
  double best = 1e300;
  for (int i = 0; i < reps; ++i) {
    double t0 = now_s();
    c = torch::mm(a, b);
    best = std::min(best, now_s() - t0);
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best / 1e9;
}

// Parameters and buffers of rank 4 (conv weights) in channels-last layout.
void to_channels_last(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
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
  // The counter on ops whose FLOPs are known by hand: a 64^3 mm, a 3x3 conv
  // (8 -> 16 channels, 10x10, padding 1) and a linear layer wrapping addmm.
  {
    torch::NoGradGuard g;
    auto a = torch::randn({64, 64});
    auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1));
    auto l = torch::nn::Linear(32, 48);
    const double mm = count_flops([&] { torch::mm(a, a); });
    const double conv = count_flops([&] { c->forward(torch::randn({2, 8, 10, 10})); });
    const double lin = count_flops([&] { l->forward(torch::randn({5, 32})); });
    const double want_mm = 2.0 * 64 * 64 * 64, want_conv = 2.0 * 2 * 16 * 100 * 8 * 9, want_lin = 2.0 * 5 * 48 * 32;
    if (mm != want_mm || conv != want_conv || lin != want_lin) {
      fmt::print(stderr, "FLOP counter check failed: mm {} (want {}), conv {} (want {}), linear {} (want {})\n", mm,
                 want_mm, conv, want_conv, lin, want_lin);
      return 70;
    }
  }
  const double fwd_flops = count_flops([&] {
    torch::NoGradGuard g;
    net->forward(x0, torch::full({batch}, 100, torch::kLong));
  });
  const double train_flops = 3 * fwd_flops;  // per train step of `batch` images
  cpp["forward_gflop_per_image"] = fwd_flops / static_cast<double>(batch) / 1e9;
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
    const double train_s = (now_s() - t0) / static_cast<double>(train_steps);
    const std::string k = std::to_string(th);
    cpp["train_img_s"][k] = static_cast<double>(batch) / train_s;
    cpp["train_gflops"][k] = train_flops / train_s / 1e9;
    cpp["mm_gflops"][k] = mm_gflops(2048, 3);
    cpp["train_fraction_of_mm"][k] = cpp["train_gflops"][k].get<double>() / cpp["mm_gflops"][k].get<double>();
    auto ddim_with = [&](auto guard_tag, const torch::Tensor& x) {
      decltype(guard_tag) g;
      torch::Tensor eps = net->forward(x, torch::full({batch}, 100, torch::kLong)).pred;
      return ddim_step(s, x, eps, 100, 97, 0.0, torch::Tensor());
    };
    auto time_ddim = [&](auto guard_tag) {
      torch::Tensor x = torch::randn_like(x0);
      x = ddim_with(guard_tag, x);
      double t1 = now_s();
      for (int64_t i = 0; i < fwd_steps; ++i) x = ddim_with(guard_tag, x);
      return (now_s() - t1) / static_cast<double>(fwd_steps);
    };
    cpp["ddim_step_s"][k] = time_ddim(torch::NoGradGuard());
    cpp["ddim_step_s_inference_mode"][k] = time_ddim(c10::InferenceMode());
  }
  // Channels-last: the same train step on a copy of the net with NHWC weights and input.
  {
    torch::manual_seed(0);
    UNet cl(uo);
    to_channels_last(*cl);
    torch::optim::Adam cl_opt(cl->parameters(), torch::optim::AdamOptions(2e-4).betas({0.9, 0.99}));
    torch::Tensor x_cl = x0.contiguous(torch::MemoryFormat::ChannelsLast);
    for (int th : {1, 2}) {
      at::set_num_threads(th);
      auto step = [&] {
        torch::Tensor t = torch::randint(0, s.timesteps(), {batch}, torch::kLong);
        torch::Tensor noise = torch::randn_like(x_cl);
        torch::Tensor loss = diffusion_loss(s, cl->forward(q_sample(s, x_cl, t, noise), t).pred, noise, t).loss;
        cl_opt.zero_grad();
        loss.backward();
        torch::nn::utils::clip_grad_norm_(cl->parameters(), 1.0);
        cl_opt.step();
      };
      step();
      double t0 = now_s();
      for (int64_t i = 0; i < train_steps; ++i) step();
      cpp["train_img_s_channels_last"][std::to_string(th)] =
          static_cast<double>(batch * train_steps) / (now_s() - t0);
    }
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
  fmt::print("\nAgainst the limit (FLOPs counted by a RecordFunction observer: forward {:.3f} GFLOP/image, "
             "train step = 3 x forward):\n",
             cpp["forward_gflop_per_image"].get<double>());
  fmt::print("| threads | train GFLOP/s (C++) | train GFLOP/s (Python) | torch::mm 2048^3 GFLOP/s | C++ train / mm |\n"
             "|---|---|---|---|---|\n");
  for (const char* th : {"1", "2"}) {
    double py_g = py.contains("train_img_s") ? py["train_img_s"][th].get<double>() * 3 *
                                                   cpp["forward_gflop_per_image"].get<double>()
                                             : 0.0;
    fmt::print("| {} | {:.2f} | {:.2f} | {:.2f} | {:.3f} |\n", th, cpp["train_gflops"][th].get<double>(), py_g,
               cpp["mm_gflops"][th].get<double>(), cpp["train_fraction_of_mm"][th].get<double>());
  }
  fmt::print("\nWhat LibTorch offers for CPU convs (C++, same run):\n| threads | train img/s contiguous | channels-last | "
             "ratio | DDIM step s NoGradGuard | InferenceMode | ratio |\n|---|---|---|---|---|---|---|\n");
  for (const char* th : {"1", "2"}) {
    double a = cpp["train_img_s"][th].get<double>(), b = cpp["train_img_s_channels_last"][th].get<double>();
    double c = cpp["ddim_step_s"][th].get<double>(), d = cpp["ddim_step_s_inference_mode"][th].get<double>();
    fmt::print("| {} | {:.2f} | {:.2f} | {:.2f} | {:.4f} | {:.4f} | {:.2f} |\n", th, a, b, b / a, c, d, c / d);
  }
  nlohmann::json j = {{"bench", "unet"}, {"batch", batch}, {"image_size", uo.image_size}, {"width", uo.width},
                      {"cpp", cpp}, {"python", py}, {"rows", rows}};
  std::ofstream(json_path) << j.dump(2) << "\n";
  fmt::print("wrote {}\n", json_path);
  return 0;
}
