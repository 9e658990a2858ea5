// Stage `eval`: how much each factor changes in the guided images, per latent
// group and gamma (MIGVIS_METHOD.md tables 2 and 3), judged by two independent
// factor read-outs (worker/eval/readout.h): a CNN of another design than the
// critic's and a classical pixel model (ridge on random pixel and conv
// features), each an ensemble of `judge_seeds` members, both
// trained only on the stimuli the critic and the diffusion model never saw (the
// judge split recorded in the synthesis job's /judge_heldout), scored on the
// others, and applied to /images of a synthesis job. Constant or near-constant
// factors are dropped (never read out, scored or tabled; out.h5 /dropped_factors).
// Two measures per (group, gamma, factor):
//  - change: how far the factor moved, in any direction, from the same (pair,
//    seed) at the reference gamma (0 when present, else the smallest), so noise
//    is paired;
//  - transfer: how specific the factor is to the item's own TARGET image (the
//    image whose group-g latent guided the edit): mean read-out distance to the
//    other pairs' targets minus the distance to its own target. It is 0 in
//    expectation without guidance (sources and targets are drawn independently),
//    and an edit that merely perturbs a factor leaves it ~0 while its change is
//    large; this is what separates the groups when the diffusion model's edits
//    are noisy (docs/METRICS.md, "Selectivity of guided images").
// Both are also divided by the same measure between two random stimuli as the
// same judge reads them (numerator and normaliser from one read-out), so
// factors are comparable (1 = as different as unrelated images). Standard
// errors are a bootstrap over source images (each resampled with all its items:
// seeds, and the controls it shares), not over items.
// Outputs (out.h5), for the CNN judge: /factor_change [G, Gamma, F] in label
// units (fraction changed for category/identity, degrees for pose, fraction of
// image for position, size units), /factor_change_normalized, /factor_transfer
// (normalized) and its bootstrap standard error /factor_transfer_se (all
// [G, Gamma, F]; NaN where the judge cannot read the factor), /quality [Gamma];
// the same under /pixel/ for the pixel judge; /judge_agreement [F] (Pearson
// correlation of the two judges' per-item normalized changes); /readout_score
// [2, F] (chance-corrected, judges x factors) and /dropped_factors. Metrics (CNN
// judge; the pixel judge's with prefix `pixel.`): change.g<g>.<f>,
// nchange.g<g>.<f>, transfer.g<g>.<f>, transfer_se.g<g>.<f>, slope.g<g>.<f>,
// readout.<factor> (raw held-out score), judge.<f> (chance-corrected, per
// role), unread.<f> (the judge's best chance-corrected score of a role below
// min_readout: its cells are not numbers), and agreement.<f>, agreement,
// guided_change.gamma<γ>, guided_transfer.gamma<γ>, quality.gamma<γ>,
// mi.gamma<γ> (the guiding critic's own score: not a selectivity measure).
// Figures: figure_pair<p>.png per pair (source | target | groups x gammas,
// labelled), artifact kind `figure`, captions in figure_pair<p>.json.
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "common/log.h"
#include "results/h5.h"
#include "results/png.h"
#include "schemas/job_spec.h"
#include "worker/eval/readout.h"
#include "worker/comm.h"
#include "worker/stages/eval.h"
#include "worker/stages/inputs.h"

namespace migvis::worker {

namespace {

// Mean nearest-neighbour distance of rows of a to rows of b ([n, F], [m, F]);
// with `exclude_self` (a is b) the zero self-distance is skipped.
double mean_nn_distance(const torch::Tensor& a, const torch::Tensor& b, bool exclude_self) {
  auto d = torch::cdist(a.to(torch::kFloat64), b.to(torch::kFloat64));
  if (exclude_self) d = d + torch::eye(a.size(0), torch::kFloat64) * 1e30;
  return std::get<0>(d.min(1)).mean().item<double>();
}

// The VAE's group x factor-role decoding matrix (/eval/group_factor, attr
// `factors`), found through the synthesis job's own job.yaml (inputs.vae).
struct GroupFactor {
  h5::Array<float> scores;  // [groups, roles]
  std::vector<std::string> roles;
};
Result<GroupFactor> read_vae_group_factor(const fs::path& syn_dir) {
  MIGVIS_ASSIGN_OR_RETURN(auto spec, schema::read_job_spec(syn_dir));
  MIGVIS_ASSIGN_OR_RETURN(fs::path vae_dir, require_input(spec, "vae"));
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(vae_dir / schema::kOutFile));
  if (!f.exists("eval/group_factor"))
    return Status::NotFound(f.where("/eval/group_factor") + ": the VAE recorded no group x factor decoding");
  GroupFactor gf;
  MIGVIS_ASSIGN_OR_RETURN(gf.scores, f.read<float>("eval/group_factor"));
  MIGVIS_ASSIGN_OR_RETURN(gf.roles, f.attr_vector<std::string>("eval/group_factor", "factors"));
  if (gf.scores.rank() != 2 || gf.scores.dim(1) != gf.roles.size())
    return Status::InvalidArgument(f.where("/eval/group_factor") + ": expected [groups, factors] matching attr factors");
  return gf;
}

}  // namespace

Status run_eval_stage(StageContext& ctx) {
  schema::Params p(ctx.spec.params, "job.yaml");
  MIGVIS_RETURN_IF_ERROR(p.check_known({"epochs", "batch", "lr", "width", "image_size", "augment_noise", "augment_blur",
                                        "keep_best", "report_gamma", "min_readout", "pixel_features", "pixel_conv_filters", "judge_seeds",
                                        "bootstrap"}));
  // The gamma whose changes become the per-group metrics (tables 2): the grid's
  // value nearest to it. 100 is the method's reference guidance scale.
  MIGVIS_ASSIGN_OR_RETURN(double report_gamma, p.get_double("report_gamma", 100.0));
  // A factor head whose held-out read-out score (chance-corrected accuracy, R^2
  // or mean cos error; 0 = chance, 1 = perfect) is below this measures nothing
  // but noise in generated images: it is left out of change and transfer.
  MIGVIS_ASSIGN_OR_RETURN(double min_readout, p.get_double("min_readout", 0.1));
  MIGVIS_ASSIGN_OR_RETURN(int64_t pixel_features, p.get_int("pixel_features", 2048));
  MIGVIS_ASSIGN_OR_RETURN(int64_t pixel_conv_filters, p.get_int("pixel_conv_filters", 64));
  MIGVIS_ASSIGN_OR_RETURN(int64_t judge_seeds, p.get_int("judge_seeds", 3));
  MIGVIS_ASSIGN_OR_RETURN(int64_t n_boot, p.get_int("bootstrap", 1000));
  if (pixel_features < 1 || pixel_conv_filters < 0 || judge_seeds < 1 || n_boot < 10)
    return Status::InvalidArgument(
        "job.yaml: params: need pixel_features >= 1, pixel_conv_filters >= 0, judge_seeds >= 1 and bootstrap >= 10");
  eval::ReadoutTrainOptions to;
  MIGVIS_ASSIGN_OR_RETURN(to.epochs, p.get_int("epochs", 20));
  MIGVIS_ASSIGN_OR_RETURN(to.batch, p.get_int("batch", 64));
  MIGVIS_ASSIGN_OR_RETURN(to.lr, p.get_double("lr", 2e-3));
  MIGVIS_ASSIGN_OR_RETURN(auto it, read_image_training_params(p));
  to.augment_noise = it.augment_noise;
  to.augment_blur = it.augment_blur;
  to.keep_best = it.keep_best;
  to.seed = ctx.spec.seed;
  MIGVIS_ASSIGN_OR_RETURN(fs::path ds_path, require_input(ctx.spec, "dataset"));
  MIGVIS_ASSIGN_OR_RETURN(fs::path syn_dir, require_input(ctx.spec, "synthesis"));
  data::ReadOptions ro;
  ro.sessions = false;
  MIGVIS_ASSIGN_OR_RETURN(auto ds, data::read_dataset(ds_path, ro));
  MIGVIS_ASSIGN_OR_RETURN(auto sf, h5::File::open(syn_dir / schema::kOutFile));
  MIGVIS_ASSIGN_OR_RETURN(auto imgs, sf.read<float>("images"));
  if (imgs.rank() != 7)
    return Status::InvalidArgument(sf.where("/images") + fmt::format(": expected [G, Gamma, P, S, C, H, W], got rank {}", imgs.rank()));
  MIGVIS_ASSIGN_OR_RETURN(auto groups, sf.attr_vector<int32_t>("images", "groups"));
  MIGVIS_ASSIGN_OR_RETURN(auto gammas, sf.attr_vector<double>("images", "gammas"));
  const int64_t G = imgs.dim(0), Gm = imgs.dim(1), P = imgs.dim(2), S = imgs.dim(3), C = imgs.dim(4), H = imgs.dim(5),
                W = imgs.dim(6);
  if ((int64_t)groups.size() != G || (int64_t)gammas.size() != Gm)
    return Status::InvalidArgument(sf.where("/images") + ": attrs groups/gammas do not match its shape");
  std::vector<float> mi_gg(G * Gm, std::nanf(""));
  if (sf.exists("mi")) { MIGVIS_ASSIGN_OR_RETURN(mi_gg, sf.read_vector<float>("mi")); }
  MIGVIS_ASSIGN_OR_RETURN(JudgeSplit split, read_judge_split(sf));
  const int64_t n_stim = ds.images.rank() == 4 ? static_cast<int64_t>(ds.images.dim(0)) : 0;
  if (!split.heldout.empty() && (split.heldout.back() >= n_stim || split.heldout.size() + split.critic.size() != (size_t)n_stim))
    return Status::InvalidArgument(sf.where("/judge_heldout") + fmt::format(": a split of {} images, the dataset has {}",
                                                                            split.heldout.size() + split.critic.size(), n_stim));
  if (split.heldout.size() < 5 || split.critic.empty())
    return Status::InvalidArgument(fmt::format(
        "{}: the judge split holds out {} of {} stimuli (judge_holdout {:g}); the judges need at least 5 held-out "
        "and some critic stimuli to score on: raise critic and diffusion params.judge_holdout",
        sf.where("/judge_heldout"), split.heldout.size(), n_stim, split.fraction));

  std::vector<std::string> dropped;
  auto heads = eval::heads_for(ds, &dropped);
  if (!dropped.empty())
    MIGVIS_LOG_INFO("eval: dropped constant or near-constant factors (not read out, scored or tabled): {}",
                    fmt::join(dropped, ", "));
  if (heads.empty())
    return Status::InvalidArgument(ds_path.string() + ": /stimuli/factors has no varying factor with role pose, "
                                   "category, identity, position or size: nothing to read out");
  // The judges read the stimuli at the synthesized resolution; they train on
  // the held-out part and are scored on the critic's part (unseen by them).
  auto stimuli = resize_images(images_tensor(ds), H);
  if (stimuli.size(1) != C) return Status::InvalidArgument("dataset and synthesized images differ in channels");
  auto targets = eval::targets_for(ds, heads);
  const auto held_idx = torch::tensor(split.heldout, torch::kLong), seen_idx = torch::tensor(split.critic, torch::kLong);
  auto pick = [](const std::vector<torch::Tensor>& v, const torch::Tensor& idx) {
    std::vector<torch::Tensor> o;
    for (auto& t : v) o.push_back(t.index_select(0, idx));
    return o;
  };
  const auto held_images = stimuli.index_select(0, held_idx), seen_images = stimuli.index_select(0, seen_idx);
  const auto held_targets = pick(targets, held_idx), seen_targets = pick(targets, seen_idx);
  MIGVIS_LOG_INFO("eval: judges train on {} held-out stimuli (judge_holdout {:g}) and are scored on the critic's {}",
                  split.heldout.size(), split.fraction, split.critic.size());

  eval::ReadoutOptions rop;
  rop.channels = C;
  MIGVIS_ASSIGN_OR_RETURN(rop.image_size_px, p.get_int("image_size", H));
  MIGVIS_ASSIGN_OR_RETURN(rop.width, p.get_int("width", 16));
  eval::PixelReadoutOptions pop;
  pop.image_size_px = std::min<int64_t>(16, H);
  pop.features = pixel_features;
  pop.conv_size_px = std::min<int64_t>(32, H);
  pop.conv_filters = pop.conv_size_px >= 8 ? pixel_conv_filters : 0;  // 5x5 filters, then a 4 x 4 pooling grid
  auto synth = torch::from_blob(imgs.data.data(), {G * Gm * P * S, C, H, W}, torch::kFloat32);
  // Each judge is an ensemble of `judge_seeds` members of its family trained
  // with different seeds (member 0 with the job's seed), their outputs
  // averaged (eval::average_predictions): a single judge's seed moves table 2
  // as much as the sampling error does.
  auto& m = ctx.result->metrics;
  std::vector<eval::Predictions> cnn_synth, cnn_stim, pix_synth, pix_stim;
  for (int64_t k = 0; k < judge_seeds; ++k) {
    const uint64_t seed = ctx.spec.seed + static_cast<uint64_t>(k) * 1000003ULL;
    torch::manual_seed(seed);
    eval::Readout cnn(rop, heads);
    cnn->to(stage_device(ctx));  // images stay on the host; batches move (eval::train_readout, predict)
    if (k == 0) record_model_device(ctx, "readout", *cnn);
    auto member_to = to;
    member_to.seed = seed;
    eval::train_readout(cnn, held_images, held_targets, member_to);
    cnn_synth.push_back(eval::predict(cnn, synth));
    cnn_stim.push_back(eval::predict(cnn, stimuli));
    if (k > 0) cnn_synth.back().features = cnn_stim.back().features = torch::Tensor();  // only member 0's are used
    auto member_pop = pop;
    member_pop.seed = seed;
    eval::PixelReadout pixel(member_pop, heads);
    pixel.fit(held_images, held_targets);
    pix_synth.push_back(pixel.predict(synth));
    pix_stim.push_back(pixel.predict(stimuli));
    if (k > 0) pix_synth.back().features = pix_stim.back().features = torch::Tensor();
    if (ctx.comm->is_root())  // the live display's bar: judge members trained
      (void)schema::write_progress({k + 1, judge_seeds, "judges", schema::utc_now_iso8601()}, ctx.dir);
  }
  m["judge_seeds"] = static_cast<double>(judge_seeds);

  struct Judge {
    std::string name, prefix;  // metric prefix: "" (CNN) or "pixel."
    eval::Predictions pred, stim_pred;
    std::vector<double> corrected;  // per head, chance-corrected score on unseen stimuli
    std::vector<eval::FactorHead> measured;
  };
  std::vector<Judge> judges(2);
  judges[0].name = "cnn";
  judges[1].name = "pixel";
  judges[1].prefix = "pixel.";
  judges[0].pred = eval::average_predictions(cnn_synth, heads);
  judges[0].stim_pred = eval::average_predictions(cnn_stim, heads);
  judges[1].pred = eval::average_predictions(pix_synth, heads);
  judges[1].stim_pred = eval::average_predictions(pix_stim, heads);
  for (auto& j : judges) {
    auto raw = eval::score_predictions(heads, pick(j.stim_pred.values, seen_idx), seen_targets);
    j.measured = heads;
    std::string unread;
    for (size_t i = 0; i < heads.size(); ++i) {
      j.corrected.push_back(eval::chance_corrected(heads[i], raw[i]));
      m[j.prefix + "readout." + heads[i].name] = raw[i];
      MIGVIS_LOG_INFO("eval: {} judge reads {} ({}) on unseen stimuli: {} {:.3f} (chance-corrected {:.3f})", j.name,
                      heads[i].name, heads[i].role,
                      heads[i].categorical ? "accuracy" : heads[i].periodic ? "mean cos error" : "R^2", raw[i],
                      j.corrected[i]);
      // An unreadable head keeps its place but gets no role, so
      // role_distances() and role_changes() skip it.
      if (j.corrected[i] < min_readout) {
        j.measured[i].role.clear();
        unread += fmt::format(" {} ({:.3f})", heads[i].name, j.corrected[i]);
      }
    }
    if (!unread.empty())
      MIGVIS_LOG_INFO("eval: {} judge: left out, below min_readout {:g} (chance-corrected):{}", j.name, min_readout, unread);
  }
  // Roles: those with a head at all, in table order; per judge, a role none of
  // whose heads it can read is "unread" (NaN cells, metric unread.<role>).
  std::vector<std::string> roles;
  for (auto& r : eval::factor_roles())
    for (auto& h : heads)
      if (h.role == r) { roles.push_back(r); break; }
  const int64_t F = roles.size();
  std::vector<std::vector<double>> role_score(2, std::vector<double>(F, -std::numeric_limits<double>::infinity()));
  std::vector<std::vector<bool>> readable(2, std::vector<bool>(F, false));
  for (size_t ji = 0; ji < 2; ++ji)
    for (int64_t f = 0; f < F; ++f)
      for (size_t i = 0; i < heads.size(); ++i)
        if (heads[i].role == roles[f]) {
          role_score[ji][f] = std::max(role_score[ji][f], judges[ji].corrected[i]);
          if (judges[ji].measured[i].role == roles[f]) readable[ji][f] = true;
        }
  bool any = false;
  for (auto& r : readable)
    for (bool b : r) any = any || b;
  if (!any)
    return Status::InvalidArgument(fmt::format("job.yaml: params.min_readout = {:g}: neither judge reads any factor that "
                                               "well (see the log for their chance-corrected scores); lower it or "
                                               "train the read-out longer",
                                               min_readout));
  for (size_t ji = 0; ji < 2; ++ji)
    for (int64_t f = 0; f < F; ++f) {
      m[judges[ji].prefix + "judge." + roles[f]] = role_score[ji][f];
      if (!readable[ji][f]) m[judges[ji].prefix + "unread." + roles[f]] = role_score[ji][f];
    }

  // The pair targets (read out from the stimuli, as each judge reads them) and sources.
  MIGVIS_ASSIGN_OR_RETURN(auto tgt_img, sf.read_vector<int32_t>("targets"));
  if ((int64_t)tgt_img.size() != P)
    return Status::InvalidArgument(sf.where("/targets") + fmt::format(": expected {} pair targets, got {}", P, tgt_img.size()));
  for (int32_t t : tgt_img)
    if (t < 0 || t >= stimuli.size(0))
      return Status::InvalidArgument(sf.where("/targets") + fmt::format(": image index {} outside the dataset's {} images",
                                                                        t, stimuli.size(0)));
  std::vector<int32_t> src_img(P);
  for (int64_t i = 0; i < P; ++i) src_img[i] = static_cast<int32_t>(i);  // no /sources: pairs are the clusters
  if (sf.exists("sources")) {
    MIGVIS_ASSIGN_OR_RETURN(src_img, sf.read_vector<int32_t>("sources"));
    if ((int64_t)src_img.size() != P)
      return Status::InvalidArgument(sf.where("/sources") + fmt::format(": expected {} pair sources, got {}", P, src_img.size()));
  }
  const auto tgt_index = torch::tensor(std::vector<int64_t>(tgt_img.begin(), tgt_img.end()), torch::kLong);
  const int64_t ref = std::min_element(gammas.begin(), gammas.end()) - gammas.begin();
  auto items = [&](int64_t g, int64_t c) { return torch::arange((g * Gm + c) * P * S, (g * Gm + c + 1) * P * S, torch::kLong); };

  // Bootstrap over source images: cluster k holds the items (pairs x seeds) of
  // one source image; a draw resamples clusters with replacement.
  std::map<int32_t, int64_t> cluster_of_src;
  std::vector<int64_t> cluster(P * S);
  for (int64_t pi = 0; pi < P; ++pi) {
    auto c = cluster_of_src.emplace(src_img[pi], (int64_t)cluster_of_src.size()).first->second;
    for (int64_t si = 0; si < S; ++si) cluster[pi * S + si] = c;
  }
  const int64_t K = cluster_of_src.size();
  const auto cluster_t = torch::tensor(cluster, torch::kLong);
  auto boot_gen = at::detail::createCPUGenerator(ctx.spec.seed + 2);
  const auto draws = torch::randint(K, {n_boot, K}, boot_gen, torch::kLong);
  auto weights = torch::zeros({n_boot, K}, torch::kFloat64);  // [n_boot, K] times each cluster was drawn
  weights.scatter_add_(1, draws, torch::ones({n_boot, K}, torch::kFloat64));
  const auto cluster_n = torch::zeros({K}, torch::kFloat64).index_add_(0, cluster_t, torch::ones({P * S}, torch::kFloat64));
  // Standard error of the mean of per-item values v [P * S] under the bootstrap.
  auto boot_se = [&](const torch::Tensor& v) {
    if (K < 2) return 0.0;
    auto sums = torch::zeros({K}, torch::kFloat64).index_add_(0, cluster_t, v.to(torch::kFloat64));
    auto means = weights.matmul(sums) / weights.matmul(cluster_n);  // [n_boot]
    return means.std().item<double>();
  };

  // The groups the VAE put pose and category in (its held-out decoding of each
  // factor role from each group, /eval/group_factor of the synthesis job's VAE):
  // the cells of the diagonal contrast. Absent (a VAE without it, one group
  // carrying both): no contrast metric.
  struct Diagonal { int64_t pose_g = -1, cat_g = -1, pose_f = -1, cat_f = -1; } diagonal;
  {
    auto role_index = [&](const std::string& r) {
      auto it = std::find(roles.begin(), roles.end(), r);
      return it == roles.end() ? int64_t{-1} : static_cast<int64_t>(it - roles.begin());
    };
    diagonal.pose_f = role_index("pose");
    diagonal.cat_f = role_index("category");
    auto gf = read_vae_group_factor(syn_dir);
    if (gf.ok() && diagonal.pose_f >= 0 && diagonal.cat_f >= 0) {
      auto best_group = [&](const std::string& role) {
        int64_t best = -1;
        float v = 0;
        const auto col = std::find(gf->roles.begin(), gf->roles.end(), role) - gf->roles.begin();
        if (col == static_cast<int64_t>(gf->roles.size())) return int64_t{-1};
        for (int64_t row = 0; row < static_cast<int64_t>(gf->scores.dim(0)); ++row) {
          const float x = gf->scores.data[row * gf->roles.size() + col];
          if (best < 0 || x > v) { best = row; v = x; }
        }
        // Row r is group r + 1; the synthesis grid's index of that group.
        auto it = std::find(groups.begin(), groups.end(), static_cast<int32_t>(best + 1));
        return it == groups.end() ? int64_t{-1} : static_cast<int64_t>(it - groups.begin());
      };
      diagonal.pose_g = best_group("pose");
      diagonal.cat_g = best_group("category");
      if (diagonal.pose_g == diagonal.cat_g) diagonal.pose_g = diagonal.cat_g = -1;
    } else if (!gf.ok()) {
      MIGVIS_LOG_INFO("eval: no diagonal contrast: {}", gf.status().message());
    }
  }
  int64_t top = 0;  // the reported gamma's column
  for (int64_t c = 1; c < Gm; ++c)
    if (std::abs(gammas[c] - report_gamma) < std::abs(gammas[top] - report_gamma)) top = c;

  struct Tables {
    h5::Array<float> change, nchange, transfer, transfer_se;
    std::map<std::pair<int64_t, int64_t>, torch::Tensor> item_transfer;  // (g, f) at the reported gamma: [P * S]
    std::vector<torch::Tensor> item_nchange;  // per role: [G * (Gm - 1) * P * S] float64 (undefined: unread)
    std::vector<double> baseline;
  };
  const std::vector<hsize_t> shape3 = {(hsize_t)G, (hsize_t)Gm, (hsize_t)F};
  std::vector<Tables> tabs(2);
  const float nan = std::nanf("");
  for (size_t ji = 0; ji < 2; ++ji) {
    auto& j = judges[ji];
    auto& t = tabs[ji];
    t.change = h5::Array<float>(shape3);
    t.nchange = h5::Array<float>(shape3);
    t.transfer = h5::Array<float>(shape3);
    t.transfer_se = h5::Array<float>(shape3);
    // Normaliser: the change between two random stimuli the judge did not train
    // on, as this judge reads them (numerator and normaliser from one read-out).
    auto gen = at::detail::createCPUGenerator(ctx.spec.seed + 1);
    const int64_t n = seen_idx.size(0);
    auto ia = seen_idx.index_select(0, torch::randint(n, {4096}, gen, torch::kLong));
    auto ib = seen_idx.index_select(0, torch::randint(n, {4096}, gen, torch::kLong));
    t.baseline = eval::role_changes(j.measured, pick(j.stim_pred.values, ia), pick(j.stim_pred.values, ib), roles);
    // Targets per item, for the item's own pair (k = 0) and for the other pairs
    // (k = 1..P-1: pair p gets the target of pair (p + k) mod P), the controls.
    std::vector<std::vector<torch::Tensor>> tgt_shifted(P);
    for (int64_t k = 0; k < P; ++k)
      for (auto& v : j.stim_pred.values)
        tgt_shifted[k].push_back(v.index_select(0, tgt_index).roll(-k, 0).repeat_interleave(S, 0));
    // Specificity of items toward their own targets: mean distance to the other
    // pairs' targets minus the distance to their own, per role. Generic
    // perturbation (an edit that randomises a factor) moves an item away from or
    // toward all targets alike and leaves it ~0; only movement toward the item's
    // own target raises it. (With one pair there are no controls: the own
    // distance alone, negated.) Per item and role: [P * S] float64.
    auto specificity = [&](const std::vector<torch::Tensor>& values) {
      auto own = eval::role_distances(j.measured, values, tgt_shifted[0], roles);
      std::vector<torch::Tensor> spec(F);
      for (int64_t f = 0; f < F; ++f)
        if (own[f].defined()) spec[f] = torch::zeros_like(own[f]);
      for (int64_t k = 1; k < P; ++k) {
        auto d = eval::role_distances(j.measured, values, tgt_shifted[k], roles);
        for (int64_t f = 0; f < F; ++f)
          if (d[f].defined()) spec[f] += d[f] / static_cast<double>(P - 1);
      }
      for (int64_t f = 0; f < F; ++f)
        if (own[f].defined()) spec[f] -= own[f];
      return spec;
    };
    std::vector<std::vector<torch::Tensor>> item_parts(F);
    for (int64_t g = 0; g < G; ++g) {
      auto at = [&](int64_t c) { return pick(j.pred.values, items(g, c)); };
      const auto ref_values = at(ref);
      for (int64_t c = 0; c < Gm; ++c) {
        auto dist = eval::role_distances(j.measured, at(c), ref_values, roles);
        auto spec = specificity(at(c));
        for (int64_t f = 0; f < F; ++f) {
          const int64_t cell = (g * Gm + c) * F + f;
          if (!dist[f].defined()) {
            t.change.data[cell] = t.nchange.data[cell] = t.transfer.data[cell] = t.transfer_se.data[cell] = nan;
            continue;
          }
          const double base = std::max(t.baseline[f], 1e-12);
          t.change.data[cell] = dist[f].mean().item<double>();
          t.nchange.data[cell] = t.change.data[cell] / base;
          if (c != ref) item_parts[f].push_back(dist[f] / base);
          // Not paired with the reference gamma: sources and targets are drawn
          // independently, so an unguided item's specificity is 0 in expectation
          // and subtracting a noisy estimate of that 0 would only add variance.
          // The reference column itself shows the null (0 +- its standard error).
          auto d = spec[f] / base;
          t.transfer.data[cell] = d.mean().item<double>();
          t.transfer_se.data[cell] = boot_se(d);
          if (c == top) t.item_transfer[{g, f}] = d;
        }
      }
    }
    t.item_nchange.resize(F);
    for (int64_t f = 0; f < F; ++f)
      if (!item_parts[f].empty()) t.item_nchange[f] = torch::cat(item_parts[f]);
  }
  // Agreement of the two judges: Pearson correlation of their per-item
  // normalized changes (every group, every gamma but the reference).
  std::vector<float> agreement(F, nan);
  double agree_sum = 0;
  int agree_n = 0;
  for (int64_t f = 0; f < F; ++f) {
    auto& a = tabs[0].item_nchange[f];
    auto& b = tabs[1].item_nchange[f];
    if (!a.defined() || !b.defined() || a.numel() < 3) continue;
    auto ac = a - a.mean(), bc = b - b.mean();
    const double den = std::sqrt((ac * ac).sum().item<double>() * (bc * bc).sum().item<double>());
    if (!(den > 0)) continue;
    agreement[f] = (ac * bc).sum().item<double>() / den;
    m["agreement." + roles[f]] = agreement[f];
    agree_sum += agreement[f];
    ++agree_n;
    MIGVIS_LOG_INFO("eval: judges agree on {} changes: r = {:.3f} over {} items", roles[f], agreement[f], a.numel());
  }
  if (agree_n > 0) m["agreement"] = agree_sum / agree_n;

  m["report_gamma"] = gammas[top];
  // The factor (role index) with the largest finite value of cells (g, top, *); -1 when none.
  auto argmax_role = [&](const h5::Array<float>& a, int64_t g) {
    int64_t best = -1;
    for (int64_t f = 0; f < F; ++f) {
      const float v = a.data[(g * Gm + top) * F + f];
      if (std::isfinite(v) && (best < 0 || v > a.data[(g * Gm + top) * F + best])) best = f;
    }
    return best;
  };
  std::vector<int64_t> steered_cnn(G, -1);
  for (size_t ji = 0; ji < 2; ++ji) {
    const auto& t = tabs[ji];
    const std::string& px = judges[ji].prefix;
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t c = 0; c < Gm; ++c) {
        std::string row;
        for (int64_t f = 0; f < F; ++f) {
          const int64_t cell = (g * Gm + c) * F + f;
          row += std::isfinite(t.nchange.data[cell])
                     ? fmt::format(" {} {:.3f}/{:+.3f}±{:.3f}", roles[f], t.nchange.data[cell], t.transfer.data[cell],
                                   t.transfer_se.data[cell])
                     : fmt::format(" {} unread", roles[f]);
        }
        MIGVIS_LOG_INFO("eval: {} judge: group {} gamma {:g} normalized change/transfer:{}", judges[ji].name, groups[g],
                        gammas[c], row);
      }
      for (int64_t f = 0; f < F; ++f) {
        const int64_t cell = (g * Gm + top) * F + f;
        if (!std::isfinite(t.change.data[cell])) continue;
        const std::string key = fmt::format("g{}.{}", groups[g], roles[f]);
        m[px + "change." + key] = t.change.data[cell];
        m[px + "nchange." + key] = t.nchange.data[cell];
        m[px + "transfer." + key] = t.transfer.data[cell];
        m[px + "transfer_se." + key] = t.transfer_se.data[cell];
        double num = 0, den = 0;
        for (int64_t c = 0; c < Gm; ++c) {
          const double dg = gammas[c] - gammas[ref];
          num += dg * t.change.data[(g * Gm + c) * F + f];
          den += dg * dg;
        }
        m[px + "slope." + key] = den > 0 ? num / den : 0.0;
      }
      const int64_t steered = argmax_role(t.transfer, g), dominant = argmax_role(t.nchange, g);
      if (ji == 0) steered_cnn[g] = steered;
      if (steered >= 0 && dominant >= 0)
        MIGVIS_LOG_INFO("eval: {} judge: group {} changes {} most (normalized {:.3f}) and moves {} toward the target "
                        "most (transfer {:+.3f}) at gamma {:g}",
                        judges[ji].name, groups[g], roles[dominant], t.nchange.data[(g * Gm + top) * F + dominant],
                        roles[steered], t.transfer.data[(g * Gm + top) * F + steered], gammas[top]);
    }
    for (int64_t c = 0; c < Gm; ++c) {
      double gc = 0, gt = 0;
      int n = 0;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t steered = argmax_role(t.transfer, g), dominant = argmax_role(t.nchange, g);
        if (steered < 0 || dominant < 0) continue;
        gt += t.transfer.data[(g * Gm + c) * F + steered];
        gc += t.nchange.data[(g * Gm + c) * F + dominant];
        ++n;
      }
      const std::string gname = fmt::format("gamma{:g}", gammas[c]);
      if (n > 0) {
        m[px + "guided_change." + gname] = gc / n;
        m[px + "guided_transfer." + gname] = gt / n;
      }
    }
    // Diagonal contrast at the reported gamma: the pose group's pose transfer
    // plus the category group's category transfer minus the two crossed cells,
    // per item (the four cells share their pairs), with its bootstrap error over
    // source images: the cells' covariance is in it, not assumed away.
    if (diagonal.pose_g >= 0 && diagonal.cat_g >= 0) {
      auto cell = [&](int64_t g, int64_t f) {
        auto it = t.item_transfer.find({g, f});
        return it == t.item_transfer.end() ? torch::Tensor() : it->second;
      };
      auto pp = cell(diagonal.pose_g, diagonal.pose_f), cc = cell(diagonal.cat_g, diagonal.cat_f),
           pc = cell(diagonal.pose_g, diagonal.cat_f), cp = cell(diagonal.cat_g, diagonal.pose_f);
      if (pp.defined() && cc.defined() && pc.defined() && cp.defined()) {
        auto d = pp + cc - pc - cp;
        const double mean = d.mean().item<double>(), se = boot_se(d);
        m[px + "contrast"] = mean;
        m[px + "contrast_se"] = se;
        MIGVIS_LOG_INFO("eval: {} judge: diagonal contrast (pose group {}, category group {}) at gamma {:g}: "
                        "{:+.3f} +- {:.3f} ({:.1f} SE, bootstrap over {} sources)",
                        judges[ji].name, groups[diagonal.pose_g], groups[diagonal.cat_g], gammas[top], mean, se,
                        se > 0 ? mean / se : 0.0, K);
      }
    }
  }
  // Image quality: CNN-judge feature distance of the guided images to their
  // nearest stimulus, relative to that among stimuli.
  const double stim_nn = mean_nn_distance(judges[0].stim_pred.features, judges[0].stim_pred.features, true);
  std::vector<float> quality(Gm);
  for (int64_t c = 0; c < Gm; ++c) {
    std::vector<torch::Tensor> idx;
    for (int64_t g = 0; g < G; ++g) idx.push_back(items(g, c));
    auto f = judges[0].pred.features.index_select(0, torch::cat(idx));
    quality[c] = mean_nn_distance(f, judges[0].stim_pred.features, false) / std::max(stim_nn, 1e-12);
    double mi = 0;
    for (int64_t g = 0; g < G; ++g) mi += mi_gg[g * Gm + c] / G;
    const std::string gname = fmt::format("gamma{:g}", gammas[c]);
    if (std::isfinite(mi)) m["mi." + gname] = mi;
    m["quality." + gname] = quality[c];
  }

  if (!ctx.comm->is_root()) return Status::Ok();
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& out = af->file();
  for (size_t ji = 0; ji < 2; ++ji) {
    auto& t = tabs[ji];
    const std::string dir = ji == 0 ? "" : "pixel/";
    for (auto [name, arr] : {std::pair<const char*, h5::Array<float>*>{"factor_change", &t.change},
                             {"factor_change_normalized", &t.nchange},
                             {"factor_transfer", &t.transfer},
                             {"factor_transfer_se", &t.transfer_se}}) {
      const std::string path = dir + name;
      MIGVIS_RETURN_IF_ERROR(out.write(path, *arr));
      MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<std::string>(path, "factors", roles));
      MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<double>(path, "gammas", gammas));
      MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<int32_t>(path, "groups", groups));
    }
    std::vector<double> base(t.baseline.begin(), t.baseline.end());
    MIGVIS_RETURN_IF_ERROR(out.write_vector(dir + "random_pair_change", base));
  }
  MIGVIS_RETURN_IF_ERROR(out.write_vector("quality", quality));
  MIGVIS_RETURN_IF_ERROR(out.write_vector("judge_agreement", agreement));
  MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<std::string>("judge_agreement", "factors", roles));
  h5::Array<float> scores({2, (hsize_t)F});
  for (size_t ji = 0; ji < 2; ++ji)
    for (int64_t f = 0; f < F; ++f) scores.data[ji * F + f] = role_score[ji][f];
  MIGVIS_RETURN_IF_ERROR(out.write("readout_score", scores));
  MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<std::string>("readout_score", "factors", roles));
  MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<std::string>("readout_score", "judges", {"cnn", "pixel"}));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<double>("readout_score", "min_readout", min_readout));
  MIGVIS_RETURN_IF_ERROR(out.write_vector("dropped_factors", dropped.empty() ? std::vector<std::string>{""} : dropped));
  MIGVIS_RETURN_IF_ERROR(af->commit());
  ctx.result->artifacts.push_back({"factor_change", schema::kOutFile, "/factor_change"});

  // One labelled figure per pair (seed 0): source | target | groups x gammas.
  std::vector<std::string> row_labels;
  for (int64_t g = 0; g < G; ++g)
    row_labels.push_back(steered_cnn[g] >= 0 ? fmt::format("group {}: {}", groups[g], roles[steered_cnn[g]])
                                             : fmt::format("group {}", groups[g]));
  std::vector<std::string> col_labels;
  for (double gm : gammas) col_labels.push_back(fmt::format("g={:g}", gm));
  auto v = synth.view({G, Gm, P, S, C, H, W});
  for (int64_t pi = 0; pi < P; ++pi) {
    png::PairFigure fig;
    fig.cell_px = H;
    fig.channels = C;
    auto as_vec = [](const torch::Tensor& t) {
      auto c = t.contiguous();
      return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    };
    fig.source = as_vec(stimuli[src_img[pi]]);
    fig.target = as_vec(stimuli[tgt_img[pi]]);
    fig.cells = as_vec(v.select(2, pi).select(2, 0));
    fig.rows = row_labels;
    fig.columns = col_labels;
    fig.title = fmt::format("pair {}: source {} target {}", pi, src_img[pi], tgt_img[pi]);
    const std::string name = fmt::format("figure_pair{}.png", pi);
    MIGVIS_RETURN_IF_ERROR(png::write_pair_figure(ctx.dir / name, fig, H < 64 ? 2 : 1));
    // Caption for the report (a format: keys pair, source, target, rows, gammas).
    std::string rows_json;
    for (auto& r : row_labels) rows_json += (rows_json.empty() ? "\"" : ", \"") + r + "\"";
    const std::string cap = fmt::format(
        "{{\"pair\": {}, \"source\": {}, \"target\": {}, \"rows\": [{}], \"gammas\": [{}], \"judge\": \"cnn\"}}\n",
        pi, src_img[pi], tgt_img[pi], rows_json, fmt::join(gammas, ", "));
    MIGVIS_RETURN_IF_ERROR(write_file_atomic(ctx.dir / fmt::format("figure_pair{}.json", pi), cap));
    ctx.result->artifacts.push_back({"figure", name, ""});
  }
  return Status::Ok();
}

}  // namespace migvis::worker
