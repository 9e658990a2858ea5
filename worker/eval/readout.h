// The judges of synthesized images: factor read-outs trained on the stimuli the
// critic never saw (worker/stages/inputs.h, judge_split) to predict every
// labelled factor (categorical ones by class, continuous ones standardised),
// and the per-role change measures of MIGVIS_METHOD.md tables 2 and 3. Two
// families that share nothing with the critic's ImageTrunk: a CNN of another
// design (JudgeTrunk: strided convs, BatchNorm, ReLU, a residual block,
// max + mean pooling) and a classical pixel model (PixelReadout: ridge
// regression on random ReLU features of downsampled pixels). Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"
#include "results/dataset_io.h"

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

// The judge CNN's body. Deliberately unlike worker/image_trunk (the critic's):
// 5x5 stem, stride-2 convs instead of max-pooling, BatchNorm instead of
// GroupNorm (nothing differentiates through a judge per item), ReLU instead of
// SiLU, one residual block, and global max + mean pooling plus a 4x4 map of a
// 1x1-reduced layer for position and size.
struct JudgeTrunkImpl : torch::nn::Module {
  JudgeTrunkImpl(int64_t channels, int64_t width);
  // x: [B, C, S, S] in [-1, 1], S >= 8 -> [B, out_features()].
  torch::Tensor forward(const torch::Tensor& x);
  int64_t out_features() const { return 8 * width + 16 * (width / 2); }
  int64_t width;
  torch::nn::Sequential stem{nullptr}, down{nullptr}, res{nullptr}, top{nullptr};
  torch::nn::Conv2d reduce{nullptr};
};
TORCH_MODULE(JudgeTrunk);

struct ReadoutOptions {
  int64_t channels = 1;
  int64_t image_size_px = 32;
  int64_t width = 16;
};

struct ReadoutOutput {
  torch::Tensor features;              // [B, JudgeTrunk::out_features()] (quality proxy)
  std::vector<torch::Tensor> outputs;  // per head: logits [B, classes] or standardised value [B]
};

struct ReadoutImpl : torch::nn::Module {
  ReadoutImpl(const ReadoutOptions& o, std::vector<FactorHead> heads);
  // x: [B, C, H, W] in [0, 1] (resized to image_size_px) -> features and head outputs.
  ReadoutOutput forward(const torch::Tensor& x);
  ReadoutOptions options;
  std::vector<FactorHead> heads;
  JudgeTrunk trunk{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::ModuleList out{nullptr};
};
TORCH_MODULE(Readout);

// Heads for the dataset's factors whose role is one of factor_roles(), except
// constant or near-constant ones (one value on >= 95% of the images, or a
// continuous spread below 1e-6 of its scale): they carry no information, a
// read-out of them scores noise, and they are never read out, scored or
// tabled. Their names go to `dropped` when given.
std::vector<FactorHead> heads_for(const data::Dataset& d, std::vector<std::string>* dropped = nullptr);
// True for an angle in degrees whose values span (nearly) the full circle
// (range > 270): read out and regressed as (cos, sin), compared wrapped.
bool is_full_circle(const data::Factor& f);
// True when a factor's values are constant or near-constant (see heads_for).
bool near_constant(const std::vector<float>& values);
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

// Held-out scores of predictions `values` (label units, as predict() returns)
// against targets (as targets_for()): accuracy (categorical), R^2 (continuous)
// or mean cos(error) (periodic) per head.
std::vector<double> score_predictions(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& values,
                                      const std::vector<torch::Tensor>& targets);
// A score rescaled so 0 = chance and 1 = perfect (categorical: accuracy minus
// 1/classes over 1 - 1/classes; others unchanged).
double chance_corrected(const FactorHead& h, double score);

// Predictions per head in label units: class [B] int64 or value [B] float32
// (periodic: degrees in [-180, 180)).
struct Predictions {
  std::vector<torch::Tensor> values;
  torch::Tensor features;  // [B, F]
  // Per head, the judge's continuous output before it is decoded into `values`:
  // categorical [B, classes] (CNN: softmax probabilities; pixel: the ridge's
  // one-hot regression), periodic [B, 2] (cos, sin), continuous [B] standardised.
  // What average_predictions() averages.
  std::vector<torch::Tensor> scores;
};
Predictions predict(Readout& r, const torch::Tensor& images, int64_t batch = 256);

// Labels from per-head scores (as Predictions::scores; categorical may also be
// logits): argmax, atan2 of (cos, sin) in degrees, or the standardised value
// back in label units. Every judge, and the ensemble, decodes through it.
std::vector<torch::Tensor> decode_scores(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& scores);

// One judge from several of the same family trained with different seeds: the
// members' scores averaged per head, then decoded as one judge's would be
// (argmax; atan2 of the mean (cos, sin); the mean standardised value). The
// features are the first member's (the members' feature spaces are not
// aligned). A judge's seed moves table 2 as much as the sampling error does
// (docs/METRICS.md); averaging members shrinks that part.
Predictions average_predictions(const std::vector<Predictions>& members, const std::vector<FactorHead>& heads);

// The classical judge: images [B, C, H, W] in [0, 1] are area-resized to
// image_size_px, flattened and standardised, mapped through `features` fixed
// random ReLU projections (Gaussian, seeded) next to the raw pixels; beside
// them `conv_filters` fixed random 5x5 filters (zero-mean Gaussian, seeded) run
// over the image at conv_size_px, rectified and pooled (mean over a 4 x 4 grid
// of cells and max over the image) - untrained, translation-tolerant local
// features of the kind Jarrett et al. 2009 and Saxe et al. 2011 found to carry
// much of what a trained network reads, standardised per feature. Every
// head is a ridge regression on them (categorical: one-hot targets, argmax;
// periodic: (cos, sin); continuous: standardised). The ridge strength is the
// one of a small grid with the best held-out score on an internal split
// (test_fraction); the model is then refitted on all training images.
struct PixelReadoutOptions {
  int64_t image_size_px = 16;
  int64_t features = 2048;
  int64_t conv_filters = 64;   // 0: pixels and random projections only
  int64_t conv_size_px = 32;
  double test_fraction = 0.2;
  uint64_t seed = 0;
};
class PixelReadout {
 public:
  PixelReadout(const PixelReadoutOptions& o, std::vector<FactorHead> heads);
  // Fits on images [N, C, H, W] and targets (targets_for); returns the internal
  // split's held-out score per head (score_predictions) at the chosen strength.
  std::vector<double> fit(const torch::Tensor& images, const std::vector<torch::Tensor>& targets);
  // Predictions in label units (as predict()); features = the pixel features.
  Predictions predict(const torch::Tensor& images) const;
  const std::vector<FactorHead>& heads() const { return heads_; }
  double ridge() const { return ridge_; }

 private:
  torch::Tensor features(const torch::Tensor& images) const;  // [B, D] float64
  torch::Tensor encode(const std::vector<torch::Tensor>& targets, const torch::Tensor& idx) const;  // [n, K]
  // The ridge's outputs [n, K] as per-head scores (Predictions::scores).
  std::vector<torch::Tensor> split(const torch::Tensor& y) const;
  PixelReadoutOptions o_;
  std::vector<FactorHead> heads_;
  torch::Tensor conv_features(const torch::Tensor& images) const;  // [B, 17 * conv_filters] float64, raw
  torch::Tensor proj_, bias_, pix_mean_, pix_sd_, w_, feat_mean_, y_mean_;
  torch::Tensor conv_w_, conv_b_, conv_mean_, conv_sd_;
  double ridge_ = 0;
};

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
