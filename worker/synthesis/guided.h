// MI-guided editing (MIGVIS_METHOD.md stage 4), batched over a whole grid.
//
// Every item of a batch is one (group, gamma, source/target pair, seed) cell:
// its own start image, candidate latents (positive first, then K negatives),
// group, guidance scale and noise seed. Item i's result depends only on item
// i's inputs: nothing couples items (the critic has no batch norm; noise and
// negatives come from per-item generators), so a batched run equals the
// per-item loop up to float rounding.
//
// Guidance sign. L_i = InfoNCE loss of item i (cross entropy of the positive
// among the 1 + K candidates, = log(1 + K) - MI bound). We use
//   eps' = eps + gamma * dL/dx_t   ( = eps - gamma * d(MI bound)/dx_t )
// which is the method's "eps' = eps - gamma * grad" with the gradient taken of
// the quantity to increase (the bound). Then x0_hat' = x0_hat - gamma *
// sqrt(1 - abar)/sqrt(abar) * dL/dx_t: a gradient-descent step on the loss, so
// the MI with z_pos increases (tests/worker/synthesis/guided_test.cc checks it).
//
// Which gradient (GuidanceGrad):
//  - kX0 (the reference's): eps = model(x_t) is a constant; L is a function of
//    x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar) only, so dL/dx_t =
//    dL/dx0_hat / sqrt(abar). The model runs once per step for the whole batch
//    in inference mode; only the critic is differentiated (guided items only).
//    Then x0_hat' = x0_hat - gamma * sqrt(1 - abar) / abar * dL/dx0_hat.
//  - kUnet: the full gradient, through the model too (forward + backward of the
//    model for the guided items, a forward without autograd for the rest).
// docs/METRICS.md ("Guidance") says which options equal the reference and
// what gamma means under them.
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

enum class GuidanceGrad { kX0, kUnet };
Result<GuidanceGrad> parse_guidance_grad(const std::string& s);  // "x0" | "unet"
const char* guidance_grad_name(GuidanceGrad g);

// The defaults of the three guidance switches are the reference's guidance
// (docs/METRICS.md, "Guidance"); the stage's job.yaml keys `guidance_grad`,
// `resample_negatives` and `clip` default to these values.
struct GuidedOptions {
  int64_t edit_t = 135;   // start step (0-based, < T)
  int64_t steps = 27;     // reverse steps from edit_t down to 0
  double eta = 0.0;       // DDIM eta (0 = deterministic, 1 ~ DDPM ancestral)
  bool ddpm = false;      // DDPM ancestral steps t -> t - 1 instead of DDIM (steps ignored)
  StartMode mode = StartMode::kSdedit;
  GuidanceGrad grad = GuidanceGrad::kX0;  // see the top of this file
  // New K negatives per guided item at every step (NegativeSampler), or the
  // batch's fixed z_cand throughout.
  bool resample_negatives = true;
  // Clip x0_hat to [-1, 1] before the critic. The sampler's step always clips
  // its x0_hat (as the reference's does); this switch is the critic's input only.
  bool clip_x0 = false;
};

struct GuidedBatch {
  torch::Tensor x_source;   // [B, C, H, W] in [-1, 1]
  torch::Tensor z_cand;     // [B, 1 + K, R] raw group latents, positive at column 0
  torch::Tensor group;      // [B] int64, 0-based
  torch::Tensor gamma;      // [B] guidance scale (dtype of x_source)
  std::vector<uint64_t> noise_seed;  // [B] per-item generator seed
  // Needed only with resample_negatives (guided_edit checks): the latent pool
  // negatives are drawn from, the positive's row in it (never drawn as a
  // negative) and a per-item seed for the draws. z_pool is shared by the whole
  // batch and not sliced.
  torch::Tensor z_pool;              // [N, G * R] raw latents (row r: group g at columns g*R .. g*R+R-1)
  torch::Tensor target_row;          // [B] int64 in [0, N)
  std::vector<uint64_t> negative_seed;  // [B]
  int64_t size() const { return x_source.size(0); }
  GuidedBatch slice(int64_t begin, int64_t end) const;  // items [begin, end)
  GuidedBatch select(const std::vector<int64_t>& rows) const;  // items rows[0], rows[1], ...
};

// Per-step negatives (GuidedOptions::resample_negatives). Item i owns a
// generator seeded with negative_seed[i]; each call to next() draws, for every
// item whose gamma != 0, K rows of z_pool other than target_row[i] without
// replacement (K = z_cand.size(1) - 1) and returns z_cand with columns 1..K
// replaced by those rows' group latents (column 0, the positive, unchanged;
// gamma == 0 items keep their z_cand and consume no draws). Item i's draws
// depend only on its own seed, gamma and the number of calls so far, so a
// batch draws what its items draw alone. Not thread-safe.
class NegativeSampler {
 public:
  explicit NegativeSampler(const GuidedBatch& b);  // b.z_pool, target_row, negative_seed set
  torch::Tensor next(const GuidedBatch& b);        // [B, 1 + K, R]
 private:
  std::vector<at::Generator> gens_;
  std::vector<int64_t> guided_;  // items with gamma != 0
};

// Items of a grid that must give identical results, computed once. A gamma == 0
// item ignores its group, candidates and negatives: its edit depends only on
// (x_source, noise_seed), so gamma == 0 items that share both (in the stage:
// the same pair and seed in every group) are one computation.
struct DedupedGrid {
  GuidedBatch unique;         // the grid's items with duplicates dropped, in grid order
  std::vector<int64_t> slot;  // [B]: grid item i is unique item slot[i]
  int64_t saved() const { return static_cast<int64_t>(slot.size()) - unique.size(); }
};
DedupedGrid dedup_unguided(const GuidedBatch& grid);

// diffusion::ddim_timesteps(edit_t, steps) with steps capped at edit_t + 1:
// steps + 1 values strictly descending from edit_t to -1 (clean data).
std::vector<int64_t> edit_timesteps(int64_t edit_t, int64_t steps);

// Per-item guidance loss of x0_hat [B, C, H, W] in [-1, 1] -> [B].
torch::Tensor guidance_losses(critic::Critic& critic, const torch::Tensor& x0_hat, const torch::Tensor& z_cand,
                              const torch::Tensor& group);

// One guided noise prediction at step t with the batch's z_cand. The critic
// runs on the gamma != 0 items only. kX0: one model forward for the whole batch
// in inference mode. kUnet: in a batch mixing gamma == 0 and gamma != 0 items
// the model runs twice (guided subset with autograd, the rest without), so
// `model` sees batches smaller than B.
struct GuidedEps {
  torch::Tensor eps;        // [B, C, H, W] guided eps' (= eps where gamma == 0)
  torch::Tensor eps_model;  // [B, C, H, W] the model's eps
  torch::Tensor grad;       // [B, C, H, W] dL/dx_t of `grad`'s kind (zeros where gamma == 0)
  torch::Tensor loss;       // [B] L_i at x0_hat(x_t) for gamma != 0 items, NaN for gamma == 0
                            // items (not computed); undefined when every gamma is 0
};
GuidedEps guided_eps(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                     const torch::Tensor& x_t, int64_t t, const GuidedBatch& b, bool clip_x0,
                     GuidanceGrad grad = GuidanceGrad::kX0);

// Runs the edit for every item; returns x_0 [B, C, H, W] in [-1, 1] (clipped).
// Start: SDEdit q_sample to edit_t with the item's first noise draw, or
// diffusion::ddim_invert_step up the same timesteps. Reverse: diffusion::ddim_step
// (or ddpm_step, both clipping x0_hat) with eps'; eta noise drawn per item after
// the start noise. With o.resample_negatives every step's candidates come from
// a NegativeSampler (b.z_pool, target_row, negative_seed must be set).
torch::Tensor guided_edit(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                          const GuidedBatch& b, const GuidedOptions& o);

// Critic MI bound each item reached against its fixed z_cand: log(1 + K) - L_i
// at x0 [B, C, H, W] in [-1, 1] -> [B].
torch::Tensor reached_mi(critic::Critic& critic, const torch::Tensor& x0, const GuidedBatch& b);

}  // namespace migvis::worker::synthesis
