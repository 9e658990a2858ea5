// The diffusion model as synthesis needs it: an eps function, the schedule's
// alphas_cumprod and the image geometry, loaded from a diffusion job directory.
//
// Supported layouts of `diffusion_dir`:
//  - the `diffusion` stage's output (model.pt + out.h5:/config), through
//    diffusion::load_diffusion; the EMA UNet's eps, pred_v aware;
//  - `eps_model.ts` (TorchScript, forward(x: Tensor[B, C, H, W] in [-1, 1],
//    t: Tensor[B] int64) -> eps) with attrs on `out.h5:/schedule`: T (int),
//    schedule (linear | cosine | sigmoid), image_size, channels: a user-supplied
//    model (the stage tests script a tiny one).
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
  diffusion::NoiseSchedule schedule;
  int64_t image_size_px = 0;
  int64_t channels = 0;
  std::shared_ptr<void> owner;  // keeps the module alive
  std::string device = "cpu";   // where the module's parameters are ("none" if it has none)
};

// Loads the model onto `device` (x_t must live there too). NotFound when the
// directory holds no model; InvalidArgument when it is malformed.
Result<EpsModel> load_eps_model(const fs::path& diffusion_dir, const torch::Device& device = torch::kCPU);

}  // namespace migvis::worker::synthesis
