#include "worker/stages/vae.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>

#include "common/log.h"
#include "results/dataset_io.h"
#include "worker/eval/readout.h"
#include "results/h5.h"
#include "worker/checkpoint.h"
#include "worker/comm.h"
#include "worker/metrics/metrics.h"
#include "worker/stages/inputs.h"
#include "worker/vae/vae.h"

namespace migvis::worker {

namespace {

using torch::Tensor;

struct Config {
  vae::ModelKind model = vae::ModelKind::kMigVis;
  vae::Recon recon = vae::Recon::kMse;
  int64_t groups = 4, group_rank = 6, hidden = 64;
  vae::LossWeights weights;
  double lr = 1e-3, weight_decay = 1e-5, test_fraction = 0.2;
  int64_t batch = 64, epochs = 200, eval_every = 5, patience = 10, eval_pairs = 10000;
  std::vector<std::string> pose_factors;  // empty: the default of pose_labels()
};

Result<Config> parse_config(const schema::JobSpec& spec) {
  schema::Params p(spec.params, "job.yaml");
  MIGVIS_RETURN_IF_ERROR(p.check_known({"model", "groups", "group_rank", "hidden", "recon", "w_guid", "w_kl", "w_tc",
                                        "beta", "lr", "batch", "epochs", "weight_decay", "test_fraction", "eval_every",
                                        "patience", "eval_pairs", "pose_factors"}));
  Config c;
  MIGVIS_ASSIGN_OR_RETURN(std::string model, p.get_string("model", "migvis"));
  auto mk = vae::parse_model(model);
  if (!mk.ok()) return mk.status().with_context("job.yaml: params");
  c.model = *mk;
  MIGVIS_ASSIGN_OR_RETURN(std::string recon, p.get_string("recon", "mse"));
  auto rk = vae::parse_recon(recon);
  if (!rk.ok()) return rk.status().with_context("job.yaml: params");
  c.recon = *rk;
  MIGVIS_ASSIGN_OR_RETURN(c.groups, p.get_int("groups", c.groups));
  MIGVIS_ASSIGN_OR_RETURN(c.group_rank, p.get_int("group_rank", c.group_rank));
  MIGVIS_ASSIGN_OR_RETURN(c.hidden, p.get_int("hidden", c.hidden));
  MIGVIS_ASSIGN_OR_RETURN(c.weights.w_guid, p.get_double("w_guid", c.weights.w_guid));
  MIGVIS_ASSIGN_OR_RETURN(c.weights.w_kl, p.get_double("w_kl", c.weights.w_kl));
  MIGVIS_ASSIGN_OR_RETURN(c.weights.w_tc, p.get_double("w_tc", c.weights.w_tc));
  MIGVIS_ASSIGN_OR_RETURN(c.weights.beta, p.get_double("beta", c.weights.beta));
  MIGVIS_ASSIGN_OR_RETURN(c.lr, p.get_double("lr", c.lr));
  MIGVIS_ASSIGN_OR_RETURN(c.batch, p.get_int("batch", c.batch));
  MIGVIS_ASSIGN_OR_RETURN(c.epochs, p.get_int("epochs", c.epochs));
  MIGVIS_ASSIGN_OR_RETURN(c.weight_decay, p.get_double("weight_decay", c.weight_decay));
  MIGVIS_ASSIGN_OR_RETURN(c.test_fraction, p.get_double("test_fraction", c.test_fraction));
  MIGVIS_ASSIGN_OR_RETURN(c.eval_every, p.get_int("eval_every", c.eval_every));
  MIGVIS_ASSIGN_OR_RETURN(c.patience, p.get_int("patience", c.patience));
  MIGVIS_ASSIGN_OR_RETURN(c.eval_pairs, p.get_int("eval_pairs", c.eval_pairs));
  MIGVIS_ASSIGN_OR_RETURN(c.pose_factors, p.get_strings("pose_factors", {}));
  c.weights.model = c.model;
  auto positive = [](const char* k, double v) -> Status {
    if (v > 0) return Status::Ok();
    return Status::InvalidArgument(fmt::format("job.yaml: params.{}: expected > 0, got {}", k, v));
  };
  MIGVIS_RETURN_IF_ERROR(positive("groups", c.groups));
  MIGVIS_RETURN_IF_ERROR(positive("group_rank", c.group_rank));
  MIGVIS_RETURN_IF_ERROR(positive("hidden", c.hidden));
  MIGVIS_RETURN_IF_ERROR(positive("lr", c.lr));
  MIGVIS_RETURN_IF_ERROR(positive("batch", c.batch));
  MIGVIS_RETURN_IF_ERROR(positive("epochs", c.epochs));
  MIGVIS_RETURN_IF_ERROR(positive("eval_every", c.eval_every));
  MIGVIS_RETURN_IF_ERROR(positive("eval_pairs", c.eval_pairs));
  if (c.groups < 2) return Status::InvalidArgument("job.yaml: params.groups: expected >= 2, got " + std::to_string(c.groups));
  if (!(c.test_fraction > 0 && c.test_fraction < 1))
    return Status::InvalidArgument(fmt::format("job.yaml: params.test_fraction: expected in (0, 1), got {}", c.test_fraction));
  return c;
}

// One session's trial-averaged data, split by image.
struct SessionData {
  std::string name;
  std::vector<int32_t> image_index;  // [N_s] dataset image of each row
  Tensor x;                          // [N_s, M] model input/target (z-scored, or counts for Poisson)
  Tensor counts;                     // [N_s, M] trial-averaged responses as recorded
  Tensor mean, sd;                   // [M] z-scoring (identity for Poisson)
  Tensor pose;                       // [N_s, P] standardised pose labels (P may be 0)
  Tensor category;                   // [N_s] int64 (undefined if none)
  Tensor train, test;                // row indices int64
  bool counts_valid = false;         // value_kind counts and non-negative: bits/spike defined
};

Tensor rows_of(const h5::Array<float>& a) {
  return torch::from_blob(const_cast<float*>(a.data.data()),
                          {static_cast<int64_t>(a.dim(0)), static_cast<int64_t>(a.dim(1))}, torch::kFloat32)
      .clone();
}

Tensor take_rows(const Tensor& t, const Tensor& idx) { return t.defined() && t.numel() > 0 ? t.index({idx}) : t; }

struct Curves {
  std::vector<double> train_step, train_val, test_step, test_val;
  static Tensor pack(const std::vector<double>& s, const std::vector<double>& v) {
    std::vector<double> flat;
    for (size_t i = 0; i < s.size(); ++i) flat.insert(flat.end(), {s[i], v[i]});
    return torch::tensor(flat, torch::kFloat64).view({static_cast<int64_t>(s.size()), 2});
  }
  static void unpack(const Tensor& t, std::vector<double>* s, std::vector<double>* v) {
    s->clear();
    v->clear();
    if (!t.defined() || t.numel() == 0) return;
    auto a = t.contiguous().view({-1, 2});
    for (int64_t i = 0; i < a.size(0); ++i) {
      s->push_back(a[i][0].item<double>());
      v->push_back(a[i][1].item<double>());
    }
  }
};

void copy_params(vae::VaeImpl& dst, vae::VaeImpl& src) {
  torch::NoGradGuard ng;
  auto d = dst.named_parameters(), s = src.named_parameters();
  for (auto& kv : s) d[kv.key()].copy_(kv.value());
}

// Mean loss over a session's rows in minibatches, without sampling (z = mu).
double eval_loss(vae::VaeImpl& model, const std::vector<SessionData>& sessions, bool test, int64_t batch,
                 const vae::LossWeights& w) {
  torch::NoGradGuard ng;
  double sum = 0;
  int64_t n = 0;
  for (size_t s = 0; s < sessions.size(); ++s) {
    const auto& sd = sessions[s];
    const Tensor& idx = test ? sd.test : sd.train;
    for (int64_t b = 0; b < idx.size(0); b += batch) {
      auto rows = idx.slice(0, b, std::min(idx.size(0), b + batch));
      auto out = model.forward(sd.x.index({rows}), static_cast<int64_t>(s), /*sample=*/false);
      auto parts = vae::vae_loss(out, sd.x.index({rows}), take_rows(sd.pose, rows), take_rows(sd.category, rows),
                                 model.options(), w);
      sum += parts.total.item<double>() * static_cast<double>(rows.size(0));
      n += rows.size(0);
    }
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

std::string fmt_num(double v) { return fmt::format("{:.6g}", v); }

}  // namespace

std::string PoseLabel::name() const {
  return factor->name + (part == Part::kCos ? ".cos" : part == Part::kSin ? ".sin" : "");
}

double PoseLabel::value(size_t image) const {
  const double v = factor->values[image];
  if (part == Part::kValue) return v;
  return part == Part::kCos ? std::cos(v * M_PI / 180.0) : std::sin(v * M_PI / 180.0);
}

Result<std::vector<PoseLabel>> pose_labels(const data::Dataset& d, const std::vector<std::string>& names) {
  std::vector<const data::Factor*> chosen;
  if (names.empty()) {
    for (const auto& f : d.factors)
      if (f.kind == data::FactorKind::kContinuous && (f.role == "pose" || f.role == "size" || f.role == "position"))
        chosen.push_back(&f);
  } else {
    for (const auto& n : names) {
      const data::Factor* f = d.factor(n);
      if (!f || f->kind != data::FactorKind::kContinuous) {
        std::string have;
        for (const auto& g : d.factors)
          if (g.kind == data::FactorKind::kContinuous) have += (have.empty() ? "" : ", ") + g.name;
        return Status::InvalidArgument(fmt::format("job.yaml: params.pose_factors: \"{}\" is {} (continuous factors: {})",
                                                   n, f ? "categorical" : "not a factor of the dataset", have));
      }
      chosen.push_back(f);
    }
  }
  std::vector<PoseLabel> out;
  for (auto* f : chosen) {
    if (eval::is_full_circle(*f)) {
      out.push_back({f, PoseLabel::Part::kCos});
      out.push_back({f, PoseLabel::Part::kSin});
    } else {
      out.push_back({f, PoseLabel::Part::kValue});
    }
  }
  return out;
}

Status run_vae_stage(StageContext& ctx) {
  const auto& spec = ctx.spec;
  MIGVIS_ASSIGN_OR_RETURN(Config cfg, parse_config(spec));
  if (!spec.key.count("animal") || !spec.key.count("session"))
    return Status::InvalidArgument("job.yaml: key: the vae stage needs key.animal and key.session");
  if (!spec.inputs.count("dataset"))
    return Status::InvalidArgument("job.yaml: inputs.dataset: missing (path of the dataset.h5 to train on)");
  const std::string animal = spec.key.at("animal"), session_key = spec.key.at("session");
  const fs::path ds_path = spec.inputs.at("dataset");
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset ds, data::read_dataset(ds_path));

  // --- sessions --------------------------------------------------------------
  std::vector<const data::Session*> chosen;
  std::string available;
  for (const auto& s : ds.sessions) {
    if (s.animal != animal) continue;
    available += (available.empty() ? "" : ", ") + s.name;
    if (session_key == "pooled" || s.name == session_key) chosen.push_back(&s);
  }
  if (chosen.empty())
    return Status::InvalidArgument(fmt::format("{}: no session '{}' of animal '{}' (sessions of that animal: {})",
                                               ds_path.string(), session_key, animal,
                                               available.empty() ? "none" : available));

  // --- labels: continuous pose labels (pose_factors) and the category factor -
  MIGVIS_ASSIGN_OR_RETURN(std::vector<PoseLabel> pose_factors, pose_labels(ds, cfg.pose_factors));
  const data::Factor* category = nullptr;
  for (const auto& f : ds.factors)
    if (f.role == "category" && f.kind == data::FactorKind::kCategorical && !category) category = &f;
  if (static_cast<int64_t>(pose_factors.size()) > cfg.group_rank) {
    MIGVIS_LOG_WARN("{} pose labels but group_rank {}: supervising the first {}", pose_factors.size(), cfg.group_rank,
                    cfg.group_rank);
    pose_factors.resize(cfg.group_rank);
  }
  {
    std::string names;
    for (auto& l : pose_factors) names += (names.empty() ? "" : ", ") + l.name();
    MIGVIS_LOG_INFO("vae: {} pose labels: {}", pose_factors.size(), names.empty() ? "none" : names);
  }

  // --- image split: one split over all images the chosen sessions saw ---------
  std::set<int32_t> seen_set;
  for (auto* s : chosen) seen_set.insert(s->image_index.begin(), s->image_index.end());
  std::vector<int32_t> seen(seen_set.begin(), seen_set.end());  // sorted: /latent_image_index
  if (seen.size() < 10)
    return Status::InvalidArgument(fmt::format("{}: animal '{}' session '{}' saw {} images; need at least 10",
                                               ds_path.string(), animal, session_key, seen.size()));
  std::vector<int32_t> shuffled = seen;
  std::mt19937_64 split_rng(spec.seed);
  std::shuffle(shuffled.begin(), shuffled.end(), split_rng);
  const size_t n_test = std::max<size_t>(1, static_cast<size_t>(std::round(cfg.test_fraction * seen.size())));
  std::set<int32_t> test_images(shuffled.begin(), shuffled.begin() + n_test);

  // Pose standardisation from the training images.
  std::vector<double> pose_mean(pose_factors.size(), 0), pose_sd(pose_factors.size(), 1);
  for (size_t k = 0; k < pose_factors.size(); ++k) {
    double s = 0, s2 = 0;
    size_t n = 0;
    for (int32_t img : seen)
      if (!test_images.count(img)) {
        double v = pose_factors[k].value(img);
        s += v; s2 += v * v; ++n;
      }
    pose_mean[k] = s / n;
    pose_sd[k] = std::sqrt(std::max(1e-12, s2 / n - pose_mean[k] * pose_mean[k]));
  }

  std::vector<SessionData> sessions;
  for (auto* s : chosen) {
    SessionData sd;
    sd.name = s->name;
    auto avg = data::average_repeats(*s);
    sd.image_index = avg.image_index;
    sd.counts = rows_of(avg.mean);
    const int64_t n = sd.counts.size(0);
    sd.counts_valid = s->value_kind == "counts" && sd.counts.min().item<float>() >= 0;
    if (cfg.recon == vae::Recon::kPoisson) {
      if (sd.counts.min().item<float>() < 0)
        return Status::InvalidArgument(fmt::format("{}: /animals/{}/sessions/{}/counts: recon poisson needs "
                                                   "non-negative counts, found negative values (use recon: mse)",
                                                   ds_path.string(), animal, s->name));
      sd.mean = torch::zeros({sd.counts.size(1)});
      sd.sd = torch::ones({sd.counts.size(1)});
      sd.x = sd.counts;
    } else {
      sd.mean = sd.counts.mean(0);
      sd.sd = sd.counts.std(0, /*unbiased=*/false);
      sd.sd = torch::where(sd.sd > 1e-8, sd.sd, torch::ones_like(sd.sd));
      sd.x = (sd.counts - sd.mean) / sd.sd;
    }
    std::vector<int64_t> tr, te;
    std::vector<float> pose;
    std::vector<int64_t> cat;
    for (int64_t r = 0; r < n; ++r) {
      int32_t img = sd.image_index[r];
      (test_images.count(img) ? te : tr).push_back(r);
      for (size_t k = 0; k < pose_factors.size(); ++k)
        pose.push_back(static_cast<float>((pose_factors[k].value(img) - pose_mean[k]) / pose_sd[k]));
      if (category) cat.push_back(static_cast<int64_t>(category->values[img]));
    }
    if (tr.empty() || te.empty())
      return Status::InvalidArgument(fmt::format("{}: session '{}' has {} training and {} test images; need both",
                                                 ds_path.string(), s->name, tr.size(), te.size()));
    sd.train = torch::tensor(tr, torch::kInt64);
    sd.test = torch::tensor(te, torch::kInt64);
    sd.pose = torch::tensor(pose, torch::kFloat32).view({n, static_cast<int64_t>(pose_factors.size())});
    if (category) sd.category = torch::tensor(cat, torch::kInt64);
    sessions.push_back(std::move(sd));
  }

  // Every session's tensors live on the job's device from here on.
  const torch::Device dev = stage_device(ctx);
  for (auto& sd : sessions)
    for (Tensor* t : {&sd.x, &sd.counts, &sd.mean, &sd.sd, &sd.pose, &sd.category, &sd.train, &sd.test})
      if (t->defined()) *t = t->to(dev);

  // --- model -----------------------------------------------------------------
  vae::VaeOptions opts;
  opts.session_neurons.clear();
  for (auto& s : sessions) opts.session_neurons.push_back(s.x.size(1));
  opts.groups = cfg.groups;
  opts.group_rank = cfg.group_rank;
  opts.hidden = cfg.hidden;
  opts.recon = cfg.recon;
  opts.pose_dims = static_cast<int64_t>(pose_factors.size());
  opts.n_classes = category ? static_cast<int64_t>(category->classes.size()) : 0;
  torch::manual_seed(spec.seed);
  vae::Vae model(opts), best(opts);
  model->to(dev);
  best->to(dev);
  copy_params(*best, *model);
  record_model_device(ctx, "vae", *model);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(cfg.lr).weight_decay(cfg.weight_decay));

  // --- resume ------------------------------------------------------------------
  Checkpointer ck(ctx.dir);
  Curves curves;
  double best_loss = std::numeric_limits<double>::infinity();
  int64_t epoch = 0, bad_evals = 0;
  bool done = false;
  double tc_share_sum = 0;  // TC term's share of the gradient norm, first batch of each epoch
  int64_t tc_share_n = 0;
  CheckpointState st;
  st.modules = {{"model", model.get()}, {"best", best.get()}};
  st.optimizers = {{"adam", &opt}};
  auto pack_state = [&] {
    st.step = epoch;
    st.tensors = {{"rng", at::detail::getDefaultCPUGenerator().get_state()},
                  {"train_loss", Curves::pack(curves.train_step, curves.train_val)},
                  {"test_loss", Curves::pack(curves.test_step, curves.test_val)},
                  {"scalars", torch::tensor({best_loss, static_cast<double>(bad_evals), done ? 1.0 : 0.0,
                                             tc_share_sum, static_cast<double>(tc_share_n)},
                                            torch::kFloat64)}};
  };
  {
    pack_state();
    MIGVIS_ASSIGN_OR_RETURN(bool restored, ck.restore_latest(&st));
    if (restored) {
      epoch = st.step;
      auto gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(st.tensors["rng"]);
      Curves::unpack(st.tensors["train_loss"], &curves.train_step, &curves.train_val);
      Curves::unpack(st.tensors["test_loss"], &curves.test_step, &curves.test_val);
      auto sc = st.tensors["scalars"];
      best_loss = sc[0].item<double>();
      bad_evals = static_cast<int64_t>(sc[1].item<double>());
      done = sc[2].item<double>() > 0.5;
      if (sc.numel() >= 5) tc_share_sum = sc[3].item<double>(), tc_share_n = static_cast<int64_t>(sc[4].item<double>());
      MIGVIS_LOG_INFO("vae: resumed at epoch {} from {}", epoch, ck.dir().string());
    }
  }
  auto save = [&]() -> Status {
    pack_state();
    MIGVIS_RETURN_IF_ERROR(ck.save(st));
    schema::Progress pr{epoch, cfg.epochs, done ? "evaluate" : "train", schema::utc_now_iso8601()};
    return schema::write_progress(pr, ctx.dir);
  };

  // --- train -------------------------------------------------------------------
  while (!done) {
    model->train();
    // Minibatches of every session, visited in a random order.
    std::vector<std::pair<int64_t, Tensor>> batches;
    for (size_t s = 0; s < sessions.size(); ++s) {
      const auto& tr = sessions[s].train;
      auto perm = tr.index({torch::randperm(tr.size(0), torch::kInt64).to(tr.device())});
      for (int64_t b = 0; b < perm.size(0); b += cfg.batch)
        batches.push_back({static_cast<int64_t>(s), perm.slice(0, b, std::min(perm.size(0), b + cfg.batch))});
    }
    auto order = torch::randperm(static_cast<int64_t>(batches.size()), torch::kInt64);
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < order.size(0); ++i) {
      auto& [s, rows] = batches[order[i].item<int64_t>()];
      const auto& sd = sessions[s];
      auto x = sd.x.index({rows});
      opt.zero_grad();
      auto out = model->forward(x, s, /*sample=*/true);
      auto parts = vae::vae_loss(out, x, take_rows(sd.pose, rows), take_rows(sd.category, rows), opts, cfg.weights);
      if (i == 0 && parts.tc_term.requires_grad())
        tc_share_sum += vae::grad_norm_share(parts.tc_term, parts.total, model->parameters()), ++tc_share_n;
      parts.total.backward();
      opt.step();
      sum += parts.total.item<double>() * static_cast<double>(rows.size(0));
      n += rows.size(0);
    }
    ++epoch;
    curves.train_step.push_back(static_cast<double>(epoch));
    curves.train_val.push_back(sum / static_cast<double>(std::max<int64_t>(1, n)));
    bool stop_early = false;
    if (epoch % cfg.eval_every == 0 || epoch == cfg.epochs) {
      model->eval();
      double tl = eval_loss(*model, sessions, /*test=*/true, cfg.batch, cfg.weights);
      curves.test_step.push_back(static_cast<double>(epoch));
      curves.test_val.push_back(tl);
      if (tl < best_loss) {
        best_loss = tl;
        bad_evals = 0;
        copy_params(*best, *model);
      } else if (cfg.patience > 0 && ++bad_evals >= cfg.patience) {
        stop_early = true;
        MIGVIS_LOG_INFO("vae: early stop at epoch {} (best test loss {:.5g})", epoch, best_loss);
      }
      MIGVIS_LOG_DEBUG("vae: epoch {} train {:.5g} test {:.5g}", epoch, curves.train_val.back(), tl);
    }
    done = stop_early || epoch >= cfg.epochs;
    if (done || epoch % cfg.eval_every == 0) MIGVIS_RETURN_IF_ERROR(save());
    if (!done && ctx.should_stop()) {
      MIGVIS_RETURN_IF_ERROR(save());
      return Status::Cancelled(fmt::format("vae: stopped on request after epoch {}; checkpoint in {}", epoch,
                                           ck.dir().string()));
    }
  }

  // --- evaluate the best model ------------------------------------------------
  model = best;
  model->eval();
  torch::NoGradGuard ng;
  const int64_t n_seen = static_cast<int64_t>(seen.size()), d = opts.latent_dim();
  std::map<int32_t, int64_t> row_of;
  for (int64_t i = 0; i < n_seen; ++i) row_of[seen[i]] = i;
  const auto on_dev = torch::TensorOptions(torch::kFloat32).device(dev);
  Tensor mu_sum = torch::zeros({n_seen, d}, on_dev), lv_sum = torch::zeros({n_seen, d}, on_dev),
         hits = torch::zeros({n_seen, 1}, on_dev);
  double w_total = 0, test_r2 = 0, test_mse = 0, train_r2 = 0, bps = 0, bps_w = 0;
  for (size_t s = 0; s < sessions.size(); ++s) {
    auto& sd = sessions[s];
    auto [mu, lv] = model->encode(sd.x, static_cast<int64_t>(s));
    std::vector<int64_t> rows;
    for (int32_t img : sd.image_index) rows.push_back(row_of[img]);
    auto ridx = torch::tensor(rows, torch::kInt64).to(dev);
    mu_sum.index_add_(0, ridx, mu);
    lv_sum.index_add_(0, ridx, lv);
    hits.index_add_(0, ridx, torch::ones({ridx.size(0), 1}, on_dev));
    auto pred = model->decode(mu, static_cast<int64_t>(s));  // [N_s, M]
    const double w = static_cast<double>(sd.x.size(1));
    w_total += w;
    Tensor rate;
    if (cfg.recon == vae::Recon::kPoisson) rate = torch::exp(pred);
    else rate = (pred * sd.sd + sd.mean).clamp_min(1e-3);
    // R^2 and MSE in the space the model fits (z-scored responses, or counts).
    Tensor fit_pred = cfg.recon == vae::Recon::kPoisson ? rate : pred;
    test_r2 += w * metrics::r2_score(fit_pred.index({sd.test}), sd.x.index({sd.test}));
    test_mse += w * metrics::mse(fit_pred.index({sd.test}), sd.x.index({sd.test}));
    train_r2 += w * metrics::r2_score(fit_pred.index({sd.train}), sd.x.index({sd.train}));
    if (sd.counts_valid) {
      auto mean_rate = sd.counts.index({sd.train}).mean(0);
      double spikes = sd.counts.index({sd.test}).sum().item<double>();
      bps += spikes * metrics::bits_per_spike(rate.index({sd.test}), sd.counts.index({sd.test}), mean_rate);
      bps_w += spikes;
    }
  }
  // pooled: mean over sessions. The scores below run on the host (small, float64).
  Tensor latents = (mu_sum / hits).cpu(), latents_logvar = (lv_sum / hits).cpu();

  auto& m = ctx.result->metrics;
  m["test_r2"] = test_r2 / w_total;
  m["test_mse"] = test_mse / w_total;
  m["train_r2"] = train_r2 / w_total;
  if (tc_share_n > 0) m["tc_grad_share"] = tc_share_sum / static_cast<double>(tc_share_n);
  if (bps_w > 0) m["test_bits_per_spike"] = bps / bps_w;

  // Factor labels of the seen images.
  std::vector<int64_t> seen64(seen.begin(), seen.end());
  std::vector<metrics::FactorLabels> factors;
  for (const auto& f : ds.factors) {
    metrics::FactorLabels fl;
    fl.name = f.name;
    fl.role = f.role;
    fl.categorical = f.kind == data::FactorKind::kCategorical;
    std::vector<double> v;
    for (int32_t img : seen) v.push_back(f.values[img]);
    fl.values = torch::tensor(v, torch::kFloat64);
    if (fl.categorical) fl.values = fl.values.to(torch::kInt64);
    factors.push_back(std::move(fl));
  }
  const uint64_t eval_seed = spec.seed + 17;
  const int64_t r = opts.group_rank;
  if (!factors.empty()) {
    m["mig"] = metrics::mig(metrics::unit_codes(latents, 1, eval_seed), factors);
    m["mig_group"] = metrics::mig(metrics::unit_codes(latents, r, eval_seed), factors);
  }
  // FactorVAE-style: the latent change is decoded (session 0) and re-encoded.
  metrics::LatentMap reencode = [&](const Tensor& z) {
    return model->encode(model->decode(z.to(dev), 0), 0).first.cpu();
  };
  m["factorvae"] = metrics::factorvae_score(latents, 1, reencode, eval_seed, cfg.eval_pairs);
  m["factorvae_group"] = metrics::factorvae_score(latents, r, reencode, eval_seed, cfg.eval_pairs);
  if (ds.num_images() > 0 && ds.images.rank() == 4) {
    auto imgs = torch::from_blob(ds.images.data.data(),
                                 {static_cast<int64_t>(ds.images.dim(0)), static_cast<int64_t>(ds.images.dim(1)),
                                  static_cast<int64_t>(ds.images.dim(2)), static_cast<int64_t>(ds.images.dim(3))},
                                 torch::kFloat32)
                    .index({torch::tensor(seen64)});
    // PCA cost stays bounded: pool large stimuli to at most 32 x 32 first.
    if (imgs.size(2) > 32 || imgs.size(3) > 32)
      imgs = torch::adaptive_avg_pool2d(imgs, {std::min<int64_t>(32, imgs.size(2)), std::min<int64_t>(32, imgs.size(3))});
    auto pseudo = metrics::image_pseudo_factor(imgs.flatten(1), eval_seed);
    m["sap"] = metrics::sap_score(latents, pseudo, 1, eval_seed);
    m["sap_group"] = metrics::sap_score(latents, pseudo, r, eval_seed);
  }

  // Group x factor matrix on the VAE's own image split.
  std::vector<int64_t> tr_rows, te_rows;
  for (int64_t i = 0; i < n_seen; ++i) (test_images.count(seen[i]) ? te_rows : tr_rows).push_back(i);
  metrics::GroupFactorMatrix gfm;
  if (!factors.empty())
    gfm = metrics::group_factor_matrix(latents, r, factors, torch::tensor(tr_rows), torch::tensor(te_rows));
  if (!factors.empty()) {  // supervised SAP / FactorVAE on the dataset's factors (docs/METRICS.md)
    m["sap_factors"] = metrics::sap_factors(latents, 1, factors, torch::tensor(tr_rows), torch::tensor(te_rows));
    m["sap_factors_group"] = metrics::sap_factors(latents, r, factors, torch::tensor(tr_rows), torch::tensor(te_rows));
    m["factorvae_factors"] = metrics::factorvae_factors(latents, 1, factors, eval_seed);
    m["factorvae_factors_group"] = metrics::factorvae_factors(latents, r, factors, eval_seed);
  }
  if (!pose_factors.empty()) {  // the supervised pose labels (standardised) read linearly from the latents
    std::vector<double> pose;
    for (int32_t img : seen)
      for (size_t k = 0; k < pose_factors.size(); ++k)
        pose.push_back((pose_factors[k].value(static_cast<size_t>(img)) - pose_mean[k]) / pose_sd[k]);
    auto ro = metrics::linear_readout(latents, torch::tensor(pose, torch::kFloat64).view({n_seen, -1}),
                                      torch::tensor(tr_rows), torch::tensor(te_rows));
    m["pose_test_r2"] = ro.r2;
    m["pose_test_rmse"] = ro.rmse;
  }
  if (ds.truth && !gfm.roles.empty()) {
    std::vector<std::string> planted;
    for (const auto& gf : ds.truth->group_factor)
      if (gf != "none" && std::find(planted.begin(), planted.end(), gf) == planted.end()) planted.push_back(gf);
    auto rec = metrics::recovery_score(gfm, planted);
    m["recovery"] = rec.score;
    for (int64_t g = 0; g < gfm.scores.size(0); ++g)
      for (size_t c = 0; c < gfm.roles.size(); ++c)
        m[fmt::format("truth.g{}.{}", g + 1, gfm.roles[c])] = gfm.scores[g][static_cast<int64_t>(c)].item<double>();
    std::string assigned;
    for (size_t i = 0; i < rec.assignment.size(); ++i) assigned += fmt::format(" {}->g{}", planted[i], rec.assignment[i] + 1);
    MIGVIS_LOG_INFO("vae: recovery {:.3f} ({})", rec.score, assigned);
  }

  // --- outputs -----------------------------------------------------------------
  if (!ctx.comm->is_root()) return Status::Ok();
  model->to(torch::kCPU);  // model.pt loads on any node
  {
    AtomicPath mp(ctx.dir / "model.pt");
    torch::serialize::OutputArchive ar;
    model->save(ar);
    ar.save_to(mp.temp().string());
    MIGVIS_RETURN_IF_ERROR(mp.commit());
  }
  MIGVIS_ASSIGN_OR_RETURN(auto out, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& f = out->file();
  auto to_array = [](const Tensor& t) {
    auto c = t.to(torch::kFloat32).contiguous();
    std::vector<hsize_t> shape(c.sizes().begin(), c.sizes().end());
    return h5::Array<float>(shape, std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
  };
  MIGVIS_RETURN_IF_ERROR(f.write("latents", to_array(latents)));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<int32_t>("latents", "groups", static_cast<int32_t>(opts.groups)));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<int32_t>("latents", "group_rank", static_cast<int32_t>(opts.group_rank)));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>("latents", "model", vae::model_name(cfg.model)));
  MIGVIS_RETURN_IF_ERROR(f.write("latents_logvar", to_array(latents_logvar)));
  MIGVIS_RETURN_IF_ERROR(f.write_vector<int32_t>("latent_image_index", seen));
  if (!gfm.roles.empty()) {
    MIGVIS_RETURN_IF_ERROR(f.write("eval/group_factor", to_array(gfm.scores)));
    MIGVIS_RETURN_IF_ERROR(f.set_attr_vector<std::string>("eval/group_factor", "factors", gfm.roles));
    MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(
        "eval/group_factor", "measure",
        "heldout_linear_decoding: R2 (continuous) or chance-corrected accuracy (categorical), clamped to [0,1]"));
  }
  auto write_curve = [&](const std::string& name, const std::vector<double>& s, const std::vector<double>& v) {
    auto t = Curves::pack(s, v);
    std::vector<double> flat(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    return f.write("curves/" + name, h5::Array<double>({static_cast<hsize_t>(s.size()), 2}, flat));
  };
  MIGVIS_RETURN_IF_ERROR(write_curve("train_loss", curves.train_step, curves.train_val));
  MIGVIS_RETURN_IF_ERROR(write_curve("test_loss", curves.test_step, curves.test_val));
  MIGVIS_RETURN_IF_ERROR(out->commit());
  ctx.result->artifacts.push_back({"latents", schema::kOutFile, "/latents"});
  ctx.result->artifacts.push_back({"group_factor", schema::kOutFile, "/eval/group_factor"});
  ctx.result->artifacts.push_back({"model", "model.pt", ""});
  std::string summary;
  for (auto& [k, v] : m) summary += " " + k + "=" + fmt_num(v);
  MIGVIS_LOG_INFO("vae: {} epochs, best test loss {:.5g};{}", epoch, best_loss, summary);
  return Status::Ok();
}

}  // namespace migvis::worker
