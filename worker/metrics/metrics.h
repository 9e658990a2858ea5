// Evaluation metrics of the neural VAE (shared/MIGVIS_METHOD.md, "Metrics"), on
// LibTorch tensors: the scikit-learn pieces the reference uses (k-means, PCA,
// ridge classifier, binned mutual information) re-implemented here, the
// disentanglement scores (MIG, unsupervised FactorVAE-style, unsupervised SAP, and
// supervised SAP / FactorVAE on labelled factors) at dimension level (unit_size 1)
// and group level (unit_size R: a group of R dimensions is one unit), neural
// reconstruction scores, the linear read-out of pose labels, and the planted-truth
// group x factor matrix with its recovery score. docs/METRICS.md defines each.
//
// All functions compute in float64 on CPU and are deterministic for a given
// seed. Functions that need randomness take a seed and leave LibTorch's global
// generator as they found it. Thread-compatible.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace migvis::metrics {

// ------------------------------------------------------------- sklearn parts

struct KMeansResult {
  torch::Tensor labels;   // [N] int64 in [0, k)
  torch::Tensor centers;  // [k, F] float64
  double inertia = 0;     // sum of squared distances to the assigned centre
};
// Lloyd's algorithm with k-means++ seeding, best of n_init restarts (lowest inertia).
// x: [N, F] with N >= k.
KMeansResult kmeans(const torch::Tensor& x, int64_t k, uint64_t seed, int64_t n_init = 4, int64_t max_iter = 100);

struct PcaResult {
  torch::Tensor mean;                // [F]
  torch::Tensor components;          // [k, F] orthonormal rows, largest variance first; sign: largest |entry| > 0
  torch::Tensor explained_variance;  // [k] (divides by N - 1, as sklearn)
  torch::Tensor projected;           // [N, k] = (x - mean) components^T
};
// x: [N, F], k <= min(N, F). Uses the F x F covariance or the N x N Gram matrix, whichever is smaller.
PcaResult pca(const torch::Tensor& x, int64_t k);

// Ridge regression with intercept: minimises |y - x w - b|^2 + alpha |w|^2.
struct Ridge {
  torch::Tensor w;  // [F, T]
  torch::Tensor b;  // [T]
  torch::Tensor predict(const torch::Tensor& x) const { return x.to(torch::kFloat64).matmul(w) + b; }  // [N, T]
};
// x: [N, F], y: [N, T] (or [N]) -> fitted model. sample_weight [N] (optional) weights
// each row's squared error (and the centring means), as sklearn's sample_weight.
Ridge fit_ridge(const torch::Tensor& x, const torch::Tensor& y, double alpha = 1.0,
                const torch::Tensor& sample_weight = {});

// sklearn's RidgeClassifier: one-vs-rest targets in {-1, +1}, ridge regression,
// prediction = argmax. x: [N, F]; y: [N] int64 in [0, n_classes). balanced: sklearn's
// class_weight="balanced" (row weight n / (classes present * count of its class)).
struct RidgeClassifier {
  Ridge ridge;
  torch::Tensor predict(const torch::Tensor& x) const { return ridge.predict(x).argmax(1); }  // [N] int64
};
RidgeClassifier fit_ridge_classifier(const torch::Tensor& x, const torch::Tensor& y, int64_t n_classes,
                                     double alpha = 1.0, bool balanced = false);

double accuracy(const torch::Tensor& pred, const torch::Tensor& y);  // [N] int64 each
// Mean over classes present in y of the per-class recall.
double balanced_accuracy(const torch::Tensor& pred, const torch::Tensor& y);

// --------------------------------------------------------- information theory

// Uniform bins between min and max: v: [N] -> [N] int64 in [0, bins). Constant v -> all 0.
torch::Tensor discretize(const torch::Tensor& v, int64_t bins = 20);
// Entropy (nats) of discrete labels [N] int64 (any non-negative values).
double entropy(const torch::Tensor& labels);
// Mutual information (nats) of two discrete label vectors [N] int64, from the joint histogram.
double mutual_info(const torch::Tensor& a, const torch::Tensor& b);

// Discrete code of each unit of z: unit_size 1 -> each dimension in 20 uniform
// bins; unit_size > 1 -> each block of unit_size dimensions quantised by
// k-means with 20 clusters (the group as one variable). z: [N, D] -> D / unit_size codes [N].
std::vector<torch::Tensor> unit_codes(const torch::Tensor& z, int64_t unit_size, uint64_t seed, int64_t bins = 20);

// A labelled factor of the images (categorical labels or continuous values).
struct FactorLabels {
  std::string name;
  std::string role;          // pose | category | identity | position | size | other
  bool categorical = false;
  torch::Tensor values;      // [N]: int64 class ids or float64 values
  // Discrete version: the class ids, or 20 uniform bins of a continuous value.
  torch::Tensor codes(int64_t bins = 20) const;
};

// MIG: for each factor with entropy > 0, (MI of the best unit - MI of the second
// best unit) / H(factor); mean over those factors. In [0, 1]. Needs >= 2 units.
double mig(const std::vector<torch::Tensor>& unit_codes, const std::vector<FactorLabels>& factors);

// ------------------------------------------------------ disentanglement scores

// Maps latents [N, D] to latents [N, D] (e.g. decode then re-encode); identity if empty.
using LatentMap = std::function<torch::Tensor(const torch::Tensor&)>;

// Unsupervised FactorVAE-style score: n_pairs pairs (z1, z2) where z2 is z1 with one
// unit (dimension or group) copied from another sample; both pass through
// `reencode`; an MLP (hidden 256) learns from |z1' - z2'| / std(z) which unit
// changed (80% of pairs, `epochs` epochs, Adam); score = accuracy on the other 20%.
double factorvae_score(const torch::Tensor& z, int64_t unit_size, const LatentMap& reencode, uint64_t seed,
                       int64_t n_pairs = 10000, int64_t epochs = 10);

// Pseudo-factor of the stimuli: k-means(n_clusters) on PCA(n_components) of the
// flattened images. images: [N, F] -> [N] int64.
torch::Tensor image_pseudo_factor(const torch::Tensor& images, uint64_t seed, int64_t n_components = 10,
                                  int64_t n_clusters = 10);

// Unsupervised SAP: for each pseudo-class c, a class-balanced ridge classifier per unit
// predicts (label == c) from that unit alone (fit on a seeded 80% of the images, balanced
// accuracy on the other 20%); gap best - second best unit; mean over classes.
double sap_score(const torch::Tensor& z, const torch::Tensor& pseudo_labels, int64_t unit_size, uint64_t seed);

// Held-out linear decodability [U, F] of each factor from each unit alone (the
// measure of group_factor_matrix, per factor: ridge R^2 or LDA chance-corrected
// accuracy, clamped to [0, 1]). z: [N, D]; train/test: row indices.
torch::Tensor unit_factor_scores(const torch::Tensor& z, int64_t unit_size, const std::vector<FactorLabels>& factors,
                                 const torch::Tensor& train, const torch::Tensor& test);

// Supervised SAP (Kumar et al. 2018) on labelled factors: per factor that varies,
// unit_factor_scores' best unit minus its second best; mean over factors. In [0, 1].
double sap_factors(const torch::Tensor& z, int64_t unit_size, const std::vector<FactorLabels>& factors,
                   const torch::Tensor& train, const torch::Tensor& test);

// Supervised FactorVAE score (Kim & Mnih 2018) on labelled factors, without a
// simulator: a vote picks a factor k and a random image, draws `batch` images (with
// replacement) sharing that image's value of k (class id or 20-bin code), and takes
// the unit of least variance of z / std(z) (a unit's variance: mean over its active
// dimensions; dimensions with std(z) < 0.05 are inactive and never win). A
// majority-vote classifier unit -> factor from n_train_votes votes; score = its
// accuracy on n_eval_votes other votes. Chance ~ 1 / (factors that vary).
double factorvae_factors(const torch::Tensor& z, int64_t unit_size, const std::vector<FactorLabels>& factors,
                         uint64_t seed, int64_t n_train_votes = 1000, int64_t n_eval_votes = 500,
                         int64_t batch = 64);

// Held-out linear read-out of targets y [N, T] from all of z [N, D] (columns
// standardised on train, ridge alpha fit on train): r2 = mean over targets of the
// test R^2, rmse = sqrt(mean squared test error over rows and targets), in y's units.
struct Readout {
  double r2 = 0;
  double rmse = 0;
};
Readout linear_readout(const torch::Tensor& z, const torch::Tensor& y, const torch::Tensor& train,
                       const torch::Tensor& test, double alpha = 1.0);

// --------------------------------------------------------- neural responses

// Mean over neurons (with non-zero target variance) of 1 - SS_res / SS_tot. [N, M] each.
double r2_score(const torch::Tensor& pred, const torch::Tensor& target);
double mse(const torch::Tensor& pred, const torch::Tensor& target);
// Poisson log-likelihood gain over a per-neuron mean-rate model, in bits per
// spike: (LL(rate) - LL(mean_rate)) / (sum(counts) * ln 2), LL = sum(y log r - r).
// rate, counts: [N, M] (rate > 0), mean_rate: [M] > 0 (from training data).
double bits_per_spike(const torch::Tensor& rate, const torch::Tensor& counts, const torch::Tensor& mean_rate);

// -------------------------------------------------------------- planted truth

// Roles in table order; group_factor_matrix's columns follow it (roles with no factor are left out).
const std::vector<std::string>& factor_roles();

struct GroupFactorMatrix {
  std::vector<std::string> roles;  // column names
  torch::Tensor scores;            // [G, F] float64 in [0, 1]
};
// Held-out linear decodability of each factor role from each latent group:
// a linear model from z_g (standardised) fit on `train`, scored on `test`:
// continuous factors: ridge regression R^2; categorical ones: linear discriminant
// analysis (shared covariance) chance-corrected accuracy
// (acc - p_major) / (1 - p_major), both clamped to [0, 1]; a role with several
// factors (rxy, ryz, rxz) is the mean over them. z: [N, D]; train/test: [n] int64 row indices.
GroupFactorMatrix group_factor_matrix(const torch::Tensor& z, int64_t group_rank,
                                      const std::vector<FactorLabels>& factors, const torch::Tensor& train,
                                      const torch::Tensor& test);

struct Recovery {
  double score = 0;                 // in [0, 1]
  std::vector<int64_t> assignment;  // group of each planted role (same order as `planted`)
};
// Recovery of planted factor roles: the one-to-one assignment of planted roles to
// distinct groups that maximises the summed matrix score; each role's margin is
// its score in its assigned group minus its best score in any other group
// (clamped to [0, 1]); recovery = mean margin. 1: every planted factor is fully
// decodable from its own group and from no other; 0: no group is specific.
// Roles not among m.roles are skipped; empty -> score 0.
Recovery recovery_score(const GroupFactorMatrix& m, const std::vector<std::string>& planted);

}  // namespace migvis::metrics
