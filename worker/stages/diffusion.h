// Stage `diffusion`: trains the image DDPM of shared/MIGVIS_METHOD.md "Stage 2"
// on the stimuli of inputs.dataset, data-parallel over the job's ranks, and
// writes model.pt, out.h5 (/samples, /curves/loss) and samples.png (rank 0).
// The outputs and params are listed at the top of worker/stages/diffusion.cc.
#pragma once

#include "worker/stages/stage.h"

namespace migvis::worker {

// inputs: dataset. Resumable from its checkpoint; Cancelled when stopped.
Status run_diffusion_stage(StageContext& ctx);

}  // namespace migvis::worker
