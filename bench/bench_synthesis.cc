// Guided synthesis throughput (worker/synthesis/guided.h): one batched guided_edit
// over the whole grid versus the same items one at a time (the per-image loop the
// batching replaces), plus the time of one unguided DDIM step (UNet forward, no
// grad) and one guided step with each guidance gradient: x0 (the reference's: UNet
// forward in inference mode, critic forward + backward) and unet (forward +
// backward through the UNet). Guided steps include the per-step negative draw.
// The same edit in plain PyTorch (bench/python/bench_synthesis.py, run with
// /usr/bin/python3 in the same run, same flags) is the reference point. C++ only:
// the grid with gamma = 0 items deduplicated across groups (synthesis::
// dedup_unguided, as the stage runs it) against the full grid. Items are laid out
// as the stage's grid: gamma fastest, then group, then pair (a pair's source,
// noise and negatives shared by its groups and gammas). Random weights: speed
// does not depend on training. Prints a table and writes JSON (--json).
//
// Default (the original bench): 32x32, width 32, mults 1,2,2, attention 4 x 32,
// T = 150 sigmoid, edit_t 135, 5 steps, K = 10, 32 items (gammas 25..100), loop 8:
//   build/bench/bench_synthesis --json bench_synthesis.json
// The quick-start synthesis job (sweeps/quickstart.yaml):
//   build/bench/bench_synthesis --size 32 --width 16 --mults 1,2,2 --attn-heads 2 --attn-dim-head 16
//       --timesteps 100 --edit-t 60 --steps 12 --negatives 10 --gammas 0,30,100,300 --json q.json
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "worker/diffusion/unet.h"
#include "worker/synthesis/guided.h"

using namespace migvis::worker;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `cmd`, returns its stdout and sets `rc` to its exit status (-1: did not run or exit).
std::string run_capture(const std::string& cmd, int& rc) {
  std::string out;
  rc = -1;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

template <typename T>
std::vector<T> parse_list(const std::string& s, const char* flag) {
  std::vector<T> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::istringstream is(item);
    T x;
    if (!(is >> x)) throw std::invalid_argument(fmt::format("{}: expected a comma-separated list, got \"{}\"", flag, s));
    v.push_back(x);
  }
  if (v.empty()) throw std::invalid_argument(fmt::format("{}: empty list", flag));
  return v;
}

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 32, width = 32, heads = 4, dim_head = 32, timesteps = 150, edit_t = 135, steps = 5, negatives = 10;
  int64_t items = 32, loop_items = 8, threads = 2, reps = 3, groups = 4, group_rank = 6;
  int64_t critic_width = 16, critic_size = 0, feature_dim = 64, embed_dim = 32;
  std::string mults_s = "1,2,2", schedule_s = "sigmoid", gammas_s = "25,50,75,100", grad_s = "x0";
  bool resample = true;
  std::string json_path = "bench_synthesis.json", python = "/usr/bin/python3";
  CLI::App app{"Guided synthesis grid: batched vs per-image loop, DDIM and guided step time, C++ vs PyTorch"};
  app.add_option("--size", size, "image size in px (H = W)")->capture_default_str();
  app.add_option("--width", width, "UNet base width")->capture_default_str();
  app.add_option("--mults", mults_s, "UNet channel multipliers, comma-separated")->capture_default_str();
  app.add_option("--attn-heads", heads, "attention heads")->capture_default_str();
  app.add_option("--attn-dim-head", dim_head, "attention head size")->capture_default_str();
  app.add_option("--timesteps", timesteps, "T of the noise schedule")->capture_default_str();
  app.add_option("--schedule", schedule_s, "linear | cosine | sigmoid")->capture_default_str();
  app.add_option("--edit-t", edit_t, "SDEdit start step (0-based, < T)")->capture_default_str();
  app.add_option("--steps", steps, "guided DDIM steps from edit_t to 0")->capture_default_str();
  app.add_option("--negatives", negatives, "K negative latents per item")->capture_default_str();
  app.add_option("--items", items, "grid items in the batched run")->capture_default_str();
  app.add_option("--loop-items", loop_items, "items run one at a time")->capture_default_str();
  app.add_option("--gammas", gammas_s, "guidance scales, item i gets gammas[i % n]")->capture_default_str();
  app.add_option("--groups", groups, "latent groups (critic heads)")->capture_default_str();
  app.add_option("--group-rank", group_rank, "latent dims per group")->capture_default_str();
  app.add_option("--critic-width", critic_width, "CNN critic base channels")->capture_default_str();
  app.add_option("--critic-size", critic_size, "critic input px (0: --size)")->capture_default_str();
  app.add_option("--feature-dim", feature_dim, "critic feature size")->capture_default_str();
  app.add_option("--embed-dim", embed_dim, "critic scoring space")->capture_default_str();
  app.add_option("--guidance-grad", grad_s, "x0 | unet: the gradient of the batched and loop runs")->capture_default_str();
  app.add_option("--resample-negatives", resample, "new negatives every step in the batched and loop runs")
      ->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (both languages)")->capture_default_str();
  app.add_option("--reps", reps, "repeats; the minimum is reported")->capture_default_str();
  app.add_option("--python", python, "interpreter for the PyTorch reference; 'none' skips it")->capture_default_str();
  app.add_option("--json", json_path, "output JSON")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  diffusion::UNetOptions uo;
  diffusion::ScheduleOptions so;
  critic::CriticOptions co;
  std::vector<double> gammas;
  try {
    uo.mults = parse_list<int64_t>(mults_s, "--mults");
    gammas = parse_list<double>(gammas_s, "--gammas");
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_synthesis: {}\n", e.what());
    return 64;
  }
  uo.width = width; uo.image_size = size; uo.attn_heads = heads; uo.attn_dim_head = dim_head;
  so.timesteps = timesteps;
  auto sched = diffusion::parse_beta_schedule(schedule_s);
  co.groups = groups; co.group_rank = group_rank; co.image_size_px = critic_size > 0 ? critic_size : size;
  co.width = critic_width; co.feature_dim = feature_dim; co.embed_dim = embed_dim;
  auto bad = [](const std::string& m) { fmt::print(stderr, "bench_synthesis: {}\n", m); return 64; };
  if (!sched.ok()) return bad("--schedule: " + sched.status().message());
  auto grad_kind = synthesis::parse_guidance_grad(grad_s);
  if (!grad_kind.ok()) return bad("--guidance-grad: " + grad_kind.status().message());
  so.schedule = *sched;
  if (auto st = uo.validate(); !st.ok()) return bad(st.message());
  if (auto st = diffusion::NoiseSchedule::validate(so); !st.ok()) return bad(st.message());
  if (edit_t < 0 || edit_t >= timesteps) return bad(fmt::format("--edit-t {}: expected 0 <= edit_t < T = {}", edit_t, timesteps));
  if (items < 1 || loop_items < 0 || loop_items > items || steps < 1 || negatives < 1 || reps < 1 || threads < 1)
    return bad("expected items >= 1, 0 <= loop-items <= items, steps, negatives, reps, threads >= 1");

  at::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  diffusion::UNet unet(uo);
  unet->eval();
  for (auto& p : unet->parameters()) p.set_requires_grad(false);
  auto crit_r = critic::make_critic(co);
  if (!crit_r.ok()) return bad(crit_r.status().message());
  auto crit = *crit_r;
  crit->eval();
  for (auto& p : crit->parameters()) p.set_requires_grad(false);
  diffusion::NoiseSchedule abar(so);
  synthesis::EpsFn eps = diffusion::unet_eps_fn(unet, abar, /*no_grad=*/false);

  // Item i: gamma gammas[i % n], group (i / n) % G, pair i / (n G) (the stage's
  // grid: gammas vary fastest within a group; a pair's source, noise seed,
  // target and negative seed are shared by its groups and gammas).
  const int64_t n_gm = static_cast<int64_t>(gammas.size());
  const int64_t n_pairs = (items + n_gm * groups - 1) / (n_gm * groups), n_pool = std::max<int64_t>(64, negatives + 2);
  const auto pair_x = torch::rand({n_pairs, 1, size, size}) * 2 - 1;
  synthesis::GuidedBatch b;
  b.z_cand = torch::randn({items, 1 + negatives, group_rank});
  b.z_pool = torch::randn({n_pool, groups * group_rank});
  std::vector<int64_t> grp, pair, trow;
  std::vector<double> gam;
  for (int64_t i = 0; i < items; ++i) {
    const int64_t pi = i / (n_gm * groups);
    gam.push_back(gammas[i % n_gm]);
    grp.push_back((i / n_gm) % groups);
    pair.push_back(pi);
    trow.push_back(pi % n_pool);
    b.noise_seed.push_back(static_cast<uint64_t>(pi));
    b.negative_seed.push_back(static_cast<uint64_t>(1000 + pi));
  }
  b.x_source = pair_x.index_select(0, torch::tensor(pair, torch::kLong));
  b.group = torch::tensor(grp, torch::kLong);
  b.gamma = torch::tensor(gam, torch::kFloat64).to(torch::kFloat32);
  b.target_row = torch::tensor(trow, torch::kLong);
  synthesis::GuidedOptions o;
  o.edit_t = edit_t; o.steps = steps; o.grad = *grad_kind; o.resample_negatives = resample;
  const auto ts = synthesis::edit_timesteps(edit_t, steps);

  synthesis::guided_edit(eps, crit, abar, b.slice(0, std::min<int64_t>(2, items)), o);  // warm-up
  // Minimum over `reps` repeats: the machine may be shared, and the minimum is
  // the least disturbed measurement of each variant.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double batched_s = kInf, loop_s = kInf;
  torch::Tensor xb;
  std::vector<torch::Tensor> xl;
  for (int64_t r = 0; r < reps; ++r) {
    double t0 = now_s();
    xb = synthesis::guided_edit(eps, crit, abar, b, o);
    batched_s = std::min(batched_s, now_s() - t0);
    xl.clear();
    t0 = now_s();
    for (int64_t i = 0; i < loop_items; ++i) xl.push_back(synthesis::guided_edit(eps, crit, abar, b.slice(i, i + 1), o));
    loop_s = std::min(loop_s, now_s() - t0);
  }
  double max_diff = 0;
  for (int64_t i = 0; i < loop_items; ++i) max_diff = std::max(max_diff, (xl[i][0] - xb[i]).abs().max().item<double>());

  // The grid as the stage runs it: gamma == 0 items computed once per pair and copied.
  double dedup_s = kInf;
  int64_t unique_items = items;
  torch::Tensor xd;
  for (int64_t r = 0; r < reps; ++r) {
    const double t0 = now_s();
    auto d = synthesis::dedup_unguided(b);
    xd = synthesis::guided_edit(eps, crit, abar, d.unique, o).index_select(0, torch::tensor(d.slot, torch::kLong));
    dedup_s = std::min(dedup_s, now_s() - t0);
    unique_items = d.unique.size();
  }
  const double dedup_diff = (xd - xb).abs().max().item<double>();

  // One denoising step at t = edit_t on the whole batch: unguided DDIM (forward in
  // inference mode) and guided with each gradient (x0: forward in inference mode,
  // critic forward + backward; unet: forward + backward through the UNet for the
  // gamma != 0 items), each with its negative draw, as guided_edit does.
  const int64_t t = ts[0], t_prev = ts[1];
  auto x = torch::randn({items, 1, size, size});
  double ddim_s = kInf, x0_s = kInf, unet_s = kInf, draw_s = kInf;
  synthesis::NegativeSampler ns(b);
  auto guided_step = [&](synthesis::GuidanceGrad kind) {
    const double t0 = now_s();
    auto step = b;
    step.z_cand = ns.next(b);
    auto ge = synthesis::guided_eps(eps, crit, abar, x, t, step, /*clip_x0=*/false, kind);
    {
      torch::NoGradGuard ng;
      diffusion::ddim_step(abar, x, ge.eps, t, t_prev, 0.0, torch::Tensor());
    }
    return now_s() - t0;
  };
  for (int64_t r = 0; r <= reps; ++r) {
    double t0 = now_s();
    {
      c10::InferenceMode im;
      diffusion::ddim_step(abar, x, eps(x, t), t, t_prev, 0.0, torch::Tensor());
    }
    ddim_s = std::min(ddim_s, now_s() - t0);
    x0_s = std::min(x0_s, guided_step(synthesis::GuidanceGrad::kX0));
    unet_s = std::min(unet_s, guided_step(synthesis::GuidanceGrad::kUnet));
    t0 = now_s();
    ns.next(b);
    draw_s = std::min(draw_s, now_s() - t0);
  }

  nlohmann::json cpp = {
      {"unet_params", unet->num_parameters()},
      {"critic_params", count_params(*crit)},
      {"timesteps_walked", ts},
      {"batched_s", batched_s},
      {"loop_s", loop_s},
      {"batched_images_per_s", static_cast<double>(items) / batched_s},
      {"loop_images_per_s", loop_items > 0 ? static_cast<double>(loop_items) / loop_s : 0.0},
      {"max_abs_batched_minus_loop", max_diff},
      {"ddim_step_s", ddim_s},
      {"guided_step_x0_s", x0_s},
      {"guided_step_unet_s", unet_s},
      {"negative_draw_s", draw_s},
      {"x0_step_over_unguided", x0_s / ddim_s},
      {"unet_step_over_unguided", unet_s / ddim_s},
      {"mean_abs_x0", xb.abs().mean().item<double>()},
      {"dedup_s", dedup_s},
      {"dedup_unique_items", unique_items},
      {"dedup_saved_items_fraction", 1.0 - static_cast<double>(unique_items) / static_cast<double>(items)},
      {"dedup_saved_time_fraction", 1.0 - dedup_s / batched_s},
      {"max_abs_dedup_minus_full", dedup_diff},
  };

  nlohmann::json py;
  if (python != "none") {
    const std::string cmd = fmt::format(
        "{} {}/bench/python/bench_synthesis.py --size {} --width {} --mults {} --attn-heads {} --attn-dim-head {} "
        "--timesteps {} --schedule {} --edit-t {} --steps {} --negatives {} --items {} --loop-items {} --gammas {} "
        "--groups {} --group-rank {} --critic-width {} --critic-size {} --feature-dim {} --embed-dim {} "
        "--guidance-grad {} --resample-negatives {} --threads {} --reps {}",
        python, MIGVIS_SOURCE_DIR, size, width, mults_s, heads, dim_head, timesteps, schedule_s, edit_t, steps,
        negatives, items, loop_items, gammas_s, groups, group_rank, critic_width, co.image_size_px, feature_dim,
        embed_dim, grad_s, resample ? 1 : 0, threads, reps);
    int rc = 0;
    const std::string out = run_capture(cmd, rc);
    try {
      if (rc != 0) throw std::runtime_error(fmt::format("exit status {}", rc));
      const auto brace = out.rfind("\n{");
      py = nlohmann::json::parse(out.substr(brace == std::string::npos ? out.find('{') : brace + 1));
    } catch (const std::exception& e) {
      py = nlohmann::json();
      fmt::print(stderr, "note: the PyTorch reference failed ({}): C++ numbers only. Command: {}\n", e.what(), cmd);
    }
  }
  const bool have_py = py.is_object() && py.contains("batched_images_per_s");

  fmt::print("Guided synthesis, {}x{}x1, UNet width {} mults ({}) attention {} x {}, T = {} {}, edit_t {}, {} steps "
             "(t = {}..-1), K = {}, gammas {}, {} threads, min of {} reps; grid runs: guidance_grad {}, "
             "resample_negatives {}\n",
             size, size, width, mults_s, heads, dim_head, timesteps, schedule_s, edit_t, ts.size() - 1, ts.front(),
             negatives, gammas_s, threads, reps, grad_s, resample);
  fmt::print("params: UNet C++ {} / Python {}; critic C++ {} / Python {}\n", cpp["unet_params"].get<int64_t>(),
             have_py ? py["unet_params"].dump() : "n/a", cpp["critic_params"].get<int64_t>(),
             have_py ? py["critic_params"].dump() : "n/a");
  if (have_py && (py["unet_params"] != cpp["unet_params"] || py["critic_params"] != cpp["critic_params"]))
    fmt::print("WARNING: parameter counts differ: the Python reference is not the same model\n");
  if (have_py && py["timesteps_walked"] != cpp["timesteps_walked"])
    fmt::print("WARNING: the Python reference walks other timesteps ({} vs {})\n", py["timesteps_walked"].dump(),
               cpp["timesteps_walked"].dump());
  fmt::print("max |batched - loop| over the loop items: C++ {:.3g}, Python {}\n", max_diff,
             have_py ? fmt::format("{:.3g}", py["max_abs_batched_minus_loop"].get<double>()) : "n/a");

  struct Row { const char* key; std::string label; int64_t n; bool higher_better; };
  const std::vector<Row> table = {
      {"batched_images_per_s", "batched grid images/s", items, true},
      {"loop_images_per_s", "per-image loop images/s", loop_items, true},
      {"ddim_step_s", fmt::format("unguided DDIM step s (batch {})", items), items, false},
      {"guided_step_x0_s", fmt::format("guided step s, x0 gradient (batch {})", items), items, false},
      {"guided_step_unet_s", fmt::format("guided step s, unet gradient (batch {})", items), items, false},
      {"negative_draw_s", "per-step negative draw s (in both guided steps)", items, false},
  };
  fmt::print("| benchmark | items | C++ | Python | C++ speed / Python |\n|---|---|---|---|---|\n");
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : table) {
    const double c = cpp[r.key].get<double>();
    const double p = have_py ? py[r.key].get<double>() : 0.0;
    // > 1 means C++ is faster (a rate: c / p; a time: p / c).
    const double ratio = p > 0 && c > 0 ? (r.higher_better ? c / p : p / c) : 0.0;
    fmt::print("| {} | {} | {:.4g} | {} | {} |\n", r.label, r.n, c, have_py ? fmt::format("{:.4g}", p) : "n/a",
               have_py ? fmt::format("{:.2f}", ratio) : "n/a");
    rows.push_back({{"benchmark", r.key}, {"items", r.n}, {"cpp", c}, {"python", have_py ? nlohmann::json(p) : nullptr},
                    {"speed_ratio_cpp_over_py", have_py ? nlohmann::json(ratio) : nullptr}});
  }
  const double speedup_cpp = loop_items > 0 ? cpp["batched_images_per_s"].get<double>() / cpp["loop_images_per_s"].get<double>() : 0;
  const double speedup_py = have_py && loop_items > 0
                                ? py["batched_images_per_s"].get<double>() / py["loop_images_per_s"].get<double>()
                                : 0;
  fmt::print("speed-up batched / loop: C++ {:.2f}x, Python {}\n", speedup_cpp,
             have_py ? fmt::format("{:.2f}x", speedup_py) : "n/a");
  fmt::print("guided step / unguided step: x0 C++ {:.2f} Python {}; unet C++ {:.2f} Python {}\n", x0_s / ddim_s,
             have_py ? fmt::format("{:.2f}", py["x0_step_over_unguided"].get<double>()) : "n/a", unet_s / ddim_s,
             have_py ? fmt::format("{:.2f}", py["unet_step_over_unguided"].get<double>()) : "n/a");
  fmt::print("gamma = 0 dedup (C++): {} of {} items computed ({:.1f}% fewer), grid {:.3f} s vs {:.3f} s full "
             "({:.1f}% time saved), max |dedup - full| {:.3g}\n",
             unique_items, items, 100.0 * (1.0 - static_cast<double>(unique_items) / items), dedup_s, batched_s,
             100.0 * (1.0 - dedup_s / batched_s), dedup_diff);

  nlohmann::json config = {{"size", size}, {"width", width}, {"mults", uo.mults}, {"attn_heads", heads},
                           {"attn_dim_head", dim_head}, {"timesteps", timesteps}, {"schedule", schedule_s},
                           {"edit_t", edit_t}, {"steps", steps}, {"negatives", negatives}, {"items", items},
                           {"loop_items", loop_items}, {"gammas", gammas}, {"groups", groups},
                           {"group_rank", group_rank}, {"critic_width", critic_width},
                           {"critic_size", co.image_size_px}, {"feature_dim", feature_dim},
                           {"embed_dim", embed_dim}, {"guidance_grad", grad_s}, {"resample_negatives", resample},
                           {"threads", threads}, {"reps", reps}};
  nlohmann::json j = {{"bench", "synthesis"}, {"config", config}, {"cpp", cpp},
                      {"python", have_py ? py : nlohmann::json(nullptr)}, {"rows", rows},
                      {"speedup_batched_over_loop", {{"cpp", speedup_cpp}, {"python", have_py ? nlohmann::json(speedup_py) : nullptr}}}};
  const std::string tmp = json_path + ".tmp";
  std::ofstream(tmp) << j.dump(2) << "\n";
  std::rename(tmp.c_str(), json_path.c_str());
  fmt::print("wrote {}\n", json_path);
  return 0;
}
