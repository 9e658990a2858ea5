// A small planted-truth dataset built by hand for the vae/metrics tests (until
// and besides the synthetic generator): independent true latent groups for pose
// (rxy, ryz), category (4 classes) and identity (2 objects per category), mixed
// linearly into M neurons whose Poisson counts (2 repeats) are recorded, and
// 8 x 8 images that are a fixed random non-linear function of the same latents.
#pragma once

#include <array>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "results/dataset_io.h"

namespace migvis::testing {

struct ToyOptions {
  int n_images = 480;
  int n_neurons = 40;
  int n_sessions = 1;     // sessions of animal "a1"; session k sees all images, neurons differ
  int repeats = 2;
  uint32_t seed = 7;
  double noise = 0.0;     // extra Gaussian noise on the log-rate
};

inline data::Dataset make_toy_dataset(const ToyOptions& o = {}) {
  std::mt19937 rng(o.seed);
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> uni(-1, 1);
  const int n = o.n_images, n_cat = 4, n_obj = 8;
  const int d_true = 6;  // pose 2, category 2, identity 2
  data::Dataset d;
  d.source = "test:toy";
  d.description = "hand-made planted-truth toy for vae tests";
  // Category / identity embeddings (2-D each), well separated.
  std::vector<std::array<double, 2>> cat_emb(n_cat), obj_emb(n_obj);
  for (int c = 0; c < n_cat; ++c) cat_emb[c] = {1.4 * std::cos(2 * M_PI * c / n_cat), 1.4 * std::sin(2 * M_PI * c / n_cat)};
  for (int k = 0; k < n_obj; ++k) obj_emb[k] = {(k % 2) ? 1.0 : -1.0, normal(rng) * 0.5};
  data::Factor category{"category", data::FactorKind::kCategorical, "category", {}, "", {}};
  for (int c = 0; c < n_cat; ++c) category.classes.push_back("c" + std::to_string(c));
  data::Factor object{"object", data::FactorKind::kCategorical, "identity", {}, "", {}};
  for (int k = 0; k < n_obj; ++k) object.classes.push_back("o" + std::to_string(k));
  data::Factor rxy{"rxy", data::FactorKind::kContinuous, "pose", {}, "deg", {}};
  data::Factor ryz{"ryz", data::FactorKind::kContinuous, "pose", {}, "deg", {}};
  data::Truth truth;
  truth.latents = h5::Array<float>({static_cast<hsize_t>(n), static_cast<hsize_t>(d_true)});
  truth.group_names = {"pose", "category", "identity"};
  truth.group_factor = {"pose", "category", "identity"};
  truth.group_of_dim = {0, 0, 1, 1, 2, 2};
  for (int i = 0; i < n; ++i) {
    int c = i % n_cat, k = c * 2 + (i / n_cat) % 2;
    double a = uni(rng), b = uni(rng);
    category.values.push_back(static_cast<float>(c));
    object.values.push_back(static_cast<float>(k));
    rxy.values.push_back(static_cast<float>(45 * a));
    ryz.values.push_back(static_cast<float>(45 * b));
    double lat[d_true] = {a * 1.7, b * 1.7, cat_emb[c][0], cat_emb[c][1], obj_emb[k][0], obj_emb[k][1]};
    for (int j = 0; j < d_true; ++j) truth.latents.data[i * d_true + j] = static_cast<float>(lat[j]);
    d.stimulus_ids.push_back("im" + std::to_string(i));
  }
  d.factors = {category, object, rxy, ryz};
  // Images: 8 x 8 = sigmoid(P * latent), P fixed random.
  const int px = 64;
  d.images = h5::Array<float>({static_cast<hsize_t>(n), 1, 8, 8});
  std::vector<double> proj(px * d_true);
  for (auto& v : proj) v = normal(rng);
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < px; ++p) {
      double s = 0;
      for (int j = 0; j < d_true; ++j) s += proj[p * d_true + j] * truth.latents.data[i * d_true + j];
      d.images.data[i * px + p] = static_cast<float>(1 / (1 + std::exp(-s)));
    }
  // Neurons: log-rate = 1 + 0.45 * w . latent; Poisson counts, `repeats` presentations per image.
  const int m_total = o.n_neurons * o.n_sessions;
  data::Truth::AnimalTruth at;
  at.loadings = h5::Array<float>({static_cast<hsize_t>(m_total), static_cast<hsize_t>(d_true)});
  for (auto& v : at.loadings.data) v = static_cast<float>(normal(rng) * 0.45);
  for (int j = 0; j < m_total; ++j) at.neuron_ids.push_back("n" + std::to_string(j));
  for (int s = 0; s < o.n_sessions; ++s) {
    data::Session sess;
    sess.animal = "a1";
    sess.name = "s" + std::to_string(s + 1);
    const int m = o.n_neurons;
    sess.counts = h5::Array<float>({static_cast<hsize_t>(n * o.repeats), static_cast<hsize_t>(m)});
    for (int j = 0; j < m; ++j) sess.neuron_ids.push_back(at.neuron_ids[s * m + j]);
    for (int rep = 0; rep < o.repeats; ++rep)
      for (int i = 0; i < n; ++i) {
        sess.image_index.push_back(i);
        size_t row = sess.image_index.size() - 1;
        for (int j = 0; j < m; ++j) {
          double lr = 1.0 + o.noise * normal(rng);
          for (int q = 0; q < d_true; ++q) lr += at.loadings.data[(s * m + j) * d_true + q] * truth.latents.data[i * d_true + q];
          std::poisson_distribution<int> pois(std::exp(lr));
          sess.counts.data[row * m + j] = static_cast<float>(pois(rng));
        }
      }
    d.sessions.push_back(std::move(sess));
  }
  truth.animals["a1"] = std::move(at);
  d.truth = std::move(truth);
  return d;
}

}  // namespace migvis::testing
