#include "worker/precision.h"

#include <cmath>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/version.h>

// LibTorch 2.4 replaced the CUDA-only autocast setters by device-typed ones
// (the old names remain, deprecated); 1.13 has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MIGVIS_AUTOCAST_DEVICE_TYPED 1
#endif

namespace migvis::worker {

namespace {

bool cuda_autocast_enabled() {
#ifdef MIGVIS_AUTOCAST_DEVICE_TYPED
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}
void set_cuda_autocast_enabled(bool on) {
#ifdef MIGVIS_AUTOCAST_DEVICE_TYPED
  at::autocast::set_autocast_enabled(at::kCUDA, on);
#else
  at::autocast::set_enabled(on);
#endif
}
at::ScalarType cuda_autocast_dtype() {
#ifdef MIGVIS_AUTOCAST_DEVICE_TYPED
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}
void set_cuda_autocast_dtype(at::ScalarType t) {
#ifdef MIGVIS_AUTOCAST_DEVICE_TYPED
  at::autocast::set_autocast_dtype(at::kCUDA, t);
#else
  at::autocast::set_autocast_gpu_dtype(t);
#endif
}

}  // namespace

Result<Precision> parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::kFp32;
  if (s == "bf16") return Precision::kBf16;
  if (s == "fp16") return Precision::kFp16;
  return Status::InvalidArgument("expected fp32, bf16 or fp16, got \"" + s + "\"");
}

std::string to_string(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
  }
  return "fp32";
}

Status check_precision(Precision p, const std::string& device, const std::string& where) {
  if (p == Precision::kFp32 || device.rfind("cuda", 0) == 0) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "{}: {} needs a CUDA device, but this job runs on {} (resources.gpus: 0, or no GPU visible to this LibTorch); "
      "use precision: fp32 on the CPU, or ask for a GPU",
      where, to_string(p), device));
}

AutocastGuard::AutocastGuard(Precision p, const torch::Device& device) {
  if (p == Precision::kFp32 || !device.is_cuda()) return;
  active_ = true;
  prev_enabled_ = cuda_autocast_enabled();
  prev_dtype_ = cuda_autocast_dtype();
  set_cuda_autocast_enabled(true);
  set_cuda_autocast_dtype(p == Precision::kBf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // Like torch.autocast's exit: drop the cast-weight cache when the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_cuda_autocast_enabled(prev_enabled_);
  set_cuda_autocast_dtype(prev_dtype_);
}

LossScaler::LossScaler(bool enabled, double init_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(enabled ? init_scale : 1.0), growth_interval_(growth_interval) {}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool LossScaler::unscale(const std::vector<torch::Tensor>& grads) const {
  if (!enabled_) return true;
  torch::NoGradGuard ng;
  torch::Tensor bad;  // count of non-finite entries, one host sync at the end
  for (const auto& g : grads) {
    if (!g.defined()) continue;
    g.mul_(1.0 / scale_);
    auto n = torch::isfinite(g).logical_not().sum();
    bad = bad.defined() ? bad + n : n;
  }
  return !bad.defined() || bad.item<int64_t>() == 0;
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ = std::max(1.0, scale_ * 0.5);
    good_steps_ = 0;
  } else if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

}  // namespace migvis::worker
