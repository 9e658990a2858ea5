// Checkpoints of a training stage: one directory `ckpt/` inside the job
// directory, files `step_<N>.pt` each written atomically (temp + rename) and a
// `latest` file naming the newest, also atomic. A killed job resumes from
// `latest`; a half-written checkpoint is never visible. Rank 0 writes; every
// rank may read. Thread-compatible.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/files.h"
#include "common/status.h"

namespace migvis::worker {

struct CheckpointState {
  int64_t step = 0;
  // Named modules and optimizers to save/restore (non-owning; must outlive the call).
  std::map<std::string, torch::nn::Module*> modules;
  std::map<std::string, torch::optim::Optimizer*> optimizers;
  // Extra tensors (RNG state, curves, EMA shadow, ...), saved and restored by name.
  std::map<std::string, torch::Tensor> tensors;
};

class Checkpointer {
 public:
  // `job_dir/ckpt` is created on first save. keep_last: older files are removed.
  explicit Checkpointer(fs::path job_dir, int keep_last = 2);

  // Saves all of `state` as step `state.step`. Atomic.
  Status save(const CheckpointState& state);
  // Restores the newest checkpoint into `state` (modules/optimizers in place,
  // tensors replaced). Returns false if there is none; DataLoss if unreadable.
  Result<bool> restore_latest(CheckpointState* state);
  std::optional<int64_t> latest_step() const;
  fs::path dir() const { return dir_; }

 private:
  fs::path dir_;
  int keep_last_;
};

}  // namespace migvis::worker
