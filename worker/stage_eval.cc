// Stage `eval`: how much each factor changes in the guided images, per latent
// group and gamma (MIGVIS_METHOD.md tables 2 and 3). A factor read-out network
// is trained on the stimuli and applied to /images of a synthesis job; each
// item is compared with the same (pair, seed) at the reference gamma (0 when
// present, else the smallest), so noise is paired.
// Outputs (out.h5): /factor_change [G, Gamma, F] in label units (fraction changed
// for category/identity, degrees for pose, fraction of image for position, size
// units), /factor_change_normalized [G, Gamma, F] (divided by the change between
// two random stimuli, so factors are comparable), /quality [Gamma];
// metrics per schemas (change.g<g>.<f>, slope.g<g>.<f>, mi.gamma<γ>,
// guided_change.gamma<γ>, quality.gamma<γ>) plus nchange.g<g>.<f> (normalized)
// and readout.<factor> (held-out accuracy / R^2 of the read-out).
#include <cmath>

#include <fmt/format.h>

#include "common/log.h"
#include "results/h5.h"
#include "worker/eval/readout.h"
#include "worker/comm.h"
#include "worker/stage.h"
#include "worker/stage_inputs.h"

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
                                        "keep_best", "report_gamma"}));
  // The gamma whose changes become the per-group metrics (tables 2): the grid's
  // value nearest to it. 100 is the method's reference guidance scale.
  MIGVIS_ASSIGN_OR_RETURN(double report_gamma, p.get_double("report_gamma", 100.0));
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
  std::vector<std::string> roles;
  for (auto& r : eval::factor_roles())
    for (auto& h : heads)
      if (h.role == r) { roles.push_back(r); break; }
  const int64_t F = roles.size();

  // Read-out on the stimuli at the synthesized resolution.
  auto stimuli = resize_images(images_tensor(ds), H);
  if (stimuli.size(1) != C) return Status::InvalidArgument("dataset and synthesized images differ in channels");
  eval::ReadoutOptions rop;
  rop.channels = C;
  MIGVIS_ASSIGN_OR_RETURN(rop.image_size_px, p.get_int("image_size", H));
  MIGVIS_ASSIGN_OR_RETURN(rop.width, p.get_int("width", 16));
  torch::manual_seed(ctx.spec.seed);
  eval::Readout readout(rop, heads);
  auto targets = eval::targets_for(ds, heads);
  auto scores = eval::train_readout(readout, stimuli, targets, to);
  for (size_t i = 0; i < heads.size(); ++i) {
    ctx.result->metrics["readout." + heads[i].name] = scores[i];
    MIGVIS_LOG_INFO("eval: read-out {} ({}) held-out {} {:.3f}", heads[i].name, heads[i].role,
                    heads[i].categorical ? "accuracy" : "R^2", scores[i]);
  }

  // Normaliser: the change between two random stimuli (their true labels).
  auto gen = at::detail::createCPUGenerator(ctx.spec.seed + 1);
  const int64_t n = stimuli.size(0);
  auto ia = torch::randint(n, {4096}, gen, torch::kLong), ib = torch::randint(n, {4096}, gen, torch::kLong);
  std::vector<torch::Tensor> ta, tb;
  for (auto& t : targets) { ta.push_back(t.index_select(0, ia)); tb.push_back(t.index_select(0, ib)); }
  auto baseline = eval::role_changes(heads, ta, tb, roles);

  auto synth = torch::from_blob(imgs.data.data(), {G * Gm * P * S, C, H, W}, torch::kFloat32);
  auto pred = eval::predict(readout, synth);
  auto stim_pred = eval::predict(readout, stimuli);
  const double stim_nn = mean_nn_distance(stim_pred.features, stim_pred.features, true);
  const int64_t ref = std::min_element(gammas.begin(), gammas.end()) - gammas.begin();
  auto items = [&](int64_t g, int64_t c) { return torch::arange((g * Gm + c) * P * S, (g * Gm + c + 1) * P * S, torch::kLong); };

  h5::Array<float> change({(hsize_t)G, (hsize_t)Gm, (hsize_t)F}), nchange({(hsize_t)G, (hsize_t)Gm, (hsize_t)F});
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < Gm; ++c) {
      std::vector<torch::Tensor> a, b;
      for (auto& v : pred.values) { a.push_back(v.index_select(0, items(g, c))); b.push_back(v.index_select(0, items(g, ref))); }
      auto ch = eval::role_changes(heads, a, b, roles);
      for (int64_t f = 0; f < F; ++f) {
        change.data[(g * Gm + c) * F + f] = ch[f];
        nchange.data[(g * Gm + c) * F + f] = ch[f] / std::max(baseline[f], 1e-12);
      }
    }
  int64_t top = 0;  // the reported gamma's column
  for (int64_t c = 1; c < Gm; ++c)
    if (std::abs(gammas[c] - report_gamma) < std::abs(gammas[top] - report_gamma)) top = c;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < Gm; ++c) {
      std::string row;
      for (int64_t f = 0; f < F; ++f) row += fmt::format(" {} {:.3f}", roles[f], nchange.data[(g * Gm + c) * F + f]);
      MIGVIS_LOG_INFO("eval: group {} gamma {:g} normalized change:{}", groups[g], gammas[c], row);
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
  for (int64_t g = 0; g < G; ++g) {
    int64_t dominant = 0;
    for (int64_t f = 0; f < F; ++f) {
      const std::string key = fmt::format("g{}.{}", groups[g], roles[f]);
      m["change." + key] = change.data[(g * Gm + top) * F + f];
      m["nchange." + key] = nchange.data[(g * Gm + top) * F + f];
      double num = 0, den = 0;
      for (int64_t c = 0; c < Gm; ++c) {
        const double dg = gammas[c] - gammas[ref];
        num += dg * change.data[(g * Gm + c) * F + f];
        den += dg * dg;
      }
      m["slope." + key] = den > 0 ? num / den : 0.0;
      if (nchange.data[(g * Gm + top) * F + f] > nchange.data[(g * Gm + top) * F + dominant]) dominant = f;
    }
    MIGVIS_LOG_INFO("eval: group {} changes {} most (normalized {:.3f} at gamma {:g})", groups[g], roles[dominant],
                    nchange.data[(g * Gm + top) * F + dominant], gammas[top]);
  }
  for (int64_t c = 0; c < Gm; ++c) {
    double mi = 0, gc = 0;
    for (int64_t g = 0; g < G; ++g) {
      mi += mi_gg[g * Gm + c] / G;
      int64_t dominant = 0;
      for (int64_t f = 1; f < F; ++f)
        if (nchange.data[(g * Gm + top) * F + f] > nchange.data[(g * Gm + top) * F + dominant]) dominant = f;
      gc += nchange.data[(g * Gm + c) * F + dominant] / G;
    }
    const std::string gname = fmt::format("gamma{:g}", gammas[c]);
    if (std::isfinite(mi)) m["mi." + gname] = mi;
    m["guided_change." + gname] = gc;
    m["quality." + gname] = quality[c];
  }

  if (!ctx.comm->is_root()) return Status::Ok();
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& out = af->file();
  for (auto [name, arr] : {std::pair<const char*, h5::Array<float>*>{"factor_change", &change},
                           {"factor_change_normalized", &nchange}}) {
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
