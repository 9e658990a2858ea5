// The diffusion model as synthesis needs it: an eps function, the schedule's
// alphas_cumprod and the image geometry, loaded from a diffusion job directory.
//
// Supported layouts of `diffusion_dir`:
//  - `eps_model.ts` (TorchScript, forward(x: Tensor[B, C, H, W] in [-1, 1],
//    t: Tensor[B] int64) -> eps) with `out.h5:/schedule/alphas_cumprod` float64 [T]:
//    a user-supplied model (also what the tests build);
//  - the `diffusion` stage's own output (model.pt + out.h5:/config), through
//    worker/diffusion's loader once that branch is merged (INTERIM: not yet).
#pragma once

#include <memory>

#include <torch/torch.h>

#include "common/files.h"
#include "common/status.h"
#include "worker/synthesis/guided.h"

namespace migvis::worker::synthesis {

inline constexpr const char* kScriptedEpsFile = "eps_model.ts";

struct EpsModel {
  EpsFn eps;                    // differentiable w.r.t. x_t
  torch::Tensor alphas_cumprod; // [T] float64
  int64_t image_size_px = 0;
  int64_t channels = 0;
  std::shared_ptr<void> owner;  // keeps the module alive
};

// NotFound when the directory holds no model; InvalidArgument when it is malformed.
Result<EpsModel> load_eps_model(const fs::path& diffusion_dir);

}  // namespace migvis::worker::synthesis
