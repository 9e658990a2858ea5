// The DDPM noise schedule and the per-step update rules built on it.
//
// Timesteps are integers t in [0, T-1]; t = -1 stands for clean data (abar = 1),
// so a DDIM sequence runs T-1 -> ... -> -1 and DDIM inversion runs the other way.
// The schedule holds float64 tensors; every function below casts the
// coefficients it needs to the dtype of its image argument, so float64 models
// (gradient checks) and float32 models share the code.
//
// The step functions are free functions taking an already computed eps, so the
// unguided samplers (worker/diffusion/sampler.h) and MI-guided synthesis
// (worker/synthesis/) use the same update: guidance just passes eps' instead of
// eps. All of them are differentiable (no in-place ops on their inputs).
//
// Thread-compatible: a NoiseSchedule is immutable after construction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/status.h"

namespace migvis::worker::diffusion {

enum class BetaSchedule { kLinear, kCosine, kSigmoid };
enum class Objective { kPredNoise, kPredV };

// Names are a format (job params, out.h5 /config attrs): "linear", "cosine",
// "sigmoid"; "pred_noise", "pred_v".
std::string to_string(BetaSchedule s);
std::string to_string(Objective o);
Result<BetaSchedule> parse_beta_schedule(const std::string& name);
Result<Objective> parse_objective(const std::string& name);

struct ScheduleOptions {
  int64_t timesteps = 150;                       // T
  BetaSchedule schedule = BetaSchedule::kSigmoid;
  Objective objective = Objective::kPredNoise;
  // Sigmoid schedule shape (Jabri et al. 2022): abar(t) from sigmoid((t*(end-start)+start)/tau).
  double sigmoid_start = -3.0;
  double sigmoid_end = 3.0;
  double sigmoid_tau = 1.0;
  double cosine_s = 0.008;
  // Min-SNR-gamma loss weighting; 0 = off (plain MSE for pred_noise).
  double min_snr_gamma = 0.0;
};

class NoiseSchedule {
 public:
  // Precondition: options.timesteps >= 2 (checked by validate()).
  explicit NoiseSchedule(const ScheduleOptions& options = {});
  static Status validate(const ScheduleOptions& options);

  const ScheduleOptions& options() const { return options_; }
  int64_t timesteps() const { return options_.timesteps; }
  Objective objective() const { return options_.objective; }

  // All float64, shape [T].
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }            // abar_t
  const at::Tensor& alphas_cumprod_prev() const { return alphas_cumprod_prev_; }  // abar_{t-1}, 1 at t=0
  const at::Tensor& posterior_variance() const { return posterior_variance_; }    // beta tilde
  const at::Tensor& snr() const { return snr_; }                                  // abar / (1 - abar)
  const at::Tensor& loss_weight() const { return loss_weight_; }

  // abar_t as a double; t = -1 gives 1 (clean data). Precondition: -1 <= t < T.
  double abar(int64_t t) const;

 private:
  ScheduleOptions options_;
  at::Tensor betas_, alphas_cumprod_, alphas_cumprod_prev_, posterior_variance_, snr_, loss_weight_;
  std::vector<double> abar_;  // host copy for the step functions
};

// coef[t] for each sample, shaped [B, 1, 1, 1] (rank of `like`) in like's dtype/device.
// coef: [T] float64; t: [B] int64.
at::Tensor extract(const at::Tensor& coef, const at::Tensor& t, const at::Tensor& like);

// Forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.
// x0, noise: [B, C, H, W]; t: [B] int64 in [0, T).
at::Tensor q_sample(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise);

// x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).  x_t, eps: [B, C, H, W]; t: [B] int64.
at::Tensor predict_x0(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, const at::Tensor& t);
at::Tensor predict_x0(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t);
// eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t).  Precondition: t >= 0.
at::Tensor predict_eps(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& x0, int64_t t);

// The network's training target and the eps it implies.
// pred_noise: target = noise; pred_v: target = v = sqrt(abar) noise - sqrt(1-abar) x0.
at::Tensor training_target(const NoiseSchedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise);
// Converts a model output at (x_t, t) to eps (identity for pred_noise). t: [B] int64.
at::Tensor model_output_to_eps(const NoiseSchedule& s, const at::Tensor& out, const at::Tensor& x_t,
                               const at::Tensor& t);
at::Tensor model_output_to_eps(const NoiseSchedule& s, const at::Tensor& out, const at::Tensor& x_t, int64_t t);

struct DiffusionLoss {
  at::Tensor loss;  // scalar: mean over batch of loss_weight[t] * per-sample MSE
  at::Tensor mse;   // scalar: unweighted MSE (for curves)
};
// pred, target: [B, C, H, W]; t: [B] int64.
DiffusionLoss diffusion_loss(const NoiseSchedule& s, const at::Tensor& pred, const at::Tensor& target,
                             const at::Tensor& t);

// One DDIM update x_t -> x_{t_prev} given eps (possibly guided).
// sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev));
// x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma * noise.
// With clip_x0 the x0 estimate is clamped to [-1, 1] and eps recomputed from it.
// t in [0, T), t_prev in [-1, t). `noise` [B, C, H, W] is used only when sigma > 0;
// pass an undefined tensor when eta == 0. Returns x_prev [B, C, H, W].
at::Tensor ddim_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     int64_t t_prev, double eta, const at::Tensor& noise, bool clip_x0 = true);
// Same, drawing `noise` from `generator` (nullopt: the global generator) when eta > 0.
at::Tensor ddim_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     int64_t t_prev, double eta, std::optional<at::Generator> generator, bool clip_x0 = true);

// One DDPM ancestral step x_t -> x_{t-1}: posterior mean of q(x_{t-1} | x_t, x0_hat)
// plus sqrt(beta tilde_t) * noise (no noise at t = 0). `noise` as for ddim_step.
at::Tensor ddpm_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     const at::Tensor& noise, bool clip_x0 = true);
at::Tensor ddpm_step(const NoiseSchedule& s, const at::Tensor& x_t, const at::Tensor& eps, int64_t t,
                     std::optional<at::Generator> generator, bool clip_x0 = true);

// One deterministic DDIM inversion update x_{t_cur} -> x_{t_next} (t_next > t_cur,
// t_cur = -1 for clean data), given eps predicted for the current x (the
// sampler evaluates the model at t_next). No clipping.
at::Tensor ddim_invert_step(const NoiseSchedule& s, const at::Tensor& x_cur, const at::Tensor& eps,
                            int64_t t_cur, int64_t t_next);

// DDIM timestep sequence: `steps` + 1 values, strictly descending from t_start to -1
// (evenly spaced, rounded). Pairs (seq[i], seq[i+1]) are the (t, t_prev) of each step;
// the full chain is ddim_timesteps(T - 1, steps), an SDEdit-style edit from t_edit is
// ddim_timesteps(t_edit, steps). Precondition: 1 <= steps <= t_start + 1.
std::vector<int64_t> ddim_timesteps(int64_t t_start, int64_t steps);

}  // namespace migvis::worker::diffusion
