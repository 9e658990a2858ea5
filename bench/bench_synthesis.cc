// Guided synthesis grid throughput: one batched guided_edit over the whole grid
// versus the same items one at a time (the per-image loop the batching replaces).
// Model: worker/diffusion's UNet (CPU default: width --width, mults 1,2,2, 32x32,
// random weights: speed does not depend on training), T = 150 sigmoid schedule,
// and the default CNN critic. Prints a table and writes JSON (--json).
//   bench_synthesis [--items 32] [--loop-items 8] [--steps 5] [--threads 2] [--reps 3] [--json out.json]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <ATen/Parallel.h>

#include "worker/diffusion/unet.h"
#include "worker/synthesis/guided.h"

using namespace migvis::worker;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t items = 32, loop_items = 8, steps = 5, threads = 2, width = 32, reps = 3;
  std::string json = "bench_synthesis.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--items") items = std::stoll(v);
    else if (a == "--loop-items") loop_items = std::stoll(v);
    else if (a == "--steps") steps = std::stoll(v);
    else if (a == "--threads") threads = std::stoll(v);
    else if (a == "--width") width = std::stoll(v);
    else if (a == "--json") json = v;
    else if (a == "--reps") reps = std::stoll(v);
  }
  at::set_num_threads(threads);
  torch::manual_seed(0);
  diffusion::UNetOptions uo;
  uo.width = width;
  diffusion::UNet unet(uo);
  unet->eval();
  for (auto& p : unet->parameters()) p.set_requires_grad(false);
  critic::CriticOptions co;
  co.groups = 4; co.group_rank = 6; co.image_size_px = 32;
  auto crit = *critic::make_critic(co);
  crit->eval();
  for (auto& p : crit->parameters()) p.set_requires_grad(false);
  diffusion::NoiseSchedule abar;  // T = 150, sigmoid: the paper's
  synthesis::EpsFn eps = diffusion::unet_eps_fn(unet, abar, /*no_grad=*/false);
  synthesis::GuidedBatch b;
  b.x_source = torch::rand({items, 1, 32, 32}) * 2 - 1;
  b.z_cand = torch::randn({items, 11, 6});
  b.group = torch::arange(items, torch::kLong) % 4;
  b.gamma = (torch::arange(items) % 4).to(torch::kFloat32) * 25 + 25;  // all guided
  for (int64_t i = 0; i < items; ++i) b.noise_seed.push_back(i);
  synthesis::GuidedOptions o;
  o.edit_t = 135; o.steps = steps;

  synthesis::guided_edit(eps, crit, abar, b.slice(0, 2), o);  // warm-up
  // Minimum over `reps` repeats: the build machine is shared, and the minimum is
  // the least disturbed measurement of each variant.
  double batched_s = 1e30, loop_s = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_s();
    synthesis::guided_edit(eps, crit, abar, b, o);
    batched_s = std::min(batched_s, now_s() - t0);
    t0 = now_s();
    for (int64_t i = 0; i < loop_items; ++i) synthesis::guided_edit(eps, crit, abar, b.slice(i, i + 1), o);
    loop_s = std::min(loop_s, now_s() - t0);
  }
  const double batched_ips = items / batched_s, loop_ips = loop_items / loop_s;
  std::printf("| variant | items | steps | threads | seconds | images/s |\n|---|---|---|---|---|---|\n");
  std::printf("| batched grid (C++) | %lld | %lld | %lld | %.2f | %.2f |\n", (long long)items, (long long)steps,
              (long long)threads, batched_s, batched_ips);
  std::printf("| per-image loop (C++) | %lld | %lld | %lld | %.2f | %.2f |\n", (long long)loop_items, (long long)steps,
              (long long)threads, loop_s, loop_ips);
  std::printf("speed-up batched / loop: %.2fx\n", batched_ips / loop_ips);
  std::ofstream(json) << "{\"bench\": \"synthesis\", \"items\": " << items << ", \"loop_items\": " << loop_items
                      << ", \"steps\": " << steps << ", \"threads\": " << threads << ", \"reps\": " << reps << ", \"width\": " << width
                      << ", \"batched_images_per_s\": " << batched_ips << ", \"loop_images_per_s\": " << loop_ips
                      << ", \"speedup\": " << batched_ips / loop_ips << "}\n";
  return 0;
}
