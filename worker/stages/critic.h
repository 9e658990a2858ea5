// Stage `critic`: trains the InfoNCE critics of every latent group of a VAE job
// and reports the held-out InfoNCE lower bound per group (metrics mi.g<g>).
// Outputs: critic.pt, out.h5 (see worker/stages/critic.cc).
#pragma once

#include "worker/stages/stage.h"

namespace migvis::worker {

// inputs: dataset, vae.
Status run_critic_stage(StageContext& ctx);

}  // namespace migvis::worker
