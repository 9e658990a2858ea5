// Training of the diffusion UNet (shared/MIGVIS_METHOD.md "Stage 2") and the
// loader of a finished diffusion job.
//
// DiffusionTrainer owns the model, its EMA copy and the Adam optimizer. One
// call of train_step() is one optimizer step: `grad_accum` micro-batches of
// batch / ranks images from this rank's shard, gradients averaged over ranks
// through the Communicator, clipped to grad_clip, Adam, then EMA every
// ema_every steps. All randomness of step k (images, t, noise) comes from a
// generator seeded with (seed, rank, k), so a resumed run gives the identical
// next loss without saving RNG state. Not thread-safe.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/status.h"
#include "results/h5.h"
#include "worker/checkpoint.h"
#include "worker/comm.h"
#include "worker/diffusion/schedule.h"
#include "worker/diffusion/unet.h"
#include "worker/precision.h"

namespace migvis::worker::diffusion {

struct TrainOptions {
  int64_t steps = 20000;        // optimizer steps
  int64_t batch = 64;           // images per micro-batch over all ranks (per rank: batch / ranks)
  int64_t grad_accum = 2;       // micro-batches per optimizer step
  double lr = 2e-4;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double grad_clip = 1.0;       // global L2 norm; 0 = off
  double ema_decay = 0.98;     // capped at (1 + k) / (10 + k) for the k-th update (warm-up)
  int64_t ema_every = 10;       // steps between EMA updates
  int64_t log_every = 10;       // steps per point of the loss curve (mean over the window)
  uint64_t seed = 0;
  // "cpu" or "cuda:N": where the model, its EMA and every batch live. Batches
  // are drawn on the CPU (same random numbers on any device) and moved.
  std::string device = "cpu";
  // fp32, or autocast bf16/fp16 on a CUDA device (fp16 with dynamic loss
  // scaling: a step whose gradients overflow is skipped and counted).
  Precision precision = Precision::kFp32;
  Status validate(int ranks) const;
};

class DiffusionTrainer {
 public:
  // images: this rank's shard, [N, C, H, W] float32 in [-1, 1], N >= 1.
  // comm: non-null, outlives the trainer. Broadcasts rank 0's parameters.
  DiffusionTrainer(const UNetOptions& unet_options, const NoiseSchedule& schedule, const TrainOptions& options,
                   torch::Tensor images, Communicator* comm);

  // One optimizer step; returns the mean training loss of its micro-batches
  // (averaged over ranks). Increments step().
  Result<double> train_step();

  int64_t step() const { return step_; }
  // fp16: optimizer steps skipped because the scaled gradients overflowed.
  int64_t skipped_steps() const { return skipped_steps_; }
  UNet model() const { return model_; }
  UNet ema() const { return ema_; }
  // (step, mean loss over the window ending at step) for every completed window.
  const std::vector<std::pair<int64_t, double>>& loss_curve() const { return curve_; }

  // Saves model, EMA, optimizer, step and curve (rank 0 writes; other ranks no-op).
  Status save(Checkpointer& ck);
  // Restores the latest checkpoint if there is one (then re-broadcasts). Returns whether one was found.
  Result<bool> restore(Checkpointer& ck);

 private:
  Status broadcast_params();
  void update_ema();

  UNetOptions unet_options_;
  NoiseSchedule schedule_;
  TrainOptions opt_;
  torch::Tensor images_;
  Communicator* comm_;
  UNet model_{nullptr}, ema_{nullptr};
  std::unique_ptr<torch::optim::Adam> adam_;
  int64_t step_ = 0;
  LossScaler scaler_{false};
  int64_t skipped_steps_ = 0;
  std::vector<std::pair<int64_t, double>> curve_;
  double window_sum_ = 0;
  int64_t window_n_ = 0;
};

// A trained diffusion model as written by the `diffusion` stage.
struct DiffusionModel {
  UNetOptions unet_options;
  ScheduleOptions schedule_options;
  UNet unet{nullptr};      // EMA weights, eval mode, CPU float32
  NoiseSchedule schedule;
};

// Writes `/config` attributes (a format: width, mults, image_size, channels,
// attn_heads, attn_dim_head, full_attn_deepest, T, schedule, objective,
// min_snr_gamma) into an open out.h5.
Status write_diffusion_config(const h5::Location& file, const UNetOptions& u, const ScheduleOptions& s);

// Loads `job_dir/model.pt` with the configuration of `job_dir/out.h5:/config`.
// NotFound if a file is missing; InvalidArgument/DataLoss naming the file otherwise.
Result<DiffusionModel> load_diffusion(const fs::path& job_dir);
// Same, the UNet only.
Result<UNet> load_diffusion_model(const fs::path& job_dir);

}  // namespace migvis::worker::diffusion
