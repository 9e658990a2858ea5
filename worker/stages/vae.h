// Stage `vae`: trains one neural VAE of the family in worker/vae/vae.h on one
// session (key.session) or on all sessions of an animal (key.session: pooled),
// keeps the best checkpoint by held-out loss, and writes out.h5 (latents,
// curves, group x factor scores), model.pt and the metrics of
// notes/CONVENTIONS.md. Resumable: a killed or cancelled job rerun with the same
// seed and thread count gives the identical result.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "results/dataset_io.h"
#include "worker/stages/stage.h"

namespace migvis::worker {

// job.yaml params (all optional; unknown keys are rejected):
//   model (migvis), groups (4), group_rank (6), hidden (64), recon (mse), w_guid (0.2),
//   w_kl (0.002), w_tc (0.02), beta (4), lr (1e-3), batch (64), epochs (200),
//   weight_decay (1e-5), test_fraction (0.2), eval_every (5), patience (10 evals; 0 = off),
//   eval_pairs (10000; pairs of the FactorVAE-style score),
//   pose_factors (list of factor names; default: every continuous factor with
//   role pose, size or position, the reference's six for HvM: rxy, ryz, rxz, s,
//   ty, tz): the continuous labels group 1 regresses (pose_labels()).
// inputs: dataset (path of dataset.h5). key: animal, session.
Status run_vae_stage(StageContext& ctx);

// One column of the pose supervision: a factor's raw value, or the cos or sin
// of an angle over the full circle (eval::is_full_circle: the wrapped angle is
// misspecified for a linear regression at +-180 degrees, (cos, sin) is not).
struct PoseLabel {
  const data::Factor* factor = nullptr;
  enum class Part { kValue, kCos, kSin } part = Part::kValue;
  std::string name() const;            // "rxy", "rxy.cos", "rxy.sin"
  double value(size_t image) const;    // raw, cos or sin of the image's value
};
// The label columns for `names` (empty = the default above), in the dataset's
// factor order for the default and the given order otherwise. InvalidArgument
// naming params.pose_factors for an unknown or categorical factor.
Result<std::vector<PoseLabel>> pose_labels(const data::Dataset& d, const std::vector<std::string>& names);

}  // namespace migvis::worker
