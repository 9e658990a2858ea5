#include "worker/diffusion/train.h"

#include <algorithm>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "common/hash.h"
#include "results/h5.h"
#include "schemas/job_spec.h"

namespace migvis::worker::diffusion {

namespace {

uint64_t step_seed(uint64_t seed, int rank, int64_t step) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(rank)) ^ static_cast<uint64_t>(step));
}

}  // namespace

Status TrainOptions::validate(int ranks) const {
  if (steps < 0) return Status::InvalidArgument(fmt::format("steps: expected >= 0, got {}", steps));
  if (batch < 1 || batch % ranks != 0)
    return Status::InvalidArgument(
        fmt::format("batch: expected a positive multiple of the number of ranks ({}), got {}", ranks, batch));
  if (grad_accum < 1) return Status::InvalidArgument(fmt::format("grad_accum: expected >= 1, got {}", grad_accum));
  if (!(lr > 0)) return Status::InvalidArgument(fmt::format("lr: expected > 0, got {}", lr));
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    return Status::InvalidArgument("beta1, beta2: expected values in [0, 1)");
  if (grad_clip < 0) return Status::InvalidArgument("grad_clip: expected >= 0");
  if (!(ema_decay >= 0 && ema_decay <= 1)) return Status::InvalidArgument("ema_decay: expected a value in [0, 1]");
  if (ema_every < 1) return Status::InvalidArgument("ema_every: expected >= 1");
  if (log_every < 1) return Status::InvalidArgument("log_every: expected >= 1");
  return check_precision(precision, device, "precision");
}

DiffusionTrainer::DiffusionTrainer(const UNetOptions& unet_options, const NoiseSchedule& schedule,
                                   const TrainOptions& options, torch::Tensor images, Communicator* comm)
    : unet_options_(unet_options), schedule_(schedule), opt_(options), images_(std::move(images)), comm_(comm) {
  TORCH_CHECK(images_.dim() == 4 && images_.size(0) >= 1, "DiffusionTrainer: images must be [N>=1, C, H, W]");
  torch::manual_seed(static_cast<uint64_t>(opt_.seed));  // initial weights (rank 0's win the broadcast)
  model_ = UNet(unet_options_);
  ema_ = UNet(unet_options_);
  {
    torch::NoGradGuard g;
    auto src = model_->parameters(), dst = ema_->parameters();
    for (size_t i = 0; i < src.size(); ++i) {
      dst[i].copy_(src[i]);
      dst[i].set_requires_grad(false);
    }
  }
  ema_->eval();
  scaler_ = LossScaler(opt_.precision == Precision::kFp16);
  const torch::Device dev(opt_.device);
  model_->to(dev);
  ema_->to(dev);
  adam_ = std::make_unique<torch::optim::Adam>(
      model_->parameters(), torch::optim::AdamOptions(opt_.lr).betas({opt_.beta1, opt_.beta2}));
  Status st = broadcast_params();
  TORCH_CHECK(st.ok(), "DiffusionTrainer: broadcast: ", st.message());
}

Status DiffusionTrainer::broadcast_params() {
  std::vector<torch::Tensor> ts;
  for (auto& p : model_->parameters()) ts.push_back(p.data());
  for (auto& p : ema_->parameters()) ts.push_back(p.data());
  return comm_->broadcast(ts, 0);
}

void DiffusionTrainer::update_ema() {
  torch::NoGradGuard g;
  auto src = model_->parameters(), dst = ema_->parameters();
  // Warm-up: the k-th update (k = 1, 2, ...) uses min(ema_decay, (1 + k) / (10 + k)),
  // so the random initial weights fade out within the first few updates instead
  // of holding ema_decay^k of the average (30% after 60 updates at 0.98).
  const double k = static_cast<double>(step_ / opt_.ema_every);
  const double decay = std::min(opt_.ema_decay, (1.0 + k) / (10.0 + k));
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(decay).add_(src[i], 1.0 - decay);
}

Result<double> DiffusionTrainer::train_step() {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(step_seed(opt_.seed, comm_->rank(), step_));
  const int64_t b = opt_.batch / comm_->size();
  const int64_t n = images_.size(0);
  adam_->zero_grad();
  double loss_sum = 0;
  for (int64_t a = 0; a < opt_.grad_accum; ++a) {
    torch::Tensor idx = torch::randint(0, n, {b}, gen, torch::kLong);
    torch::Tensor x0 = images_.index_select(0, idx);                                    // [b, C, H, W]
    torch::Tensor t = torch::randint(0, schedule_.timesteps(), {b}, gen, torch::kLong);  // [b]
    torch::Tensor noise = torch::randn(x0.sizes(), gen, x0.options());                  // [b, C, H, W]
    const torch::Device dev(opt_.device);
    if (!dev.is_cpu()) {
      x0 = x0.to(dev);
      t = t.to(dev);
      noise = noise.to(dev);
    }
    torch::Tensor loss;
    {
      // Autocast covers the forward and the loss; backward runs outside it
      // (it replays the forward's dtypes), as torch.autocast prescribes.
      AutocastGuard autocast(opt_.precision, dev);
      torch::Tensor x_t = q_sample(schedule_, x0, t, noise);
      torch::Tensor pred = model_->forward(x_t, t).pred;
      loss = diffusion_loss(schedule_, pred.to(torch::kFloat), training_target(schedule_, x0, t, noise), t).loss;
    }
    scaler_.scale_loss(loss / static_cast<double>(opt_.grad_accum)).backward();
    loss_sum += loss.item<double>();
  }
  std::vector<torch::Tensor> grads;
  auto params = model_->parameters();
  for (auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  MIGVIS_RETURN_IF_ERROR(comm_->all_reduce_mean(grads));
  // After the all-reduce every rank holds the same gradients, so all agree.
  const bool finite = scaler_.unscale(grads);
  scaler_.update(finite);
  if (finite) {
    if (opt_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, opt_.grad_clip);
    adam_->step();
  } else {
    ++skipped_steps_;  // fp16 overflow: the scale was halved, weights untouched
  }
  ++step_;
  if (step_ % opt_.ema_every == 0) update_ema();

  std::vector<torch::Tensor> lt = {torch::tensor(loss_sum / static_cast<double>(opt_.grad_accum), torch::kDouble)};
  MIGVIS_RETURN_IF_ERROR(comm_->all_reduce_mean(lt));
  double loss = lt[0].item<double>();
  if (!std::isfinite(loss))
    return Status::Internal(fmt::format("diffusion training diverged: loss {} at step {} (lower lr?)", loss, step_));
  window_sum_ += loss;
  ++window_n_;
  if (step_ % opt_.log_every == 0) {
    curve_.emplace_back(step_, window_sum_ / static_cast<double>(window_n_));
    window_sum_ = 0;
    window_n_ = 0;
  }
  return loss;
}

Status DiffusionTrainer::save(Checkpointer& ck) {
  if (!comm_->is_root()) return Status::Ok();
  CheckpointState st;
  st.step = step_;
  st.modules["model"] = model_.get();
  st.modules["ema"] = ema_.get();
  st.optimizers["adam"] = adam_.get();
  torch::Tensor curve = torch::zeros({static_cast<int64_t>(curve_.size()), 2}, torch::kDouble);
  for (size_t i = 0; i < curve_.size(); ++i) {
    curve[static_cast<int64_t>(i)][0] = static_cast<double>(curve_[i].first);
    curve[static_cast<int64_t>(i)][1] = curve_[i].second;
  }
  st.tensors["curve"] = curve;
  st.tensors["window"] = torch::tensor({window_sum_, static_cast<double>(window_n_)}, torch::kDouble);
  return ck.save(st);
}

Result<bool> DiffusionTrainer::restore(Checkpointer& ck) {
  CheckpointState st;
  st.modules["model"] = model_.get();
  st.modules["ema"] = ema_.get();
  st.optimizers["adam"] = adam_.get();
  st.tensors["curve"] = torch::Tensor();
  st.tensors["window"] = torch::Tensor();
  MIGVIS_ASSIGN_OR_RETURN(bool found, ck.restore_latest(&st));
  if (!found) return false;
  step_ = st.step;
  curve_.clear();
  torch::Tensor c = st.tensors["curve"].to(torch::kDouble).contiguous();
  for (int64_t i = 0; i < c.size(0); ++i)
    curve_.emplace_back(static_cast<int64_t>(c[i][0].item<double>()), c[i][1].item<double>());
  torch::Tensor w = st.tensors["window"].to(torch::kDouble);
  window_sum_ = w[0].item<double>();
  window_n_ = static_cast<int64_t>(w[1].item<double>());
  for (auto& p : ema_->parameters()) p.set_requires_grad(false);
  MIGVIS_RETURN_IF_ERROR(broadcast_params());
  return true;
}

// ------------------------------------------------------------------ config / loader

Status write_diffusion_config(const h5::Location& file, const UNetOptions& u, const ScheduleOptions& s) {
  MIGVIS_ASSIGN_OR_RETURN(auto g, file.require_group("config"));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "width", u.width));
  MIGVIS_RETURN_IF_ERROR(g.set_attr_vector<int64_t>(".", "mults", u.mults));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "image_size", u.image_size));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "channels", u.channels));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "attn_heads", u.attn_heads));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "attn_dim_head", u.attn_dim_head));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "full_attn_deepest", u.full_attn_deepest ? 1 : 0));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<int64_t>(".", "T", s.timesteps));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<std::string>(".", "schedule", to_string(s.schedule)));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<std::string>(".", "objective", to_string(s.objective)));
  MIGVIS_RETURN_IF_ERROR(g.set_attr<double>(".", "min_snr_gamma", s.min_snr_gamma));
  return Status::Ok();
}

Result<DiffusionModel> load_diffusion(const fs::path& job_dir) {
  fs::path out = job_dir / schema::kOutFile, pt = job_dir / "model.pt";
  if (!fs::exists(pt)) return Status::NotFound(pt.string() + ": no diffusion model (did the diffusion job finish?)");
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(out));
  if (!f.is_group("config")) return Status::InvalidArgument(f.where("config") + ": missing diffusion /config group");
  MIGVIS_ASSIGN_OR_RETURN(auto g, f.open_group("config"));
  DiffusionModel m;
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.width, g.attr<int64_t>(".", "width"));
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.mults, g.attr_vector<int64_t>(".", "mults"));
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.image_size, g.attr<int64_t>(".", "image_size"));
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.channels, g.attr<int64_t>(".", "channels"));
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.attn_heads, g.attr<int64_t>(".", "attn_heads"));
  MIGVIS_ASSIGN_OR_RETURN(m.unet_options.attn_dim_head, g.attr<int64_t>(".", "attn_dim_head"));
  MIGVIS_ASSIGN_OR_RETURN(int64_t full, g.attr<int64_t>(".", "full_attn_deepest"));
  m.unet_options.full_attn_deepest = full != 0;
  MIGVIS_ASSIGN_OR_RETURN(m.schedule_options.timesteps, g.attr<int64_t>(".", "T"));
  MIGVIS_ASSIGN_OR_RETURN(std::string sched, g.attr<std::string>(".", "schedule"));
  MIGVIS_ASSIGN_OR_RETURN(std::string obj, g.attr<std::string>(".", "objective"));
  MIGVIS_ASSIGN_OR_RETURN(m.schedule_options.min_snr_gamma, g.attr<double>(".", "min_snr_gamma"));
  auto bs = parse_beta_schedule(sched);
  if (!bs.ok()) return bs.status().with_context(g.where());
  auto ob = parse_objective(obj);
  if (!ob.ok()) return ob.status().with_context(g.where());
  m.schedule_options.schedule = *bs;
  m.schedule_options.objective = *ob;
  Status v = m.unet_options.validate();
  if (!v.ok()) return v.with_context(g.where());
  v = NoiseSchedule::validate(m.schedule_options);
  if (!v.ok()) return v.with_context(g.where());
  m.schedule = NoiseSchedule(m.schedule_options);
  m.unet = UNet(m.unet_options);
  try {
    torch::load(m.unet, pt.string(), torch::Device(torch::kCPU));  // any node; callers move it
  } catch (const c10::Error& e) {
    return Status::DataLoss(pt.string() + ": cannot load the UNet with " + out.string() +
                            ":/config: " + e.what_without_backtrace());
  }
  m.unet->eval();
  return m;
}

Result<UNet> load_diffusion_model(const fs::path& job_dir) {
  MIGVIS_ASSIGN_OR_RETURN(DiffusionModel m, load_diffusion(job_dir));
  return m.unet;
}

}  // namespace migvis::worker::diffusion
