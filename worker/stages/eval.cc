// Stage `eval`: how much each factor changes in the guided images, per latent
// group and gamma (MIGVIS_METHOD.md tables 2 and 3). A factor read-out network
// is trained on the stimuli and applied to /images of a synthesis job.
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
// Both are also divided by the same measure between two random stimuli, so
// factors are comparable (1 = as different as unrelated images).
// Outputs (out.h5): /factor_change [G, Gamma, F] in label units (fraction changed
// for category/identity, degrees for pose, fraction of image for position, size
// units), /factor_change_normalized, /factor_transfer (normalized) and its
// standard error over items /factor_transfer_se (all [G, Gamma, F]), /quality
// [Gamma]; metrics change.g<g>.<f>, nchange.g<g>.<f> (normalized),
// transfer.g<g>.<f>, transfer_se.g<g>.<f>, slope.g<g>.<f>, mi.gamma<γ>,
// guided_change.gamma<γ>, guided_transfer.gamma<γ>, quality.gamma<γ> and
// readout.<factor> (held-out score of the read-out).
#include <cmath>

#include <fmt/format.h>

#include "common/log.h"
#include "results/h5.h"
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

}  // namespace

Status run_eval_stage(StageContext& ctx) {
  schema::Params p(ctx.spec.params, "job.yaml");
  MIGVIS_RETURN_IF_ERROR(p.check_known({"epochs", "batch", "lr", "width", "image_size", "augment_noise", "augment_blur",
                                        "keep_best", "report_gamma", "min_readout"}));
  // The gamma whose changes become the per-group metrics (tables 2): the grid's
  // value nearest to it. 100 is the method's reference guidance scale.
  MIGVIS_ASSIGN_OR_RETURN(double report_gamma, p.get_double("report_gamma", 100.0));
  // A factor head whose held-out read-out score (chance-corrected accuracy, R^2
  // or mean cos error; 0 = chance, 1 = perfect) is below this measures nothing
  // but noise in generated images: it is left out of change and transfer.
  MIGVIS_ASSIGN_OR_RETURN(double min_readout, p.get_double("min_readout", 0.1));
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

  auto heads = eval::heads_for(ds);
  if (heads.empty())
    return Status::InvalidArgument(ds_path.string() + ": /stimuli/factors has no factor with role pose, category, "
                                   "identity, position or size: nothing to read out");
  // Read-out on the stimuli at the synthesized resolution.
  auto stimuli = resize_images(images_tensor(ds), H);
  if (stimuli.size(1) != C) return Status::InvalidArgument("dataset and synthesized images differ in channels");
  eval::ReadoutOptions rop;
  rop.channels = C;
  MIGVIS_ASSIGN_OR_RETURN(rop.image_size_px, p.get_int("image_size", H));
  MIGVIS_ASSIGN_OR_RETURN(rop.width, p.get_int("width", 16));
  torch::manual_seed(ctx.spec.seed);
  eval::Readout readout(rop, heads);
  readout->to(stage_device(ctx));  // stimuli stay on the host; batches move (eval::train_readout, predict)
  record_model_device(ctx, "readout", *readout);
  auto targets = eval::targets_for(ds, heads);
  auto scores = eval::train_readout(readout, stimuli, targets, to);
  for (size_t i = 0; i < heads.size(); ++i) {
    ctx.result->metrics["readout." + heads[i].name] = scores[i];
    MIGVIS_LOG_INFO("eval: read-out {} ({}) held-out {} {:.3f}", heads[i].name, heads[i].role,
                    heads[i].categorical ? "accuracy" : heads[i].periodic ? "mean cos error" : "R^2", scores[i]);
  }
  // The heads that measure: an unreadable head keeps its place in the read-out
  // but gets no role, so role_distances() and role_changes() skip it.
  std::vector<eval::FactorHead> measured = heads;
  std::string unread;
  for (size_t i = 0; i < heads.size(); ++i) {
    const double chance = heads[i].categorical ? 1.0 / heads[i].classes : 0.0;
    const double corrected = (scores[i] - chance) / (1.0 - chance);
    if (corrected < min_readout) {
      measured[i].role.clear();
      unread += fmt::format(" {} ({:.3f})", heads[i].name, corrected);
    }
  }
  std::vector<std::string> roles;
  for (auto& r : eval::factor_roles())
    for (auto& h : measured)
      if (h.role == r) { roles.push_back(r); break; }
  if (!unread.empty())
    MIGVIS_LOG_INFO("eval: left out, read-out score below min_readout {:g} (chance-corrected):{}", min_readout, unread);
  if (roles.empty())
    return Status::InvalidArgument(fmt::format("job.yaml: params.min_readout = {:g}: no factor's read-out reaches it "
                                               "(chance-corrected held-out scores:{}); lower it or train the read-out longer",
                                               min_readout, unread));
  const int64_t F = roles.size();

  // Normaliser: the change between two random stimuli (their true labels).
  auto gen = at::detail::createCPUGenerator(ctx.spec.seed + 1);
  const int64_t n = stimuli.size(0);
  auto ia = torch::randint(n, {4096}, gen, torch::kLong), ib = torch::randint(n, {4096}, gen, torch::kLong);
  std::vector<torch::Tensor> ta, tb;
  for (auto& t : targets) { ta.push_back(t.index_select(0, ia)); tb.push_back(t.index_select(0, ib)); }
  auto baseline = eval::role_changes(measured, ta, tb, roles);

  auto synth = torch::from_blob(imgs.data.data(), {G * Gm * P * S, C, H, W}, torch::kFloat32);
  auto pred = eval::predict(readout, synth);
  auto stim_pred = eval::predict(readout, stimuli);
  // The read-out of each pair's target stimulus, repeated over seeds (item order p, s).
  MIGVIS_ASSIGN_OR_RETURN(auto tgt_img, sf.read_vector<int32_t>("targets"));
  if ((int64_t)tgt_img.size() != P)
    return Status::InvalidArgument(sf.where("/targets") + fmt::format(": expected {} pair targets, got {}", P, tgt_img.size()));
  for (int32_t t : tgt_img)
    if (t < 0 || t >= stimuli.size(0))
      return Status::InvalidArgument(sf.where("/targets") + fmt::format(": image index {} outside the dataset's {} images",
                                                                        t, stimuli.size(0)));
  const auto tgt_index = torch::tensor(std::vector<int64_t>(tgt_img.begin(), tgt_img.end()), torch::kLong);
  // Targets per item, for the item's own pair (k = 0) and for the other pairs
  // (k = 1..P-1: pair p gets the target of pair (p + k) mod P), the controls.
  std::vector<std::vector<torch::Tensor>> tgt_shifted(P);
  for (int64_t k = 0; k < P; ++k)
    for (auto& v : stim_pred.values)
      tgt_shifted[k].push_back(v.index_select(0, tgt_index).roll(-k, 0).repeat_interleave(S, 0));
  // Specificity of items toward their own targets: mean distance to the other
  // pairs' targets minus the distance to their own, per role. Generic
  // perturbation (an edit that randomises a factor) moves an item away from or
  // toward all targets alike and leaves it ~0; only movement toward the item's
  // own target raises it. (With one pair there are no controls: the own
  // distance alone, negated.)
  // Per item and role: [P * S] float64.
  auto specificity = [&](const std::vector<torch::Tensor>& values) {
    auto own = eval::role_distances(measured, values, tgt_shifted[0], roles);
    std::vector<torch::Tensor> spec(F);
    for (int64_t f = 0; f < F; ++f) spec[f] = torch::zeros_like(own[f]);
    for (int64_t k = 1; k < P; ++k) {
      auto d = eval::role_distances(measured, values, tgt_shifted[k], roles);
      for (int64_t f = 0; f < F; ++f) spec[f] += d[f] / static_cast<double>(P - 1);
    }
    for (int64_t f = 0; f < F; ++f) spec[f] -= own[f];
    return spec;
  };
  const double stim_nn = mean_nn_distance(stim_pred.features, stim_pred.features, true);
  const int64_t ref = std::min_element(gammas.begin(), gammas.end()) - gammas.begin();
  auto items = [&](int64_t g, int64_t c) { return torch::arange((g * Gm + c) * P * S, (g * Gm + c + 1) * P * S, torch::kLong); };

  h5::Array<float> change({(hsize_t)G, (hsize_t)Gm, (hsize_t)F}), nchange({(hsize_t)G, (hsize_t)Gm, (hsize_t)F}),
      transfer({(hsize_t)G, (hsize_t)Gm, (hsize_t)F}), transfer_se({(hsize_t)G, (hsize_t)Gm, (hsize_t)F});
  for (int64_t g = 0; g < G; ++g) {
    auto at = [&](int64_t c) {
      std::vector<torch::Tensor> v;
      for (auto& x : pred.values) v.push_back(x.index_select(0, items(g, c)));
      return v;
    };
    const auto ref_values = at(ref);
    for (int64_t c = 0; c < Gm; ++c) {
      auto ch = eval::role_changes(measured, at(c), ref_values, roles);
      auto spec = specificity(at(c));
      for (int64_t f = 0; f < F; ++f) {
        const double base = std::max(baseline[f], 1e-12);
        change.data[(g * Gm + c) * F + f] = ch[f];
        nchange.data[(g * Gm + c) * F + f] = ch[f] / base;
        // Not paired with the reference gamma: sources and targets are drawn
        // independently, so an unguided item's specificity is 0 in expectation
        // and subtracting a noisy estimate of that 0 would only add variance.
        // The reference column itself shows the null (0 +- its standard error).
        auto d = spec[f] / base;
        transfer.data[(g * Gm + c) * F + f] = d.mean().item<double>();
        transfer_se.data[(g * Gm + c) * F + f] =
            d.numel() > 1 ? (d.std() / std::sqrt(static_cast<double>(d.numel()))).item<double>() : 0.0;
      }
    }
  }
  int64_t top = 0;  // the reported gamma's column
  for (int64_t c = 1; c < Gm; ++c)
    if (std::abs(gammas[c] - report_gamma) < std::abs(gammas[top] - report_gamma)) top = c;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < Gm; ++c) {
      std::string row;
      for (int64_t f = 0; f < F; ++f)
        row += fmt::format(" {} {:.3f}/{:+.3f}±{:.3f}", roles[f], nchange.data[(g * Gm + c) * F + f],
                           transfer.data[(g * Gm + c) * F + f], transfer_se.data[(g * Gm + c) * F + f]);
      MIGVIS_LOG_INFO("eval: group {} gamma {:g} normalized change/transfer:{}", groups[g], gammas[c], row);
    }
  std::vector<float> quality(Gm);
  for (int64_t c = 0; c < Gm; ++c) {
    std::vector<torch::Tensor> idx;
    for (int64_t g = 0; g < G; ++g) idx.push_back(items(g, c));
    auto f = pred.features.index_select(0, torch::cat(idx));
    quality[c] = mean_nn_distance(f, stim_pred.features, false) / std::max(stim_nn, 1e-12);
  }

  auto& m = ctx.result->metrics;
  m["report_gamma"] = gammas[top];
  // The factor each group moves toward its target most, at the reported gamma.
  std::vector<int64_t> steered(G, 0);
  for (int64_t g = 0; g < G; ++g) {
    int64_t dominant = 0;
    for (int64_t f = 0; f < F; ++f) {
      const std::string key = fmt::format("g{}.{}", groups[g], roles[f]);
      m["change." + key] = change.data[(g * Gm + top) * F + f];
      m["nchange." + key] = nchange.data[(g * Gm + top) * F + f];
      m["transfer." + key] = transfer.data[(g * Gm + top) * F + f];
      m["transfer_se." + key] = transfer_se.data[(g * Gm + top) * F + f];
      if (transfer.data[(g * Gm + top) * F + f] > transfer.data[(g * Gm + top) * F + steered[g]]) steered[g] = f;
      double num = 0, den = 0;
      for (int64_t c = 0; c < Gm; ++c) {
        const double dg = gammas[c] - gammas[ref];
        num += dg * change.data[(g * Gm + c) * F + f];
        den += dg * dg;
      }
      m["slope." + key] = den > 0 ? num / den : 0.0;
      if (nchange.data[(g * Gm + top) * F + f] > nchange.data[(g * Gm + top) * F + dominant]) dominant = f;
    }
    MIGVIS_LOG_INFO("eval: group {} changes {} most (normalized {:.3f}) and moves {} toward the target most "
                    "(transfer {:+.3f}) at gamma {:g}",
                    groups[g], roles[dominant], nchange.data[(g * Gm + top) * F + dominant], roles[steered[g]],
                    transfer.data[(g * Gm + top) * F + steered[g]], gammas[top]);
  }
  for (int64_t c = 0; c < Gm; ++c) {
    double mi = 0, gc = 0, gt = 0;
    for (int64_t g = 0; g < G; ++g) {
      mi += mi_gg[g * Gm + c] / G;
      gt += transfer.data[(g * Gm + c) * F + steered[g]] / G;
      int64_t dominant = 0;
      for (int64_t f = 1; f < F; ++f)
        if (nchange.data[(g * Gm + top) * F + f] > nchange.data[(g * Gm + top) * F + dominant]) dominant = f;
      gc += nchange.data[(g * Gm + c) * F + dominant] / G;
    }
    const std::string gname = fmt::format("gamma{:g}", gammas[c]);
    if (std::isfinite(mi)) m["mi." + gname] = mi;
    m["guided_change." + gname] = gc;
    m["guided_transfer." + gname] = gt;
    m["quality." + gname] = quality[c];
  }

  if (!ctx.comm->is_root()) return Status::Ok();
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& out = af->file();
  for (auto [name, arr] : {std::pair<const char*, h5::Array<float>*>{"factor_change", &change},
                           {"factor_change_normalized", &nchange},
                           {"factor_transfer", &transfer},
                           {"factor_transfer_se", &transfer_se}}) {
    MIGVIS_RETURN_IF_ERROR(out.write(name, *arr));
    MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<std::string>(name, "factors", roles));
    MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<double>(name, "gammas", gammas));
    MIGVIS_RETURN_IF_ERROR(out.set_attr_vector<int32_t>(name, "groups", groups));
  }
  MIGVIS_RETURN_IF_ERROR(out.write_vector("quality", quality));
  std::vector<double> base(baseline.begin(), baseline.end());
  MIGVIS_RETURN_IF_ERROR(out.write_vector("random_pair_change", base));
  MIGVIS_RETURN_IF_ERROR(af->commit());
  ctx.result->artifacts.push_back({"factor_change", schema::kOutFile, "/factor_change"});
  return Status::Ok();
}

}  // namespace migvis::worker
