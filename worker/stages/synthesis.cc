// Stage `synthesis`: MI-guided editing grids (groups x gammas x source/target
// pairs x seeds), batched: the grid is cut into chunks of `chunk` items and each
// chunk runs one eps-model forward/backward per denoising step. gamma = 0 items,
// the same in every group, are computed once per pair and seed and copied.
// Inputs: dataset, vae, diffusion, critic. Outputs (out.h5): /images
// [G, Gamma, P, S, C, H, W] in [0, 1] (attrs groups: 1-based group numbers,
// gammas), /sources, /targets [P] dataset image indices, /mi [G, Gamma] (critic
// bound reached, mean over pairs and seeds), /mi_items [G, Gamma, P, S];
// grid_pair<p>.png (rows groups, columns gammas, seed 0). The eps model, the
// critic and the grid live on ctx.device; params.precision (fp32 | bf16 | fp16,
// the latter two on CUDA only) sets the eps model's autocast.
#include <chrono>
#include <cstring>
#include <cmath>

#include <fmt/format.h>

#include "common/log.h"
#include "results/h5.h"
#include "results/png.h"
#include "worker/critic/critic.h"
#include "worker/comm.h"
#include "worker/precision.h"
#include "worker/stages/synthesis.h"
#include "worker/stages/inputs.h"
#include "worker/synthesis/eps_model.h"
#include "worker/synthesis/guided.h"

namespace migvis::worker {

namespace {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t v : {a, b, c}) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); h *= 1099511628211ull; }
  return h & 0x7fffffffffffffffull;
}

}  // namespace

Status run_synthesis_stage(StageContext& ctx) {
  using namespace synthesis;
  schema::Params p(ctx.spec.params, "job.yaml");
  MIGVIS_RETURN_IF_ERROR(p.check_known({"groups", "gammas", "pairs", "seeds", "edit_t", "steps", "eta", "negatives",
                                        "mode", "chunk", "clip", "sampler", "guidance_grad",
                                        "resample_negatives", "precision"}));
  MIGVIS_ASSIGN_OR_RETURN(std::string precision_name, p.get_string("precision", "fp32"));
  auto precision = parse_precision(precision_name);
  if (!precision.ok()) return precision.status().with_context("job.yaml: params.precision");
  MIGVIS_RETURN_IF_ERROR(check_precision(*precision, ctx.device, "job.yaml: params.precision"));
  const torch::Device dev = stage_device(ctx);
  MIGVIS_ASSIGN_OR_RETURN(fs::path ds_path, require_input(ctx.spec, "dataset"));
  MIGVIS_ASSIGN_OR_RETURN(fs::path vae_dir, require_input(ctx.spec, "vae"));
  MIGVIS_ASSIGN_OR_RETURN(fs::path diff_dir, require_input(ctx.spec, "diffusion"));
  MIGVIS_ASSIGN_OR_RETURN(fs::path critic_dir, require_input(ctx.spec, "critic"));
  data::ReadOptions ro;
  ro.sessions = false;
  MIGVIS_ASSIGN_OR_RETURN(auto ds, data::read_dataset(ds_path, ro));
  MIGVIS_ASSIGN_OR_RETURN(auto vae, read_vae_latents(vae_dir));
  MIGVIS_ASSIGN_OR_RETURN(auto model, load_eps_model(diff_dir, dev));
  ctx.model_devices["eps_model"] = model.device;
  if (*precision != Precision::kFp32) {
    // Mixed precision for the eps model only (the bulk of the compute); the
    // critic, x0_hat and the guidance gradient stay float32.
    model.eps = [inner = model.eps, pr = *precision, dev](const torch::Tensor& x, int64_t t) {
      AutocastGuard autocast(pr, dev);
      return inner(x, t).to(x.scalar_type());
    };
  }
  MIGVIS_ASSIGN_OR_RETURN(auto crit, critic::load_critic(critic_dir));
  critic::to_device(crit, dev);
  record_model_device(ctx, "critic", *crit);
  if (crit->options.groups != vae.groups || crit->options.group_rank != vae.group_rank)
    return Status::InvalidArgument(fmt::format("critic {} has {} groups x {} dims but VAE {} has {} x {}",
                                               critic_dir.string(), crit->options.groups, crit->options.group_rank,
                                               vae_dir.string(), vae.groups, vae.group_rank));
  // The judge split both trained under (inputs.h): recorded for eval, whose
  // read-outs train on the held-out part only.
  JudgeSplit split;
  {
    MIGVIS_ASSIGN_OR_RETURN(auto cf, h5::File::open(critic_dir / schema::kOutFile));
    MIGVIS_ASSIGN_OR_RETURN(split, read_judge_split(cf));
    MIGVIS_ASSIGN_OR_RETURN(auto df, h5::File::open(diff_dir / schema::kOutFile));
    MIGVIS_ASSIGN_OR_RETURN(auto dsplit, read_judge_split(df));
    if (dsplit.heldout != split.heldout)
      return Status::InvalidArgument(fmt::format("critic {} (judge_holdout {:g}) and diffusion {} (judge_holdout {:g}) held "
                                                 "out different stimuli; give both the same params.judge_holdout",
                                                 critic_dir.string(), split.fraction, diff_dir.string(), dsplit.fraction));
  }
  const int64_t T = model.schedule.timesteps();
  std::vector<int64_t> all_groups;
  for (int64_t g = 1; g <= vae.groups; ++g) all_groups.push_back(g);
  MIGVIS_ASSIGN_OR_RETURN(auto groups, p.get_ints("groups", all_groups));
  MIGVIS_ASSIGN_OR_RETURN(auto gammas, p.get_doubles("gammas", {0, 25, 50, 100}));
  MIGVIS_ASSIGN_OR_RETURN(int64_t n_pairs, p.get_int("pairs", 4));
  MIGVIS_ASSIGN_OR_RETURN(int64_t n_seeds, p.get_int("seeds", 1));
  GuidedOptions go;
  MIGVIS_ASSIGN_OR_RETURN(go.edit_t, p.get_int("edit_t", std::llround(0.9 * T)));
  MIGVIS_ASSIGN_OR_RETURN(go.steps, p.get_int("steps", 27));
  MIGVIS_ASSIGN_OR_RETURN(go.eta, p.get_double("eta", 0.0));
  MIGVIS_ASSIGN_OR_RETURN(go.clip_x0, p.get_bool("clip", go.clip_x0));
  MIGVIS_ASSIGN_OR_RETURN(std::string grad_kind, p.get_string("guidance_grad", guidance_grad_name(go.grad)));
  MIGVIS_ASSIGN_OR_RETURN(go.grad, parse_guidance_grad(grad_kind));
  MIGVIS_ASSIGN_OR_RETURN(go.resample_negatives, p.get_bool("resample_negatives", go.resample_negatives));
  MIGVIS_ASSIGN_OR_RETURN(std::string mode, p.get_string("mode", "sdedit"));
  MIGVIS_ASSIGN_OR_RETURN(go.mode, parse_start_mode(mode));
  MIGVIS_ASSIGN_OR_RETURN(std::string sampler, p.get_string("sampler", "ddim"));
  if (sampler != "ddim" && sampler != "ddpm")
    return Status::InvalidArgument("job.yaml: params.sampler: expected ddim or ddpm, got \"" + sampler + "\"");
  go.ddpm = sampler == "ddpm";
  MIGVIS_ASSIGN_OR_RETURN(int64_t k_neg, p.get_int("negatives", 10));
  MIGVIS_ASSIGN_OR_RETURN(int64_t chunk, p.get_int("chunk", 16));
  const int64_t n_lat = vae.latents.size(0);
  for (int64_t g : groups)
    if (g < 1 || g > vae.groups)
      return Status::InvalidArgument(fmt::format("job.yaml: params.groups: {} outside 1..{}", g, vae.groups));
  if (groups.empty() || gammas.empty() || n_pairs < 1 || n_seeds < 1 || chunk < 1 || go.steps < 1)
    return Status::InvalidArgument("job.yaml: params: groups, gammas must be non-empty; pairs, seeds, chunk, steps >= 1");
  if (go.edit_t < 0 || go.edit_t >= T)
    return Status::InvalidArgument(fmt::format("job.yaml: params.edit_t: {} outside [0, {}) of the diffusion model", go.edit_t, T));
  if (k_neg < 1 || k_neg + 1 > n_lat)
    return Status::InvalidArgument(fmt::format("job.yaml: params.negatives: {} needs 1 <= K < {} latents", k_neg, n_lat));

  // Pairs (latent rows): sources and targets drawn without replacement, source != target.
  auto gen = at::detail::createCPUGenerator(ctx.spec.seed);
  auto perm_s = torch::randperm(n_lat, gen, torch::kLong), perm_t = torch::randperm(n_lat, gen, torch::kLong);
  std::vector<int64_t> src_row(n_pairs), tgt_row(n_pairs);
  for (int64_t i = 0; i < n_pairs; ++i) {
    src_row[i] = perm_s[i % n_lat].item<int64_t>();
    tgt_row[i] = perm_t[i % n_lat].item<int64_t>();
    if (tgt_row[i] == src_row[i]) tgt_row[i] = perm_t[(i + n_pairs) % n_lat].item<int64_t>();
  }
  // Negatives per pair (shared by its groups, gammas and seeds): latent rows other than the target.
  std::vector<torch::Tensor> negs(n_pairs);
  for (int64_t i = 0; i < n_pairs; ++i) {
    auto g2 = at::detail::createCPUGenerator(mix_seed(ctx.spec.seed, i, 77));
    auto perm = torch::randperm(n_lat - 1, g2, torch::kLong).slice(0, 0, k_neg);
    negs[i] = perm + (perm >= tgt_row[i]).to(torch::kLong);  // skip the target row
  }

  auto images01 = resize_images(images_tensor(ds), model.image_size_px);  // [N, C, S, S]
  if (images01.size(1) != model.channels)
    return Status::InvalidArgument(fmt::format("dataset has {} channels, diffusion model {}", images01.size(1), model.channels));
  const int64_t G = groups.size(), Gm = gammas.size(), P = n_pairs, S = n_seeds, R = vae.group_rank;
  const int64_t B = G * Gm * P * S;
  GuidedBatch grid;
  std::vector<torch::Tensor> xs, zs;
  std::vector<int64_t> grp, trow;
  std::vector<double> gam;
  for (int64_t gi = 0; gi < G; ++gi)
    for (int64_t ci = 0; ci < Gm; ++ci)
      for (int64_t pi = 0; pi < P; ++pi)
        for (int64_t si = 0; si < S; ++si) {
          const int64_t g0 = groups[gi] - 1;
          int64_t img = vae.image_index[src_row[pi]].item<int64_t>();
          xs.push_back(images01[img] * 2 - 1);
          auto rows = torch::cat({torch::tensor({tgt_row[pi]}, torch::kLong), negs[pi]});
          zs.push_back(vae.latents.index_select(0, rows).slice(1, g0 * R, (g0 + 1) * R));
          grp.push_back(g0);
          gam.push_back(gammas[ci]);
          grid.noise_seed.push_back(mix_seed(ctx.spec.seed, pi, si));
          // Per-step negatives: the same draws for a pair and seed in every group and gamma.
          grid.negative_seed.push_back(mix_seed(mix_seed(ctx.spec.seed, 77, 78), pi, si));
          trow.push_back(tgt_row[pi]);
        }
  grid.x_source = torch::stack(xs).to(dev);
  grid.z_cand = torch::stack(zs).to(dev);
  grid.group = torch::tensor(grp, torch::kLong).to(dev);
  grid.gamma = torch::tensor(gam, torch::kFloat32).to(dev);
  // The negatives' pool and target rows stay on the host: per-item CPU generators
  // draw from them (guided.cc), then the draws move to the grid's device.
  grid.z_pool = vae.latents;
  grid.target_row = torch::tensor(trow, torch::kLong);
  // gamma == 0 items of one pair and seed are the same edit in every group: computed once.
  const DedupedGrid dg = dedup_unguided(grid);
  const int64_t U = dg.unique.size();

  MIGVIS_LOG_INFO("synthesis: {} items ({} groups x {} gammas x {} pairs x {} seeds; {} computed, {} unguided duplicates "
                  "copied), chunk {}, edit_t {} of {}, {} steps, {}, guidance_grad {}, resample_negatives {}, clip {}",
                  B, G, Gm, P, S, U, B - U, chunk, go.edit_t, T, go.steps, mode, grad_kind, go.resample_negatives,
                  go.clip_x0);
  // Ranks split the grid by whole chunks (contiguous blocks, in order), so every
  // chunk is computed exactly as a single process would and rank 0 gathers a
  // result identical to the single-rank one.
  const int64_t n_chunks = (U + chunk - 1) / chunk;
  const Shard mine = shard_for(n_chunks, ctx.comm->rank(), ctx.comm->size());
  std::vector<torch::Tensor> out_x;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t ck = mine.begin; ck < mine.end; ++ck) {
    const int64_t c0 = ck * chunk;
    if (ctx.should_stop()) return Status::Unavailable("synthesis stopped on request before finishing (no checkpoint; rerun)");
    auto part = dg.unique.slice(c0, std::min(U, c0 + chunk));
    auto x = guided_edit(model.eps, crit, model.schedule, part, go);
    // Results cross to the host here: they are gathered and written.
    out_x.push_back(((x + 1) * 0.5).clamp(0, 1).to(torch::kFloat32).cpu().contiguous());
    if (ctx.comm->is_root())
      (void)schema::write_progress({std::min(U, (ck + 1) * chunk), U, "synthesis", schema::utc_now_iso8601()}, ctx.dir);
  }
  const int64_t S_px = images01.size(2);
  auto local_x = out_x.empty() ? torch::empty({0, model.channels, S_px, S_px}) : torch::cat(out_x);
  MIGVIS_ASSIGN_OR_RETURN(auto images_all, ctx.comm->gather_rows(local_x.contiguous(), 0));
  if (!ctx.comm->is_root()) return Status::Ok();
  if (images_all.size(0) != U)
    return Status::Internal(fmt::format("synthesis: gathered {} images, expected {}", images_all.size(0), U));
  auto images = images_all.to(torch::kFloat32).index_select(0, torch::tensor(dg.slot, torch::kLong)).contiguous();  // [B, C, S, S]
  // The bound each grid item reached against its own group's fixed candidates
  // (per item, so also for the copied gamma == 0 images).
  std::vector<torch::Tensor> mi_parts;
  for (int64_t c0 = 0; c0 < B; c0 += chunk) {
    const int64_t c1 = std::min(B, c0 + chunk);
    mi_parts.push_back(
        reached_mi(crit, (images.slice(0, c0, c1) * 2 - 1).to(dev), grid.slice(c0, c1)).to(torch::kFloat32).cpu());
  }
  auto mi_items = torch::cat(mi_parts).contiguous();  // [B]
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const int64_t C = images.size(1), H = images.size(2), W = images.size(3);
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& out = af->file();
  h5::Array<float> arr({(hsize_t)G, (hsize_t)Gm, (hsize_t)P, (hsize_t)S, (hsize_t)C, (hsize_t)H, (hsize_t)W});
  std::memcpy(arr.data.data(), images.data_ptr<float>(), arr.data.size() * sizeof(float));
  h5::WriteOptions wo;
  wo.gzip_level = 4;
  MIGVIS_RETURN_IF_ERROR(out.write("images", arr, wo));
  std::vector<int32_t> g32(groups.begin(), groups.end());
  MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<int32_t>("images", "groups", g32));
  MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<double>("images", "gammas", gammas));
  std::vector<int32_t> src_img, tgt_img;
  for (int64_t i = 0; i < P; ++i) {
    src_img.push_back(vae.image_index[src_row[i]].item<int64_t>());
    tgt_img.push_back(vae.image_index[tgt_row[i]].item<int64_t>());
  }
  MIGVIS_RETURN_IF_ERROR(out.write_vector("sources", src_img));
  MIGVIS_RETURN_IF_ERROR(out.write_vector("targets", tgt_img));
  h5::Array<float> mi_it({(hsize_t)G, (hsize_t)Gm, (hsize_t)P, (hsize_t)S});
  std::memcpy(mi_it.data.data(), mi_items.data_ptr<float>(), mi_it.data.size() * sizeof(float));
  MIGVIS_RETURN_IF_ERROR(out.write("mi_items", mi_it));
  auto mi_mean = mi_items.view({G, Gm, P * S}).mean(2).contiguous();
  h5::Array<float> mi({(hsize_t)G, (hsize_t)Gm});
  std::memcpy(mi.data.data(), mi_mean.data_ptr<float>(), mi.data.size() * sizeof(float));
  MIGVIS_RETURN_IF_ERROR(out.write("mi", mi));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<int64_t>("mi", "candidates", k_neg + 1));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<int64_t>("images", "edit_t", go.edit_t));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<int64_t>("images", "steps", go.steps));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<std::string>("images", "mode", mode));
  MIGVIS_RETURN_IF_ERROR(write_judge_split(out, split, images01.size(0)));
  MIGVIS_RETURN_IF_ERROR(af->commit());

  // One PNG per pair: rows groups, columns gammas (seed 0).
  auto v = images.view({G, Gm, P, S, C, H, W});
  for (int64_t pi = 0; pi < P; ++pi) {
    auto cells = v.select(2, pi).select(2, 0).reshape({G * Gm, C, H, W}).contiguous();
    h5::Array<float> a({(hsize_t)(G * Gm), (hsize_t)C, (hsize_t)H, (hsize_t)W});
    std::memcpy(a.data.data(), cells.data_ptr<float>(), a.data.size() * sizeof(float));
    std::string name = fmt::format("grid_pair{}.png", pi);
    MIGVIS_RETURN_IF_ERROR(png::write_png_grid(ctx.dir / name, a, G, Gm, 1, H < 64 ? 2 : 1));
    ctx.result->artifacts.push_back({"grid", name, ""});
  }
  ctx.result->artifacts.push_back({"images", schema::kOutFile, "/images"});
  ctx.result->metrics["images_per_s"] = B / std::max(secs, 1e-9);
  for (int64_t ci = 0; ci < Gm; ++ci)
    ctx.result->metrics[fmt::format("mi.gamma{:g}", gammas[ci])] = mi_mean.select(1, ci).mean().item<double>();
  MIGVIS_LOG_INFO("synthesis: {} images in {:.1f} s ({:.2f} images/s)", B, secs, B / std::max(secs, 1e-9));
  return Status::Ok();
}

}  // namespace migvis::worker
