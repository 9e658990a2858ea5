#include "worker/stages/inputs.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/hash.h"
#include "common/log.h"

namespace migvis::worker {

torch::Device stage_device(const StageContext& ctx) { return torch::Device(ctx.device); }

void record_model_device(StageContext& ctx, const std::string& name, const torch::nn::Module& m) {
  std::string where = "none";
  auto params = m.parameters();
  auto buffers = m.buffers();
  if (!params.empty()) where = params.front().device().str();
  else if (!buffers.empty()) where = buffers.front().device().str();
  ctx.model_devices[name] = where;
  MIGVIS_LOG_DEBUG("{}: {} on {}", ctx.spec.stage, name, where);
}

Result<fs::path> require_input(const schema::JobSpec& spec, const std::string& name) {
  auto it = spec.inputs.find(name);
  if (it == spec.inputs.end() || it->second.empty())
    return Status::InvalidArgument(fmt::format("job.yaml: inputs.{}: missing (stage {} needs it)", name, spec.stage));
  fs::path p = it->second;
  if (!fs::exists(p)) return Status::NotFound(fmt::format("job.yaml: inputs.{}: {} does not exist", name, p.string()));
  return p;
}

Result<VaeLatents> read_vae_latents(const fs::path& vae_dir) {
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(vae_dir / "out.h5"));
  MIGVIS_ASSIGN_OR_RETURN(auto lat, f.read<float>("latents"));
  if (lat.rank() != 2)
    return Status::InvalidArgument(f.where("/latents") + fmt::format(": expected rank 2 [N, D], got rank {}", lat.rank()));
  VaeLatents v;
  const int64_t n = lat.dim(0), d = lat.dim(1);
  MIGVIS_ASSIGN_OR_RETURN(v.groups, f.attr<int64_t>("latents", "groups"));
  MIGVIS_ASSIGN_OR_RETURN(v.group_rank, f.attr<int64_t>("latents", "group_rank"));
  if (v.groups < 1 || v.group_rank < 1 || v.groups * v.group_rank != d)
    return Status::InvalidArgument(f.where("/latents") + fmt::format(": attrs groups {} x group_rank {} != D = {}",
                                                                     v.groups, v.group_rank, d));
  v.latents = torch::from_blob(lat.data.data(), {n, d}, torch::kFloat32).clone();
  if (f.exists("latent_image_index")) {
    MIGVIS_ASSIGN_OR_RETURN(auto idx, f.read_vector<int32_t>("latent_image_index"));
    if (static_cast<int64_t>(idx.size()) != n)
      return Status::InvalidArgument(f.where("/latent_image_index") +
                                     fmt::format(": length {} != {} rows of /latents", idx.size(), n));
    v.image_index = torch::from_blob(idx.data(), {n}, torch::kInt32).to(torch::kLong);
  } else {
    v.image_index = torch::arange(n, torch::kLong);
  }
  return v;
}

torch::Tensor images_tensor(const data::Dataset& d) {
  std::vector<int64_t> shape(d.images.shape.begin(), d.images.shape.end());
  return torch::from_blob(const_cast<float*>(d.images.data.data()), shape, torch::kFloat32).clone();
}

torch::Tensor resize_images(const torch::Tensor& x, int64_t size_px) {
  if (x.size(2) == size_px && x.size(3) == size_px) return x;
  namespace F = torch::nn::functional;
  auto o = F::InterpolateFuncOptions().size(std::vector<int64_t>{size_px, size_px});
  if (x.size(2) > size_px) return F::interpolate(x, o.mode(torch::kArea));
  return F::interpolate(x, o.mode(torch::kBilinear).align_corners(false));
}

torch::Tensor augment_images(torch::Tensor x, double noise, double blur, at::Generator& gen) {
  const int64_t b = x.size(0);
  // Random numbers come from the CPU generator (the same on any device) and move to x's device.
  const auto cpu = x.options().device(torch::kCPU);
  if (blur > 0) {
    auto blurred = torch::nn::functional::avg_pool2d(
        x, torch::nn::functional::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
    auto pick = (torch::rand({b, 1, 1, 1}, gen, cpu) < blur).to(x.options());  // [B, 1, 1, 1]
    x = pick * blurred + (1 - pick) * x;
  }
  if (noise > 0) {
    auto sd = torch::rand({b, 1, 1, 1}, gen, cpu).to(x.device()) * noise;  // [B, 1, 1, 1]
    x = (x + sd * torch::randn(x.sizes(), gen, cpu).to(x.device())).clamp(0, 1);
  }
  return x;
}

Result<ImageTrainingParams> read_image_training_params(const schema::Params& p) {
  ImageTrainingParams t;
  MIGVIS_ASSIGN_OR_RETURN(t.augment_noise, p.get_double("augment_noise", t.augment_noise));
  MIGVIS_ASSIGN_OR_RETURN(t.augment_blur, p.get_double("augment_blur", t.augment_blur));
  MIGVIS_ASSIGN_OR_RETURN(t.keep_best, p.get_bool("keep_best", t.keep_best));
  if (!(t.augment_noise >= 0))
    return Status::InvalidArgument(fmt::format("job.yaml: params.augment_noise: expected >= 0, got {}", t.augment_noise));
  if (!(t.augment_blur >= 0 && t.augment_blur <= 1))
    return Status::InvalidArgument(fmt::format("job.yaml: params.augment_blur: expected a probability in [0, 1], got {}",
                                               t.augment_blur));
  return t;
}


bool JudgeSplit::is_heldout(int64_t image) const {
  return std::binary_search(heldout.begin(), heldout.end(), image);
}

JudgeSplit judge_split(int64_t n_images, double fraction) {
  JudgeSplit s;
  s.fraction = fraction;
  std::vector<std::pair<uint64_t, int64_t>> order;
  for (int64_t i = 0; i < n_images; ++i) order.emplace_back(splitmix64(static_cast<uint64_t>(i) ^ 0x6a75646765ull), i);
  std::sort(order.begin(), order.end());
  const int64_t n_held = std::clamp<int64_t>(std::llround(fraction * n_images), 0, n_images);
  for (int64_t k = 0; k < n_images; ++k) (k < n_held ? s.heldout : s.critic).push_back(order[k].second);
  std::sort(s.heldout.begin(), s.heldout.end());
  std::sort(s.critic.begin(), s.critic.end());
  return s;
}

Result<double> read_judge_holdout(const schema::Params& p) {
  MIGVIS_ASSIGN_OR_RETURN(double f, p.get_double("judge_holdout", kDefaultJudgeHoldout));
  if (!(f >= 0 && f <= 0.9))
    return Status::InvalidArgument(fmt::format("job.yaml: params.judge_holdout: expected a fraction in [0, 0.9], got {}", f));
  return f;
}

Status write_judge_split(const h5::Location& out, const JudgeSplit& s, int64_t n_images) {
  std::vector<int32_t> held(s.heldout.begin(), s.heldout.end());
  MIGVIS_RETURN_IF_ERROR(out.write_vector("judge_heldout", held));
  MIGVIS_RETURN_IF_ERROR(out.set_attr<double>("judge_heldout", "fraction", s.fraction));
  return out.set_attr<int64_t>("judge_heldout", "images", n_images);
}

Result<JudgeSplit> read_judge_split(const h5::Location& in) {
  if (!in.exists("judge_heldout"))
    return Status::NotFound(in.where("/judge_heldout") + ": missing (written by critic and diffusion jobs of this version; rerun them)");
  MIGVIS_ASSIGN_OR_RETURN(double fraction, in.attr<double>("judge_heldout", "fraction"));
  MIGVIS_ASSIGN_OR_RETURN(int64_t n, in.attr<int64_t>("judge_heldout", "images"));
  JudgeSplit s = judge_split(n, fraction);
  MIGVIS_ASSIGN_OR_RETURN(auto held, in.read_vector<int32_t>("judge_heldout"));
  if (!std::equal(held.begin(), held.end(), s.heldout.begin(), s.heldout.end()))
    return Status::InvalidArgument(in.where("/judge_heldout") +
                                   fmt::format(": {} indices differ from the split of {} images at fraction {}", held.size(), n, fraction));
  return s;
}

bool BestParameters::offer(double score, torch::nn::Module& m) {
  if (!(score > best_)) return false;
  torch::NoGradGuard ng;
  best_ = score;
  params_.clear();
  for (auto& t : m.parameters()) params_.push_back(t.detach().clone());
  return true;
}

void BestParameters::restore(torch::nn::Module& m) const {
  if (params_.empty()) return;
  torch::NoGradGuard ng;
  auto params = m.parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(params_[i]);
}

}  // namespace migvis::worker
