// Factor read-out network for evaluating synthesized images: a small CNN trained
// on the stimuli to predict every labelled factor (categorical ones by class,
// continuous ones standardised), and the per-role change measures of
// MIGVIS_METHOD.md tables 2 and 3. Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"
#include "results/dataset_io.h"
#include "worker/image_trunk.h"

namespace migvis::worker::eval {

// Roles in table order; a dataset may lack some (those are skipped).
inline const std::vector<std::string>& factor_roles() {
  static const std::vector<std::string> r = {"pose", "category", "identity", "position", "size"};
  return r;
}

struct FactorHead {
  std::string name, role;
  bool categorical = false;
  int64_t classes = 0;      // categorical
  double mean = 0, std = 1; // continuous standardisation
  // An angle in degrees whose values span (nearly) the full circle, e.g. the
  // in-plane rotation rxy in [-180, 180): read out as (cos, sin) and compared
  // by the wrapped difference, so -179 and 179 are 2 degrees apart.
  bool periodic = false;
  int64_t outputs() const { return categorical ? classes : (periodic ? 2 : 1); }
};

struct ReadoutOptions {
  int64_t channels = 1;
  int64_t image_size_px = 32;
  int64_t width = 16;
};

struct ReadoutOutput {
  torch::Tensor features;              // [B, 20w] trunk features (quality proxy)
  std::vector<torch::Tensor> outputs;  // per head: logits [B, classes] or standardised value [B]
};

struct ReadoutImpl : torch::nn::Module {
  ReadoutImpl(const ReadoutOptions& o, std::vector<FactorHead> heads);
  // x: [B, C, H, W] in [0, 1] (resized to image_size_px) -> features and head outputs.
  ReadoutOutput forward(const torch::Tensor& x);
  ReadoutOptions options;
  std::vector<FactorHead> heads;
  ImageTrunk trunk{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::ModuleList out{nullptr};
};
TORCH_MODULE(Readout);

// Heads for the dataset's factors whose role is one of factor_roles().
std::vector<FactorHead> heads_for(const data::Dataset& d);
// Targets [N] per head (class index as int64, continuous as float32 raw values).
std::vector<torch::Tensor> targets_for(const data::Dataset& d, const std::vector<FactorHead>& heads);

struct ReadoutTrainOptions {
  int64_t epochs = 20, batch = 64;
  double lr = 2e-3, test_fraction = 0.2;
  uint64_t seed = 0;
  // Training images are augmented (worker::augment_images) so the read-out also
  // labels blurred, noisy generated images; 0 = off.
  double augment_noise = 0.0, augment_blur = 0.0;
  // Keep the epoch with the lowest held-out loss (evaluated every epoch).
  bool keep_best = false;
};
// Trains on images [N, C, H, W] in [0, 1]; returns held-out accuracy (categorical),
// R^2 (continuous) or mean cos(error) (periodic: 1 exact, 0 chance) per head.
std::vector<double> train_readout(Readout& r, const torch::Tensor& images, const std::vector<torch::Tensor>& targets,
                                  const ReadoutTrainOptions& o);

// Predictions per head in label units: class [B] int64 or value [B] float32
// (periodic: degrees in [-180, 180)).
struct Predictions {
  std::vector<torch::Tensor> values;
  torch::Tensor features;  // [B, F]
};
Predictions predict(Readout& r, const torch::Tensor& images, int64_t batch = 256);

// Change of each role between paired predictions a and b (same items): categorical
// roles: fraction of items whose class differs; pose: mean |delta| over pose heads
// (label units, degrees; wrapped to [0, 180] for periodic heads); position: mean Euclidean shift; size: mean |delta|.
// Returns one value per role in `roles` (NaN where the role has no head).
std::vector<double> role_changes(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& a,
                                 const std::vector<torch::Tensor>& b, const std::vector<std::string>& roles);
// The same per item: one [B] float64 tensor of distances per role (undefined
// where the role has no head); role_changes() is their mean.
std::vector<torch::Tensor> role_distances(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& a,
                                          const std::vector<torch::Tensor>& b, const std::vector<std::string>& roles);

}  // namespace migvis::worker::eval
