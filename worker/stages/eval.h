// Stage `eval`: how much each factor changes in the guided images of a
// synthesis job, per latent group and gamma (MIGVIS_METHOD.md tables 2 and 3;
// docs/METRICS.md). Measures, outputs and metrics are described at the top of
// worker/stages/eval.cc.
#pragma once

#include "worker/stages/stage.h"

namespace migvis::worker {

// inputs: dataset, synthesis.
Status run_eval_stage(StageContext& ctx);

}  // namespace migvis::worker
