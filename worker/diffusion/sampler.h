// Unguided, batched samplers built from the step functions of schedule.h:
// DDPM ancestral, DDIM with eta, and deterministic DDIM inversion. The model is
// passed as an EpsFn so the same loops run a UNet, an analytic test model or a
// wrapped guided model. Every call is one model evaluation for the whole batch.
#pragma once

#include <functional>
#include <optional>

#include "worker/diffusion/schedule.h"
#include "worker/diffusion/unet.h"

namespace migvis::worker::diffusion {

// Returns eps predicted for x_t: [B, C, H, W] at integer timestep t (same for the batch).
using EpsFn = std::function<at::Tensor(const at::Tensor& x_t, int64_t t)>;

// Wraps a UNet: runs it on (x_t, t) and converts its output to eps (pred_v aware).
// Runs under NoGradGuard when no_grad (samplers); guided synthesis passes false.
// The function holds the UNet (shared) and a copy of the schedule.
EpsFn unet_eps_fn(UNet unet, const NoiseSchedule& s, bool no_grad = true);

struct DdimOptions {
  int64_t steps = 50;
  double eta = 0.0;
  bool clip_x0 = true;
  int64_t t_start = -2;  // -2: T - 1 (start from pure noise); else an SDEdit start step
};

// DDIM from x_start (noise at t_start) down to clean data. x_start: [B, C, H, W].
// generator draws the eta noise (nullopt: global generator). Returns [B, C, H, W].
at::Tensor ddim_sample(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x_start, const DdimOptions& o,
                       std::optional<at::Generator> generator = std::nullopt);

// DDPM ancestral sampling over all T steps from x_T. Returns [B, C, H, W].
at::Tensor ddpm_sample(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x_T,
                       std::optional<at::Generator> generator = std::nullopt, bool clip_x0 = true);

// Deterministic DDIM inversion of clean x0 up to t_end (-2: T - 1) in `steps`
// steps, on the same timestep grid that ddim_sample(steps, t_start = t_end) walks
// back down. Returns x_{t_end}: [B, C, H, W].
at::Tensor ddim_invert(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x0, int64_t steps,
                       int64_t t_end = -2);

}  // namespace migvis::worker::diffusion
