// Stage `critic`: trains the InfoNCE critics of every latent group of a VAE job
// on (stimulus image, its posterior-mean latent) pairs and reports the held-out
// InfoNCE lower bound per group. Inputs: dataset, vae. Outputs: critic.pt,
// out.h5 (/mi_lower_bound [G], /config, /curves/*, /judge_heldout: the stimuli
// it did not train on), metrics mi.g<g>. Trains on ctx.device; critic.pt is
// written from the CPU.
#include <fmt/format.h>

#include "common/log.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "worker/critic/critic.h"
#include "worker/comm.h"
#include "worker/stages/critic.h"
#include "worker/stages/inputs.h"

namespace migvis::worker {

namespace {

Status write_curve(const h5::Location& out, const std::string& name, const std::vector<std::pair<double, double>>& c) {
  h5::Array<double> a({static_cast<hsize_t>(c.size()), 2});
  for (size_t i = 0; i < c.size(); ++i) { a.data[2 * i] = c[i].first; a.data[2 * i + 1] = c[i].second; }
  return out.write("curves/" + name, a);
}

}  // namespace

Status run_critic_stage(StageContext& ctx) {
  schema::Params p(ctx.spec.params, "job.yaml");
  MIGVIS_RETURN_IF_ERROR(p.check_known({"epochs", "batch", "negatives", "lr", "weight_decay", "test_fraction",
                                        "feature_extractor", "width", "feature_dim", "embed_dim", "image_size",
                                        "augment_noise", "augment_blur", "keep_best", "judge_holdout"}));
  MIGVIS_ASSIGN_OR_RETURN(double judge_holdout, read_judge_holdout(p));
  critic::TrainOptions to;
  MIGVIS_ASSIGN_OR_RETURN(to.epochs, p.get_int("epochs", 30));
  MIGVIS_ASSIGN_OR_RETURN(to.batch, p.get_int("batch", 64));
  MIGVIS_ASSIGN_OR_RETURN(to.negatives, p.get_int("negatives", 64));
  MIGVIS_ASSIGN_OR_RETURN(to.lr, p.get_double("lr", 1e-3));
  MIGVIS_ASSIGN_OR_RETURN(to.weight_decay, p.get_double("weight_decay", 1e-5));
  MIGVIS_ASSIGN_OR_RETURN(to.test_fraction, p.get_double("test_fraction", 0.2));
  MIGVIS_ASSIGN_OR_RETURN(auto it, read_image_training_params(p));
  to.augment_noise = it.augment_noise;
  to.augment_blur = it.augment_blur;
  to.keep_best = it.keep_best;
  to.seed = ctx.spec.seed;
  if (to.epochs < 1 || to.batch < 2 || to.negatives < 0 || !(to.test_fraction > 0 && to.test_fraction < 1))
    return Status::InvalidArgument("job.yaml: params: need epochs >= 1, batch >= 2, negatives >= 0, 0 < test_fraction < 1");

  MIGVIS_ASSIGN_OR_RETURN(fs::path ds_path, require_input(ctx.spec, "dataset"));
  MIGVIS_ASSIGN_OR_RETURN(fs::path vae_dir, require_input(ctx.spec, "vae"));
  data::ReadOptions ro;
  ro.sessions = false;
  MIGVIS_ASSIGN_OR_RETURN(auto ds, data::read_dataset(ds_path, ro));
  MIGVIS_ASSIGN_OR_RETURN(auto vae, read_vae_latents(vae_dir));
  auto all_images = images_tensor(ds);  // [N, C, H, W]
  if (vae.image_index.numel() > 0 &&
      (vae.image_index.min().item<int64_t>() < 0 || vae.image_index.max().item<int64_t>() >= all_images.size(0)))
    return Status::InvalidArgument(fmt::format("{}/out.h5:/latent_image_index: values outside [0, {}) of {}",
                                               vae_dir.string(), all_images.size(0), ds_path.string()));
  // The critic never sees the judges' held-out stimuli (inputs.h, judge_split).
  const JudgeSplit split = judge_split(all_images.size(0), judge_holdout);
  {
    std::vector<int64_t> keep;
    auto idx = vae.image_index.accessor<int64_t, 1>();
    for (int64_t r = 0; r < idx.size(0); ++r)
      if (!split.is_heldout(idx[r])) keep.push_back(r);
    if (keep.size() < 2)
      return Status::InvalidArgument(fmt::format("job.yaml: params.judge_holdout = {:g} leaves {} of {} latent rows for the critic",
                                                 judge_holdout, keep.size(), idx.size(0)));
    auto rows = torch::tensor(keep, torch::kLong);
    vae.latents = vae.latents.index_select(0, rows);
    vae.image_index = vae.image_index.index_select(0, rows);
  }
  auto images = all_images.index_select(0, vae.image_index);

  critic::CriticOptions co;
  co.groups = vae.groups;
  co.group_rank = vae.group_rank;
  co.channels = images.size(1);
  MIGVIS_ASSIGN_OR_RETURN(co.image_size_px, p.get_int("image_size", images.size(2)));
  MIGVIS_ASSIGN_OR_RETURN(co.width, p.get_int("width", 16));
  MIGVIS_ASSIGN_OR_RETURN(co.feature_dim, p.get_int("feature_dim", 64));
  MIGVIS_ASSIGN_OR_RETURN(co.embed_dim, p.get_int("embed_dim", 32));
  MIGVIS_ASSIGN_OR_RETURN(co.feature_extractor, p.get_string("feature_extractor", ""));
  images = resize_images(images, co.image_size_px);

  torch::manual_seed(ctx.spec.seed);
  MIGVIS_ASSIGN_OR_RETURN(auto model, critic::make_critic(co));
  critic::to_device(model, stage_device(ctx));  // the data stay on the host; batches move
  record_model_device(ctx, "critic", *model);
  MIGVIS_LOG_INFO("critic: {} pairs, {} groups x {} dims, phi = {}", images.size(0), co.groups, co.group_rank,
                  co.feature_extractor.empty() ? "CNN encoder" : co.feature_extractor);
  if (ctx.comm->is_root())
    to.on_epoch = [&ctx](int64_t done, int64_t total) {
      (void)schema::write_progress({done, total, "train", schema::utc_now_iso8601()}, ctx.dir);  // display only
    };
  MIGVIS_ASSIGN_OR_RETURN(auto rep, critic::train_critic(model, images, vae.latents, to,
                                                         [&] { return ctx.should_stop(); }));

  if (!ctx.comm->is_root()) return Status::Ok();
  critic::to_device(model, torch::kCPU);  // critic.pt loads on any node
  MIGVIS_RETURN_IF_ERROR(critic::save_critic(model, ctx.dir));
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  auto& out = af->file();
  std::vector<float> mi(rep.mi_test.begin(), rep.mi_test.end()), mi0(rep.mi_test_initial.begin(), rep.mi_test_initial.end());
  MIGVIS_RETURN_IF_ERROR(out.write_vector("mi_lower_bound", mi));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<int64_t>("mi_lower_bound", "candidates", rep.eval_candidates));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<std::string>("mi_lower_bound", "units", "nats"));
  MIGVIS_RETURN_IF_ERROR(out.write_vector("mi_lower_bound_initial", mi0));
  MIGVIS_RETURN_IF_ERROR(write_curve(out, "train_loss", rep.train_loss));
  MIGVIS_RETURN_IF_ERROR(write_curve(out, "test_mi", rep.test_mi));
  MIGVIS_RETURN_IF_ERROR(critic::write_critic_config(out, model->options));
  MIGVIS_RETURN_IF_ERROR(write_judge_split(out, split, all_images.size(0)));
  MIGVIS_RETURN_IF_ERROR(af->commit());

  for (size_t g = 0; g < rep.mi_test.size(); ++g) {
    ctx.result->metrics[fmt::format("mi.g{}", g + 1)] = rep.mi_test[g];
    MIGVIS_LOG_INFO("critic: group {} held-out InfoNCE bound {:.3f} nats (before training {:.3f}, cap log {} = {:.3f})",
                    g + 1, rep.mi_test[g], rep.mi_test_initial[g], rep.eval_candidates,
                    std::log(static_cast<double>(rep.eval_candidates)));
  }
  if (!rep.train_loss.empty()) ctx.result->metrics["train_loss"] = rep.train_loss.back().second;
  ctx.result->metrics["best_epoch"] = static_cast<double>(rep.best_epoch);
  ctx.result->artifacts.push_back({"critic", critic::kCriticFile, ""});
  ctx.result->artifacts.push_back({"mi_lower_bound", schema::kOutFile, "/mi_lower_bound"});
  return Status::Ok();
}

}  // namespace migvis::worker
