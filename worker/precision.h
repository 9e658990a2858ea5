// Numeric precision of a job's compute: fp32, or mixed precision through
// LibTorch autocast (bf16, fp16) on a CUDA device. Parameters, optimizer state
// and gradients stay float32 in every mode; autocast runs the matmuls and
// convolutions in the lower precision. fp16 also needs loss scaling (LossScaler).
//
// Autocast is reached only through the API LibTorch 1.13 and 2.x both have
// (at::autocast::set_enabled / set_autocast_gpu_dtype ..., still present though
// deprecated from 2.4), behind AutocastGuard, so nothing else depends on it.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"

namespace migvis::worker {

enum class Precision { kFp32, kBf16, kFp16 };

// "fp32" | "bf16" | "fp16" (a format: job.yaml params.precision).
Result<Precision> parse_precision(const std::string& s);
std::string to_string(Precision p);

// Ok when `p` can run on `device` ("cpu" or "cuda:N"). bf16/fp16 on the CPU are
// rejected (LibTorch 1.13's CPU autocast is unmeasured here and slower than
// fp32 on our CPUs): InvalidArgument saying to use fp32 or ask for a GPU.
// `where` prefixes the message (e.g. "job.yaml: params.precision").
Status check_precision(Precision p, const std::string& device, const std::string& where);

// Enables autocast for CUDA in its scope with the precision's dtype (no-op for
// fp32 or a CPU device), restoring the previous state on exit. Not thread-safe
// (autocast state is thread-local: construct it on the thread that computes).
class AutocastGuard {
 public:
  AutocastGuard(Precision p, const torch::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

// Dynamic loss scaling for fp16 (the scheme of torch.cuda.amp.GradScaler):
// scale the loss before backward, unscale the gradients before clipping, skip
// the optimizer step when any gradient is inf/NaN and halve the scale; double
// it after `growth_interval` good steps. Disabled (scale 1, never skips) for
// fp32 and bf16, whose exponent range needs no scaling.
class LossScaler {
 public:
  explicit LossScaler(bool enabled, double init_scale = 65536.0, int64_t growth_interval = 2000);
  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  // loss * scale (loss itself when disabled).
  torch::Tensor scale_loss(const torch::Tensor& loss) const;
  // Divides the gradients by the scale in place; true when all are finite.
  // Data-parallel callers unscale after the all-reduce, so every rank sees the
  // same gradients and reaches the same verdict (inf/NaN survive the mean).
  bool unscale(const std::vector<torch::Tensor>& grads) const;
  // After a step: `finite` false -> scale halved (step skipped by the caller);
  // true -> counts toward growth.
  void update(bool finite);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

}  // namespace migvis::worker
