// Stage `synthesis`: MI-guided editing grids (groups x gammas x source/target
// pairs x seeds), data-parallel over the job's ranks. Outputs: out.h5 (/images,
// /sources, /targets, /mi, /mi_items) and grid_pair<p>.png (see
// worker/stages/synthesis.cc for shapes).
#pragma once

#include "worker/stages/stage.h"

namespace migvis::worker {

// inputs: dataset, vae, diffusion, critic.
Status run_synthesis_stage(StageContext& ctx);

}  // namespace migvis::worker
