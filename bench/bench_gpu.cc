// GPU benchmarks for scripts/gpu_check.sh; writes JSON (--json) and a Markdown
// table (--md). Without a CUDA device it prints "no GPU: skipped" and exits 0.
//   build/bench/bench_gpu [--json bench_gpu.json] [--md bench_gpu.md] [--peak-tflops 989]
// Measures (CUDA, after warm-up, synchronised):
//  - UNet train images/s (DiffusionTrainer steps) at the quick-start config
//    (32 px, width 16, mults 1,2,2) and the paper config (128 px, width 64,
//    mults 1,2,4,8), fp32 and bf16;
//  - the UNet's achieved TFLOP/s: FLOPs of one forward counted from the
//    convolution and matrix-product calls LibTorch records (x 3 for forward +
//    backward), times images/s, next to --peak-tflops (the device's dense bf16
//    peak, from its data sheet: H100 SXM 989, A100 312);
//  - guided synthesis: one batched grid (16 items) vs the per-item loop;
//  - the data-parallel step time over all ranks when started under mpirun
//    (the worker's communicator: NCCL for CUDA tensors).
#include <chrono>
#include <cstdio>
#include <fstream>

#include <ATen/record_function.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "worker/comm.h"
#include "worker/critic/critic.h"
#include "worker/device.h"
#include "worker/diffusion/train.h"
#include "worker/precision.h"
#include "worker/synthesis/guided.h"

using namespace migvis;
using namespace migvis::worker;

namespace {

struct Config {
  const char* name;
  int64_t size, width, batch;
  std::vector<int64_t> mults;
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// FLOPs of convolutions and matrix products run on this thread while counting.
double g_flops = 0;
double count_flops(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  auto in = fn.inputs();
  auto sizes = [&](size_t i) { return in.size() > i && in[i].isTensor() ? in[i].toTensor().sizes().vec() : std::vector<int64_t>{}; };
  if (name == "aten::convolution" || name == "aten::_convolution") {
    auto x = sizes(0), w = sizes(1);
    if (x.size() != 4 || w.size() != 4) return 0;
    auto stride = in[3].toIntVector(), pad = in[4].toIntVector(), dil = in[5].toIntVector();
    int64_t ho = (x[2] + 2 * pad[0] - dil[0] * (w[2] - 1) - 1) / stride[0] + 1;
    int64_t wo = (x[3] + 2 * pad[1] - dil[1] * (w[3] - 1) - 1) / stride[1] + 1;
    return 2.0 * x[0] * w[0] * ho * wo * w[1] * w[2] * w[3];
  }
  if (name == "aten::mm" || name == "aten::addmm") {
    auto a = sizes(name == "aten::mm" ? 0 : 1), b = sizes(name == "aten::mm" ? 1 : 2);
    return a.size() == 2 && b.size() == 2 ? 2.0 * a[0] * a[1] * b[1] : 0;
  }
  if (name == "aten::bmm" || name == "aten::baddbmm") {
    auto a = sizes(name == "aten::bmm" ? 0 : 1), b = sizes(name == "aten::bmm" ? 1 : 2);
    return a.size() == 3 && b.size() == 3 ? 2.0 * a[0] * a[1] * a[2] * b[2] : 0;
  }
  return 0;
}

double unet_forward_flops_per_image(const diffusion::UNetOptions& u) {
  diffusion::UNet m(u);
  torch::NoGradGuard ng;
  g_flops = 0;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        g_flops += count_flops(fn);
        return nullptr;
      }).needsInputs(true));
  m->forward(torch::randn({1, u.channels, u.image_size, u.image_size}), torch::zeros({1}, torch::kLong));
  at::removeCallback(handle);
  return g_flops;
}

// Images/s of DiffusionTrainer steps.
double train_images_per_s(const Config& c, Precision p, const std::string& dev, Communicator* comm, double* step_s) {
  diffusion::UNetOptions u;
  u.image_size = c.size;
  u.width = c.width;
  u.mults = c.mults;
  diffusion::TrainOptions o;
  o.batch = c.batch * comm->size();
  o.grad_accum = 1;
  o.device = dev;
  o.precision = p;
  diffusion::DiffusionTrainer tr(u, diffusion::NoiseSchedule(diffusion::ScheduleOptions{}), o,
                                 torch::rand({64, 1, c.size, c.size}) * 2 - 1, comm);
  for (int i = 0; i < 3; ++i) (void)tr.train_step();
  torch::cuda::synchronize();
  const int steps = 10;
  double t0 = now_s();
  for (int i = 0; i < steps; ++i) (void)tr.train_step();
  torch::cuda::synchronize();
  *step_s = (now_s() - t0) / steps;
  return static_cast<double>(c.batch) / *step_s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path = "bench_gpu.json", md_path = "bench_gpu.md";
  double peak = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--json") json_path = v;
    else if (k == "--md") md_path = v;
    else if (k == "--peak-tflops") peak = std::stod(v);
  }
  if (!torch::cuda::is_available()) {
    std::printf("no GPU: skipped\n");
    return 0;
  }
  SingleProcessCommunicator single;
  std::unique_ptr<Communicator> mpi = make_communicator();
  Communicator* comm = mpi ? mpi.get() : &single;
  const std::string dev = resolve_device(1);
  nlohmann::json out;
  out["device"] = dev;
  out["ranks"] = comm->size();
  out["peak_bf16_tflops"] = peak;
  std::string md = "| benchmark | config | precision | value |\n|---|---|---|---|\n";
  char row[256];
  const std::vector<Config> configs = {{"quick-start", 32, 16, 64, {1, 2, 2}}, {"paper", 128, 64, 16, {1, 2, 4, 8}}};
  for (const auto& c : configs) {
    diffusion::UNetOptions u;
    u.image_size = c.size;
    u.width = c.width;
    u.mults = c.mults;
    const double flops = comm->is_root() ? unet_forward_flops_per_image(u) : 0;
    for (Precision p : {Precision::kFp32, Precision::kBf16}) {
      double step_s = 0;
      const double ips = train_images_per_s(c, p, dev, comm, &step_s);
      const double tflops = 3 * flops * ips / 1e12;
      nlohmann::json r = {{"config", c.name}, {"precision", to_string(p)}, {"batch_per_rank", c.batch},
                          {"images_per_s_per_rank", ips}, {"step_s", step_s}, {"forward_gflop_per_image", flops / 1e9},
                          {"achieved_tflops", tflops}};
      if (peak > 0) r["fraction_of_bf16_peak"] = tflops / peak;
      out["unet_train"].push_back(r);
      std::snprintf(row, sizeof row, "| UNet train images/s (per rank) | %s, batch %lld | %s | %.1f |\n", c.name,
                    static_cast<long long>(c.batch), to_string(p).c_str(), ips);
      md += row;
      std::snprintf(row, sizeof row, "| UNet achieved TFLOP/s (3 x fwd FLOPs) | %s | %s | %.1f%s |\n", c.name,
                    to_string(p).c_str(), tflops,
                    peak > 0 ? (" (" + std::to_string(static_cast<int>(100 * tflops / peak)) + "% of bf16 peak)").c_str() : "");
      md += row;
      if (comm->size() > 1) {
        std::snprintf(row, sizeof row, "| data-parallel step time, %d ranks | %s | %s | %.4f s |\n", comm->size(), c.name,
                      to_string(p).c_str(), step_s);
        md += row;
      }
    }
  }
  if (comm->is_root()) {
    // Guided synthesis at the quick-start config: one batched grid vs the per-item loop.
    const torch::Device d(dev);
    diffusion::UNetOptions u;
    u.image_size = 32;
    u.width = 16;
    u.mults = {1, 2, 2};
    diffusion::UNet unet(u);
    unet->to(d);
    unet->eval();
    for (auto& p : unet->parameters()) p.set_requires_grad(false);
    diffusion::NoiseSchedule s(diffusion::ScheduleOptions{});
    critic::CriticOptions co;
    co.groups = 4;
    co.group_rank = 6;
    co.image_size_px = 32;
    auto crit = *critic::make_critic(co);
    critic::to_device(crit, d);
    const int64_t B = 16;
    synthesis::GuidedBatch b;
    b.x_source = (torch::rand({B, 1, 32, 32}) * 2 - 1).to(d);
    b.z_cand = torch::randn({B, 11, 6}).to(d);
    b.group = (torch::arange(B) % 4).to(d);
    b.gamma = (torch::arange(B) % 2 * 25.0).to(torch::kFloat).to(d);
    for (int64_t i = 0; i < B; ++i) b.noise_seed.push_back(static_cast<uint64_t>(i));
    synthesis::GuidedOptions go;
    go.edit_t = 90;
    go.steps = 20;
    auto eps = diffusion::unet_eps_fn(unet, s, /*no_grad=*/false);
    (void)synthesis::guided_edit(eps, crit, s, b.slice(0, 2), go);  // warm-up
    torch::cuda::synchronize();
    double t0 = now_s();
    (void)synthesis::guided_edit(eps, crit, s, b, go);
    torch::cuda::synchronize();
    const double grid_s = now_s() - t0;
    t0 = now_s();
    for (int64_t i = 0; i < B; ++i) (void)synthesis::guided_edit(eps, crit, s, b.slice(i, i + 1), go);
    torch::cuda::synchronize();
    const double loop_s = now_s() - t0;
    out["guided"] = {{"items", B}, {"steps", go.steps}, {"grid_s", grid_s}, {"loop_s", loop_s},
                     {"speedup", loop_s / grid_s}};
    std::snprintf(row, sizeof row, "| guided grid vs per-item loop (%lld items, %lld steps) | quick-start | fp32 | %.2fx (%.2f s vs %.2f s) |\n",
                  static_cast<long long>(B), static_cast<long long>(go.steps), loop_s / grid_s, grid_s, loop_s);
    md += row;
    std::ofstream(json_path) << out.dump(2) << "\n";
    std::ofstream(md_path) << md;
    std::printf("%s", md.c_str());
  }
  return 0;
}
