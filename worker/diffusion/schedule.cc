#include "worker/diffusion/schedule.h"

#include <cmath>

#include <fmt/format.h>

namespace migvis::worker::diffusion {

namespace {

constexpr double kPi = 3.14159265358979323846;

at::TensorOptions f64() { return at::TensorOptions().dtype(at::kDouble); }

// abar on a grid of T+1 points in [0, 1] -> betas = 1 - abar[i+1]/abar[i], clipped.
at::Tensor betas_from_abar_curve(const at::Tensor& abar) {
  at::Tensor a = abar / abar[0];
  at::Tensor betas = 1.0 - a.slice(0, 1) / a.slice(0, 0, -1);
  return betas.clamp(0.0, 0.999);
}

at::Tensor make_betas(const ScheduleOptions& o) {
  const int64_t T = o.timesteps;
  switch (o.schedule) {
    case BetaSchedule::kLinear: {
      // DDPM's 1e-4 .. 0.02 for T = 1000, rescaled so the total noise is similar for other T.
      double scale = 1000.0 / static_cast<double>(T);
      return at::linspace(scale * 1e-4, scale * 0.02, T, f64()).clamp(1e-8, 0.999);
    }
    case BetaSchedule::kCosine: {
      at::Tensor t = at::linspace(0, 1, T + 1, f64());
      at::Tensor abar = at::cos((t + o.cosine_s) / (1 + o.cosine_s) * kPi * 0.5).pow(2);
      return betas_from_abar_curve(abar);
    }
    case BetaSchedule::kSigmoid: {
      at::Tensor t = at::linspace(0, 1, T + 1, f64());
      double v_start = 1.0 / (1.0 + std::exp(-o.sigmoid_start / o.sigmoid_tau));
      double v_end = 1.0 / (1.0 + std::exp(-o.sigmoid_end / o.sigmoid_tau));
      at::Tensor abar =
          (-at::sigmoid((t * (o.sigmoid_end - o.sigmoid_start) + o.sigmoid_start) / o.sigmoid_tau) + v_end) /
          (v_end - v_start);
      return betas_from_abar_curve(abar);
    }
  }
  return {};
}


}  // namespace

std::string to_string(BetaSchedule s) {
  switch (s) {
    case BetaSchedule::kLinear: return "linear";
    case BetaSchedule::kCosine: return "cosine";
    case BetaSchedule::kSigmoid: return "sigmoid";
  }
  return "?";
}

std::string to_string(Objective o) { return o == Objective::kPredNoise ? "pred_noise" : "pred_v"; }

Result<BetaSchedule> parse_beta_schedule(const std::string& name) {
  if (name == "linear") return BetaSchedule::kLinear;
  if (name == "cosine") return BetaSchedule::kCosine;
  if (name == "sigmoid") return BetaSchedule::kSigmoid;
  return Status::InvalidArgument("schedule: expected linear, cosine or sigmoid, got \"" + name + "\"");
}

Result<Objective> parse_objective(const std::string& name) {
  if (name == "pred_noise") return Objective::kPredNoise;
  if (name == "pred_v") return Objective::kPredV;
  return Status::InvalidArgument("objective: expected pred_noise or pred_v, got \"" + name + "\"");
}

Status NoiseSchedule::validate(const ScheduleOptions& o) {
  if (o.timesteps < 2) return Status::InvalidArgument(fmt::format("timesteps: expected >= 2, got {}", o.timesteps));
  if (o.schedule == BetaSchedule::kSigmoid && !(o.sigmoid_end > o.sigmoid_start && o.sigmoid_tau > 0))
    return Status::InvalidArgument("sigmoid schedule: expected sigmoid_end > sigmoid_start and tau > 0");
  if (o.min_snr_gamma < 0) return Status::InvalidArgument("min_snr_gamma: expected >= 0");
  return Status::Ok();
}

NoiseSchedule::NoiseSchedule(const ScheduleOptions& options) : options_(options) {
  betas_ = make_betas(options_);
  at::Tensor alphas = 1.0 - betas_;
  alphas_cumprod_ = at::cumprod(alphas, 0);
  alphas_cumprod_prev_ = at::cat({at::ones({1}, f64()), alphas_cumprod_.slice(0, 0, -1)});
  posterior_variance_ = betas_ * (1.0 - alphas_cumprod_prev_) / (1.0 - alphas_cumprod_);
  snr_ = alphas_cumprod_ / (1.0 - alphas_cumprod_);
  at::Tensor snr_w = options_.min_snr_gamma > 0 ? snr_.clamp_max(options_.min_snr_gamma) : snr_;
  loss_weight_ = options_.objective == Objective::kPredNoise ? snr_w / snr_ : snr_w / (snr_ + 1.0);
  at::Tensor c = alphas_cumprod_.contiguous();
  abar_.assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double NoiseSchedule::abar(int64_t t) const {
  if (t < 0) return 1.0;
  return abar_.at(static_cast<size_t>(t));
}

at::Tensor extract(const at::Tensor& coef, const at::Tensor& t, const at::Tensor& like) {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = t.size(0);
  return coef.to(like.device()).index_select(0, t.to(like.device()).to(at::kLong)).to(like.scalar_type()).view(shape);
}

at::Tensor q_sample(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  return extract(s.alphas_cumprod().sqrt(), t, x0) * x0 + extract((1.0 - s.alphas_cumprod()).sqrt(), t, x0) * noise;
}

at::Tensor predict_x0(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, const at::Tensor& t) {
  return (x_t - extract((1.0 - s.alphas_cumprod()).sqrt(), t, x_t) * eps) / extract(s.alphas_cumprod().sqrt(), t, x_t);
}

at::Tensor predict_x0(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t) {
  double a = s.abar(t);
  return (x_t - std::sqrt(1.0 - a) * eps) / std::sqrt(a);
}

at::Tensor predict_eps(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& x0, int64_t t) {
  double a = s.abar(t);
  return (x_t - std::sqrt(a) * x0) / std::sqrt(1.0 - a);
}

at::Tensor training_target(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  if (s.objective() == Objective::kPredNoise) return noise;
  return extract(s.alphas_cumprod().sqrt(), t, x0) * noise - extract((1.0 - s.alphas_cumprod()).sqrt(), t, x0) * x0;
}

at::Tensor model_output_to_eps(const NoiseSchedule& s, const at::Tensor& out, const at::Tensor& x_t,
                               const at::Tensor& t) {
  if (s.objective() == Objective::kPredNoise) return out;
  // v = sqrt(a) eps - sqrt(1-a) x0 and x_t = sqrt(a) x0 + sqrt(1-a) eps  =>  eps = sqrt(a) v + sqrt(1-a) x_t.
  return extract(s.alphas_cumprod().sqrt(), t, x_t) * out + extract((1.0 - s.alphas_cumprod()).sqrt(), t, x_t) * x_t;
}

at::Tensor model_output_to_eps(const NoiseSchedule& s, const at::Tensor& out, const at::Tensor& x_t, int64_t t) {
  if (s.objective() == Objective::kPredNoise) return out;
  double a = s.abar(t);
  return std::sqrt(a) * out + std::sqrt(1.0 - a) * x_t;
}

DiffusionLoss diffusion_loss(const NoiseSchedule& s, const at::Tensor& pred, const at::Tensor& target,
                             const at::Tensor& t) {
  // pred, target: [B, C, H, W] -> per-sample MSE [B]
  at::Tensor per_sample = (pred - target).pow(2).flatten(1).mean(1);
  at::Tensor w = s.loss_weight().to(pred.device()).index_select(0, t.to(pred.device())).to(pred.scalar_type());
  return {(per_sample * w).mean(), per_sample.mean()};
}

at::Tensor ddim_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     int64_t t_prev, double eta, const at::Tensor& noise, bool clip_x0) {
  TORCH_CHECK(t >= 0 && t < s.timesteps() && t_prev >= -1 && t_prev < t, "ddim_step: bad (t, t_prev) = (", t, ", ",
              t_prev, ")");
  double a = s.abar(t), a_prev = s.abar(t_prev);
  at::Tensor x0 = predict_x0(s, x_t, eps, t);
  at::Tensor e = eps;
  if (clip_x0) {
    x0 = x0.clamp(-1.0, 1.0);
    e = predict_eps(s, x_t, x0, t);
  }
  double sigma = eta * std::sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev));
  double c = std::sqrt(std::max(0.0, 1.0 - a_prev - sigma * sigma));
  at::Tensor x_prev = std::sqrt(a_prev) * x0 + c * e;
  if (sigma > 0) {
    TORCH_CHECK(noise.defined(), "ddim_step: eta > 0 needs noise");
    x_prev = x_prev + sigma * noise;
  }
  return x_prev;
}

at::Tensor ddim_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     int64_t t_prev, double eta, std::optional<at::Generator> generator, bool clip_x0) {
  at::Tensor noise;
  // Drawn on the CPU (a CPU generator; the same numbers on any device), then moved.
  if (eta > 0)
    noise = at::randn(x_t.sizes(), generator ? c10::optional<at::Generator>(*generator) : c10::nullopt,
                      x_t.options().device(at::kCPU))
                .to(x_t.device());
  return ddim_step(s, x_t, eps, t, t_prev, eta, noise, clip_x0);
}

at::Tensor ddpm_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     const at::Tensor& noise, bool clip_x0) {
  TORCH_CHECK(t >= 0 && t < s.timesteps(), "ddpm_step: t = ", t, " out of range");
  double a = s.abar(t), a_prev = s.abar(t - 1);
  double beta = 1.0 - a / a_prev;
  at::Tensor x0 = predict_x0(s, x_t, eps, t);
  if (clip_x0) x0 = x0.clamp(-1.0, 1.0);
  // Posterior q(x_{t-1} | x_t, x0): mean = c1 x0 + c2 x_t.
  double c1 = beta * std::sqrt(a_prev) / (1.0 - a);
  double c2 = (1.0 - a_prev) * std::sqrt(1.0 - beta) / (1.0 - a);
  at::Tensor mean = c1 * x0 + c2 * x_t;
  if (t == 0) return mean;
  TORCH_CHECK(noise.defined(), "ddpm_step: t > 0 needs noise");
  double var = beta * (1.0 - a_prev) / (1.0 - a);
  return mean + std::sqrt(var) * noise;
}

at::Tensor ddpm_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     std::optional<at::Generator> generator, bool clip_x0) {
  at::Tensor noise;
  if (t > 0)
    noise = at::randn(x_t.sizes(), generator ? c10::optional<at::Generator>(*generator) : c10::nullopt,
                      x_t.options().device(at::kCPU))
                .to(x_t.device());
  return ddpm_step(s, x_t, eps, t, noise, clip_x0);
}

at::Tensor ddim_invert_step(const NoiseSchedule& s, const at::Tensor& x_cur, const at::Tensor& eps, int64_t t_cur,
                            int64_t t_next) {
  TORCH_CHECK(t_cur >= -1 && t_next > t_cur && t_next < s.timesteps(), "ddim_invert_step: bad (t_cur, t_next) = (",
              t_cur, ", ", t_next, ")");
  double a = s.abar(t_cur), a_next = s.abar(t_next);
  at::Tensor x0 = (x_cur - std::sqrt(1.0 - a) * eps) / std::sqrt(a);
  return std::sqrt(a_next) * x0 + std::sqrt(1.0 - a_next) * eps;
}

std::vector<int64_t> ddim_timesteps(int64_t t_start, int64_t steps) {
  TORCH_CHECK(t_start >= 0 && steps >= 1 && steps <= t_start + 1, "ddim_timesteps: steps = ", steps,
              " must be in [1, ", t_start + 1, "]");
  // linspace(-1, t_start, steps+1), reversed, rounded; distinct because the spacing is >= 1.
  std::vector<int64_t> seq(static_cast<size_t>(steps + 1));
  for (int64_t i = 0; i <= steps; ++i) {
    double v = -1.0 + static_cast<double>(t_start + 1) * static_cast<double>(i) / static_cast<double>(steps);
    seq[static_cast<size_t>(steps - i)] = static_cast<int64_t>(std::llround(v));
  }
  return seq;
}

}  // namespace migvis::worker::diffusion
