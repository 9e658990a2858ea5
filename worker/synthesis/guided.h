// MI-guided editing (MIGVIS_METHOD.md stage 4), batched over a whole grid.
//
// Every item of a batch is one (group, gamma, source/target pair, seed) cell:
// its own start image, candidate latents (positive first, then K negatives),
// group, guidance scale and noise seed. Per denoising step the guided items
// (gamma != 0) share one eps-model forward + backward and the gamma == 0 items
// share one forward without autograd (no backward is paid for them). Item i's
// result depends only on item i's inputs: nothing couples items (the critic has
// no batch norm; noise comes from a per-item generator), so a batched run equals
// the per-item loop up to float rounding.
//
// Guidance sign. L_i = InfoNCE loss of item i (cross entropy of the positive
// among the 1 + K candidates, = log(1 + K) - MI bound). We use
//   eps' = eps + gamma * dL/dx_t   ( = eps - gamma * d(MI bound)/dx_t )
// which is the method's "eps' = eps - gamma * grad" with the gradient taken of
// the quantity to increase (the bound). Then x0_hat' = x0_hat - gamma *
// sqrt(1 - abar)/sqrt(abar) * dL/dx_t: a gradient-descent step on the loss, so
// the MI with z_pos increases (tests/worker/synthesis/guided_test.cc checks it).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "worker/critic/critic.h"
#include "worker/diffusion/sampler.h"
#include "worker/diffusion/schedule.h"

namespace migvis::worker::synthesis {

// The diffusion model as the sampler sees it (worker/diffusion's EpsFn): x_t
// [B, C, H, W] in diffusion space at integer step t (0-based, < T, the same for
// the batch) -> predicted noise [B, C, H, W]. Must be differentiable w.r.t. x_t
// for guidance (diffusion::unet_eps_fn(unet, schedule, /*no_grad=*/false)).
using EpsFn = diffusion::EpsFn;

enum class StartMode { kSdedit, kInvert };
Result<StartMode> parse_start_mode(const std::string& s);  // "sdedit" | "invert"

struct GuidedOptions {
  int64_t edit_t = 135;   // start step (0-based, < T)
  int64_t steps = 27;     // reverse steps from edit_t down to 0
  double eta = 0.0;       // DDIM eta (0 = deterministic, 1 ~ DDPM ancestral)
  bool ddpm = false;      // DDPM ancestral steps t -> t - 1 instead of DDIM (steps ignored)
  StartMode mode = StartMode::kSdedit;
  bool clip_x0 = true;    // clip x0_hat to [-1, 1]
};

struct GuidedBatch {
  torch::Tensor x_source;   // [B, C, H, W] in [-1, 1]
  torch::Tensor z_cand;     // [B, 1 + K, R] raw group latents, positive at column 0
  torch::Tensor group;      // [B] int64, 0-based
  torch::Tensor gamma;      // [B] guidance scale (dtype of x_source)
  std::vector<uint64_t> noise_seed;  // [B] per-item generator seed
  int64_t size() const { return x_source.size(0); }
  GuidedBatch slice(int64_t begin, int64_t end) const;  // items [begin, end)
};

// diffusion::ddim_timesteps(edit_t, steps) with steps capped at edit_t + 1:
// steps + 1 values strictly descending from edit_t to -1 (clean data).
std::vector<int64_t> edit_timesteps(int64_t edit_t, int64_t steps);

// Per-item guidance loss of x0_hat [B, C, H, W] in [-1, 1] -> [B].
torch::Tensor guidance_losses(critic::Critic& critic, const torch::Tensor& x0_hat, const torch::Tensor& z_cand,
                              const torch::Tensor& group);

// One guided noise prediction at step t. In a batch mixing gamma == 0 and
// gamma != 0 items the model runs twice (guided subset with autograd, the rest
// without), so `model` sees batches smaller than B.
struct GuidedEps {
  torch::Tensor eps;        // [B, C, H, W] guided eps' (= eps where gamma == 0)
  torch::Tensor eps_model;  // [B, C, H, W] the model's eps
  torch::Tensor grad;       // [B, C, H, W] dL/dx_t (zeros when every gamma is 0)
  torch::Tensor loss;       // [B] L_i at x0_hat(x_t) (undefined when every gamma is 0)
};
GuidedEps guided_eps(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                     const torch::Tensor& x_t, int64_t t, const GuidedBatch& b, bool clip_x0);

// Runs the edit for every item; returns x_0 [B, C, H, W] in [-1, 1] (clipped).
// Start: SDEdit q_sample to edit_t with the item's first noise draw, or
// diffusion::ddim_invert_step up the same timesteps. Reverse: diffusion::ddim_step
// (or ddpm_step) with eps'; eta noise drawn per item after the start noise.
torch::Tensor guided_edit(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                          const GuidedBatch& b, const GuidedOptions& o);

// Critic MI bound each item reached: log(1 + K) - L_i at x0 [B, C, H, W] in [-1, 1] -> [B].
torch::Tensor reached_mi(critic::Critic& critic, const torch::Tensor& x0, const GuidedBatch& b);

}  // namespace migvis::worker::synthesis
