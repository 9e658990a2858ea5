// Stage `vae`: trains one neural VAE of the family in worker/vae/vae.h on one
// session (key.session) or on all sessions of an animal (key.session: pooled),
// keeps the best checkpoint by held-out loss, and writes out.h5 (latents,
// curves, group x factor scores), model.pt and the metrics of
// notes/CONVENTIONS.md. Resumable: a killed or cancelled job rerun with the same
// seed and thread count gives the identical result.
#pragma once

#include "worker/stages/stage.h"

namespace migvis::worker {

// job.yaml params (all optional; unknown keys are rejected):
//   model (migvis), groups (4), group_rank (6), hidden (64), recon (mse), w_guid (0.2),
//   w_kl (0.002), w_tc (0.02), beta (4), lr (1e-3), batch (64), epochs (200),
//   weight_decay (1e-5), test_fraction (0.2), eval_every (5), patience (10 evals; 0 = off),
//   eval_pairs (10000; pairs of the FactorVAE-style score).
// inputs: dataset (path of dataset.h5). key: animal, session.
Status run_vae_stage(StageContext& ctx);

}  // namespace migvis::worker
