// The synthetic generator: determinism, shapes, and that the planted factors
// really drive the responses (linear decoding on held-out images).
#include "orchestrator/data/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "tests/test_util.h"

namespace migvis::data {
namespace {

Dataset make(const std::string& preset, uint64_t seed) {
  SynthOptions o;
  o.preset = preset;
  o.seed = seed;
  auto d = synthesize(o);
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  return std::move(d).value();
}

// Ridge regression with an intercept: solves (X'X + lambda I) w = X'Y by
// Cholesky on z-scored features; returns predictions for Xtest.
std::vector<std::vector<double>> ridge_predict(const std::vector<std::vector<double>>& xtr,
                                               const std::vector<std::vector<double>>& ytr,
                                               const std::vector<std::vector<double>>& xte, double lambda) {
  const size_t n = xtr.size(), p = xtr[0].size(), k = ytr[0].size();
  std::vector<double> mu(p, 0), sd(p, 0), ymu(k, 0);
  for (auto& r : xtr) for (size_t j = 0; j < p; ++j) mu[j] += r[j] / n;
  for (auto& r : xtr) for (size_t j = 0; j < p; ++j) sd[j] += (r[j] - mu[j]) * (r[j] - mu[j]) / n;
  for (auto& s : sd) s = std::sqrt(s) + 1e-6;
  for (auto& r : ytr) for (size_t j = 0; j < k; ++j) ymu[j] += r[j] / n;
  auto z = [&](const std::vector<double>& r) {
    std::vector<double> o(p);
    for (size_t j = 0; j < p; ++j) o[j] = (r[j] - mu[j]) / sd[j];
    return o;
  };
  std::vector<double> a(p * p, 0), b(p * k, 0);
  for (size_t i = 0; i < n; ++i) {
    auto x = z(xtr[i]);
    for (size_t u = 0; u < p; ++u) {
      for (size_t v = 0; v < p; ++v) a[u * p + v] += x[u] * x[v];
      for (size_t j = 0; j < k; ++j) b[u * k + j] += x[u] * (ytr[i][j] - ymu[j]);
    }
  }
  for (size_t u = 0; u < p; ++u) a[u * p + u] += lambda;
  // Cholesky A = L L'
  std::vector<double> l(p * p, 0);
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j <= i; ++j) {
      double s = a[i * p + j];
      for (size_t q = 0; q < j; ++q) s -= l[i * p + q] * l[j * p + q];
      l[i * p + j] = i == j ? std::sqrt(s) : s / l[j * p + j];
    }
  std::vector<double> w(p * k);
  for (size_t j = 0; j < k; ++j) {
    std::vector<double> y(p);
    for (size_t i = 0; i < p; ++i) {
      double s = b[i * k + j];
      for (size_t q = 0; q < i; ++q) s -= l[i * p + q] * y[q];
      y[i] = s / l[i * p + i];
    }
    for (size_t i = p; i-- > 0;) {
      double s = y[i];
      for (size_t q = i + 1; q < p; ++q) s -= l[q * p + i] * w[q * k + j];
      w[i * k + j] = s / l[i * p + i];
    }
  }
  std::vector<std::vector<double>> out;
  for (auto& r : xte) {
    auto x = z(r);
    std::vector<double> o(ymu);
    for (size_t u = 0; u < p; ++u) for (size_t j = 0; j < k; ++j) o[j] += x[u] * w[u * k + j];
    out.push_back(o);
  }
  return out;
}

double r2(const std::vector<double>& y, const std::vector<double>& yhat) {
  double mean = std::accumulate(y.begin(), y.end(), 0.0) / y.size(), ss = 0, sr = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ss += (y[i] - mean) * (y[i] - mean);
    sr += (y[i] - yhat[i]) * (y[i] - yhat[i]);
  }
  return 1 - sr / ss;
}

TEST(SynthTest, SameSeedSameDataDifferentSeedDiffers) {
  Dataset a = make("tiny", 7), b = make("tiny", 7), c = make("tiny", 8);
  EXPECT_EQ(a.images.data, b.images.data);
  ASSERT_EQ(a.sessions.size(), b.sessions.size());
  for (size_t s = 0; s < a.sessions.size(); ++s) {
    EXPECT_EQ(a.sessions[s].counts.data, b.sessions[s].counts.data);
    EXPECT_EQ(a.sessions[s].image_index, b.sessions[s].image_index);
    EXPECT_EQ(a.sessions[s].neuron_ids, b.sessions[s].neuron_ids);
  }
  EXPECT_EQ(a.truth->latents.data, b.truth->latents.data);
  EXPECT_NE(a.images.data, c.images.data);
  EXPECT_NE(a.sessions[0].counts.data, c.sessions[0].counts.data);
  EXPECT_NE(a.truth->latents.data, c.truth->latents.data);
}

TEST(SynthTest, SameSeedWritesIdenticalFiles) {
  testing::TempDir tmp;
  Dataset a = make("tiny", 3), b = make("tiny", 3);
  ASSERT_TRUE(write_dataset(a, tmp / "a.h5").ok());
  ASSERT_TRUE(write_dataset(b, tmp / "b.h5").ok());
  auto ra = read_dataset(tmp / "a.h5"), rb = read_dataset(tmp / "b.h5");
  ASSERT_TRUE(ra.ok()) << ra.status().to_string();
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(ra->images.data, rb->images.data);
  EXPECT_EQ(ra->sessions[2].counts.data, rb->sessions[2].counts.data);
  EXPECT_EQ(ra->source, "synth:tiny:seed=3");
}

TEST(SynthTest, ShapesFactorsAndTruthFollowTheSchema) {
  Dataset d = make("tiny", 1);
  ASSERT_EQ(d.images.shape, (std::vector<hsize_t>{64, 1, 32, 32}));
  EXPECT_EQ(d.num_images(), 64u);
  EXPECT_EQ(d.animals(), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(d.sessions.size(), 6u);
  for (const char* f : {"category", "object", "rxy", "ryz", "tx", "ty", "size"}) EXPECT_NE(d.factor(f), nullptr) << f;
  EXPECT_EQ(d.factor("category")->classes.size(), 4u);
  EXPECT_EQ(d.factor("category")->role, "category");
  EXPECT_EQ(d.factor("object")->role, "identity");
  EXPECT_EQ(d.factor("object")->classes.size(), 16u);
  EXPECT_EQ(d.factor("rxy")->units, "deg");
  EXPECT_EQ(d.factor("ryz")->role, "pose");
  EXPECT_EQ(d.factor("tx")->role, "position");
  EXPECT_EQ(d.factor("size")->role, "size");
  ASSERT_TRUE(d.truth.has_value());
  EXPECT_EQ(d.truth->group_factor, (std::vector<std::string>{"pose", "category", "identity", "position"}));
  EXPECT_EQ(d.truth->latents.dim(0), 64u);
  EXPECT_EQ(d.truth->group_of_dim.size(), d.truth->latents.dim(1));
  for (auto& [animal, at] : d.truth->animals) {
    std::set<std::string> pop(at.neuron_ids.begin(), at.neuron_ids.end());
    for (auto& s : d.sessions) {
      if (s.animal != animal) continue;
      for (auto& id : s.neuron_ids) EXPECT_TRUE(pop.count(id)) << id;
    }
  }
  // The image content is not constant: objects on a background.
  float lo = 1, hi = 0;
  for (float v : d.images.data) { lo = std::min(lo, v); hi = std::max(hi, v); }
  EXPECT_LT(lo, 0.2f);
  EXPECT_GT(hi, 0.8f);
}

TEST(SynthTest, SessionsDifferInNeuronCountsAndCountsAreNonNegativeIntegers) {
  Dataset d = make("default", 2);
  EXPECT_EQ(d.num_images(), 512u);
  for (auto& animal : d.animals()) {
    std::set<size_t> sizes;
    int n = 0;
    for (auto& s : d.sessions) {
      if (s.animal != animal) continue;
      ++n;
      sizes.insert(s.num_neurons());
      EXPECT_GE(s.num_neurons(), 60u);
      EXPECT_LE(s.num_neurons(), 200u);
      EXPECT_EQ(s.num_presentations(), 512u * 3);
      EXPECT_EQ(s.t_start_ms, 70);
      EXPECT_EQ(s.t_stop_ms, 170);
      for (float v : s.counts.data) ASSERT_TRUE(v >= 0 && v == std::floor(v)) << v;
    }
    EXPECT_EQ(n, 3);
    EXPECT_EQ(sizes.size(), 3u) << "sessions of " << animal << " must record different numbers of neurons";
  }
  EXPECT_EQ(validate_dataset(d, "mem").ok(), true);
}

TEST(SynthTest, BadOptionsNameTheOption) {
  SynthOptions o;
  o.preset = "huge";
  EXPECT_NE(synthesize(o).status().message().find("preset"), std::string::npos);
  o.preset = "tiny";
  o.categories = 12;
  EXPECT_NE(synthesize(o).status().message().find("categories"), std::string::npos);
  o.categories = 0;
  o.min_neurons = 60;
  o.max_neurons = 61;
  EXPECT_NE(synthesize(o).status().message().find("distinct neuron counts"), std::string::npos);
}

// A second generator setting (issue 14 item 6): families no preset uses,
// another category count and other image statistics, without touching what
// the presets make.
TEST(SynthTest, FamiliesAndImageStatisticsMakeAnotherGenerator) {
  SynthOptions o;
  o.preset = "tiny";
  o.seed = 5;
  o.families = {"ring", "arrow", "chevron", "teardrop", "star"};
  o.background_min = 0.55;
  o.background_max = 0.75;
  o.background_texture = 2.0;
  o.pixel_noise = 0.06;
  auto alt = synthesize(o);
  ASSERT_TRUE(alt.ok()) << alt.status().to_string();
  const Dataset& d = *alt;
  EXPECT_EQ(d.num_images(), 5u * 4 * 4);
  EXPECT_EQ(d.factor("category")->classes, o.families);
  EXPECT_EQ(d.stimulus_ids.front().rfind("ring0_p", 0), 0u) << d.stimulus_ids.front();
  EXPECT_NE(d.description.find("shape families ring, arrow"), std::string::npos) << d.description;
  EXPECT_TRUE(validate_dataset(d, "mem").ok());
  // Brighter background: the image's median grey rises from ~0.3 to ~0.65.
  auto median = [](std::vector<float> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  Dataset base = make("tiny", 5);
  EXPECT_LT(median(base.images.data), 0.45f);
  EXPECT_GT(median(d.images.data), 0.5f);
  // Same views (the view stream does not depend on families or image statistics).
  // (5 categories here, 4 in the preset: the first 64 views are shared.)
  const auto& rb = base.factor("rxy")->values;
  EXPECT_EQ(std::vector<float>(d.factor("rxy")->values.begin(), d.factor("rxy")->values.begin() + rb.size()), rb);
  // Each new family draws its own shape: with image statistics equal and one
  // family swapped, that category's images change and the others' do not.
  SynthOptions a, b;
  a.preset = b.preset = "tiny";
  a.seed = b.seed = 5;
  a.families = {"disc", "box", "triangle", "star"};
  for (const char* fam : {"ring", "arrow", "chevron", "teardrop"}) {
    b.families = {"disc", fam, "triangle", "star"};
    auto da = synthesize(a), db = synthesize(b);
    ASSERT_TRUE(da.ok() && db.ok());
    const size_t per_cat = 16 * 32 * 32;
    auto slice = [&](const Dataset& x, int c) {
      return std::vector<float>(x.images.data.begin() + c * per_cat, x.images.data.begin() + (c + 1) * per_cat);
    };
    EXPECT_EQ(slice(*da, 0), slice(*db, 0)) << fam;
    EXPECT_NE(slice(*da, 1), slice(*db, 1)) << fam;
    EXPECT_EQ(slice(*da, 2), slice(*db, 2)) << fam;
  }
  // Naming the classic families in their order is the preset itself.
  auto named = synthesize(a);
  EXPECT_EQ(named->images.data, base.images.data);
}

TEST(SynthTest, BadFamiliesAndImageStatisticsNameTheOption) {
  SynthOptions o;
  o.preset = "tiny";
  o.families = {"disc", "blob"};
  EXPECT_NE(synthesize(o).status().message().find("unknown family 'blob'"), std::string::npos);
  o.families = {"disc", "ring", "disc"};
  EXPECT_NE(synthesize(o).status().message().find("'disc' listed twice"), std::string::npos);
  o.families = {"disc", "ring"};
  o.categories = 3;
  EXPECT_NE(synthesize(o).status().message().find("families lists 2"), std::string::npos);
  o.categories = 0;
  o.families = {"ring"};
  EXPECT_NE(synthesize(o).status().message().find("categories"), std::string::npos);
  o.families = {};
  o.background_min = 0.8;
  o.background_max = 0.5;
  EXPECT_NE(synthesize(o).status().message().find("background_min, background_max"), std::string::npos);
  o.background_min = o.background_max = -1;
  o.pixel_noise = 0.9;
  EXPECT_NE(synthesize(o).status().message().find("pixel_noise"), std::string::npos);
}

// A linear read-out of trial-averaged counts recovers the planted pose and
// category on held-out images: the factors drive the responses.
TEST(SynthTest, PlantedPoseAndCategoryAreLinearlyDecodableFromCounts) {
  Dataset d = make("default", 11);
  const Session& s = d.sessions[0];
  AveragedSession avg = average_repeats(s);
  ASSERT_EQ(avg.image_index.size(), d.num_images());
  const Factor& rxy = *d.factor("rxy");
  const Factor& cat = *d.factor("category");
  const size_t m = s.num_neurons(), n_cat = cat.classes.size();
  std::vector<std::vector<double>> xtr, xte, ytr, yte;
  for (size_t r = 0; r < avg.image_index.size(); ++r) {
    const int img = avg.image_index[r];
    std::vector<double> x(m);
    for (size_t j = 0; j < m; ++j) x[j] = std::sqrt(avg.mean.data[r * m + j]);  // variance-stabilised
    double th = rxy.values[img] * M_PI / 180;
    std::vector<double> y = {std::cos(th), std::sin(th)};
    for (size_t c = 0; c < n_cat; ++c) y.push_back(cat.values[img] == c ? 1.0 : 0.0);
    // Hold out every 5th image (images are ordered category, object, view).
    (img % 5 == 0 ? xte : xtr).push_back(x);
    (img % 5 == 0 ? yte : ytr).push_back(y);
  }
  auto pred = ridge_predict(xtr, ytr, xte, 10.0);
  std::vector<double> c_true, c_pred, s_true, s_pred;
  int correct = 0;
  for (size_t i = 0; i < yte.size(); ++i) {
    c_true.push_back(yte[i][0]);
    c_pred.push_back(pred[i][0]);
    s_true.push_back(yte[i][1]);
    s_pred.push_back(pred[i][1]);
    size_t best = 0;
    for (size_t c = 1; c < n_cat; ++c) if (pred[i][2 + c] > pred[i][2 + best]) best = c;
    correct += yte[i][2 + best] == 1.0;
  }
  double r2_cos = r2(c_true, c_pred), r2_sin = r2(s_true, s_pred);
  double acc = static_cast<double>(correct) / yte.size();
  std::printf("held-out (%zu images, %zu neurons): R^2 cos(rxy) %.3f, sin(rxy) %.3f; category accuracy %.3f (chance %.3f)\n",
              yte.size(), m, r2_cos, r2_sin, acc, 1.0 / n_cat);
  EXPECT_GT(r2_cos, 0.5);  // chance is R^2 <= 0
  EXPECT_GT(r2_sin, 0.5);
  EXPECT_GT(acc, 4.0 / n_cat);  // 4x chance
}

}  // namespace
}  // namespace migvis::data
