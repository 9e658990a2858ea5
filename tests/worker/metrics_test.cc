// Metric fixtures whose answers are known analytically.
#include "worker/metrics/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <set>

namespace migvis::metrics {
namespace {

using torch::Tensor;
constexpr auto kF64 = torch::kFloat64;

TEST(MetricsTest, KMeansFindsSeparatedBlobs) {
  torch::manual_seed(0);
  auto centers = torch::tensor({0.0, 0.0, 10.0, 0.0, 0.0, 10.0}, kF64).view({3, 2});
  auto truth = torch::arange(300, torch::kInt64).remainder(3);
  auto x = centers.index({truth}) + 0.3 * torch::randn({300, 2}, kF64);
  auto r = kmeans(x, 3, 1);
  std::set<int64_t> used;
  for (int c = 0; c < 3; ++c) {
    auto l = r.labels.masked_select(truth == c);
    EXPECT_TRUE(torch::all(l == l[0]).item<bool>()) << "blob " << c << " split";
    used.insert(l[0].item<int64_t>());
  }
  EXPECT_EQ(used.size(), 3u);
  EXPECT_LT(r.inertia, 300 * 2 * 0.3 * 0.3 * 1.5);
  // Same seed, same answer.
  EXPECT_TRUE(torch::equal(kmeans(x, 3, 1).labels, r.labels));
}

TEST(MetricsTest, PcaMatchesEigenOfCovarianceBothWays) {
  torch::manual_seed(1);
  auto x = torch::randn({50, 4}, kF64).matmul(torch::randn({4, 4}, kF64));
  auto p = pca(x, 3);
  auto xc = x - x.mean(0);
  auto cov = xc.t().matmul(xc) / 49.0;
  auto evals = std::get<0>(torch::linalg::eigh(cov, "L")).flip(0).slice(0, 0, 3);
  EXPECT_TRUE(torch::allclose(p.explained_variance, evals, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(p.components.matmul(p.components.t()), torch::eye(3, kF64), 1e-9, 1e-9));
  // Each component is an eigenvector: cov v = lambda v.
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(torch::allclose(cov.matmul(p.components[k]), evals[k] * p.components[k], 1e-8, 1e-8));
  // Wide data (F > N) goes through the Gram matrix: same variances as the covariance route.
  auto w = torch::randn({6, 20}, kF64);
  auto pw = pca(w, 4);
  auto wc = w - w.mean(0);
  auto ew = std::get<0>(torch::linalg::eigh(wc.t().matmul(wc) / 5.0, "L")).flip(0).slice(0, 0, 4);
  EXPECT_TRUE(torch::allclose(pw.explained_variance, ew, 1e-8, 1e-8));
  EXPECT_TRUE(torch::allclose(pw.components.matmul(pw.components.t()), torch::eye(4, kF64), 1e-8, 1e-8));
}

TEST(MetricsTest, RidgeClosedFormAndClassifier) {
  // One feature: w = sum(xc yc) / (sum(xc^2) + alpha).
  auto x = torch::tensor({0.0, 1.0, 2.0, 3.0}, kF64).unsqueeze(1);
  auto y = torch::tensor({1.0, 3.0, 2.0, 6.0}, kF64);
  auto r = fit_ridge(x, y, 2.0);
  // xc = -1.5 -.5 .5 1.5; yc = -2 0 -1 3 -> sum xc yc = 3 + 0 - .5 + 4.5 = 7; sum xc^2 = 5.
  EXPECT_NEAR(r.w.item<double>(), 7.0 / 7.0, 1e-12);
  EXPECT_NEAR(r.b.item<double>(), 3.0 - 1.5 * 1.0, 1e-12);
  // Separable classes -> perfect accuracy.
  torch::manual_seed(2);
  auto lab = torch::arange(90, torch::kInt64).remainder(3);
  auto feats = torch::one_hot(lab, 3).to(kF64) * 5 + 0.1 * torch::randn({90, 3}, kF64);
  auto clf = fit_ridge_classifier(feats, lab, 3);
  EXPECT_EQ(accuracy(clf.predict(feats), lab), 1.0);
  // Balanced accuracy: always predicting class 0 on a 9:1 set gives 0.5 (plain accuracy 0.9).
  auto yy = torch::cat({torch::zeros({9}, torch::kInt64), torch::ones({1}, torch::kInt64)});
  EXPECT_NEAR(accuracy(torch::zeros({10}, torch::kInt64), yy), 0.9, 1e-12);
  EXPECT_NEAR(balanced_accuracy(torch::zeros({10}, torch::kInt64), yy), 0.5, 1e-12);
}

TEST(MetricsTest, EntropyAndMutualInformation) {
  auto u = torch::arange(4000, torch::kInt64).remainder(8);
  EXPECT_NEAR(entropy(u), std::log(8.0), 1e-12);
  EXPECT_NEAR(mutual_info(u, u), entropy(u), 1e-12);
  // A bijective relabelling keeps all the information.
  EXPECT_NEAR(mutual_info(u, (u * 3 + 1).remainder(8)), std::log(8.0), 1e-12);
  // Independent variables: ~0 (plug-in bias ~ (8-1)(8-1)/(2N)).
  torch::manual_seed(3);
  auto a = torch::randint(8, {4000}, torch::kInt64);
  EXPECT_LT(mutual_info(a, u), 0.02);
  EXPECT_GE(mutual_info(a, u), 0.0);
  // Uniform bins.
  auto b = discretize(torch::tensor({0.0, 0.5, 0.99, 1.0}, kF64), 2);
  EXPECT_TRUE(torch::equal(b, torch::tensor({0, 1, 1, 1}, torch::kInt64)));
}

std::vector<FactorLabels> two_factors(int64_t n) {
  torch::manual_seed(4);
  FactorLabels cat{"category", "category", true, torch::randint(4, {n}, torch::kInt64)};
  FactorLabels pose{"rxy", "pose", false, torch::rand({n}, kF64) * 90 - 45};
  return {cat, pose};
}

TEST(MetricsTest, MigIsOneWhenLatentsAreTheFactorsAndNearZeroWhenIndependent) {
  const int64_t n = 3000;
  auto f = two_factors(n);
  auto z = torch::randn({n, 4}, kF64);
  z.select(1, 0).copy_(f[0].values.to(kF64));
  z.select(1, 2).copy_(f[1].values);
  EXPECT_GT(mig(unit_codes(z, 1, 0), f), 0.97);
  auto zi = torch::randn({n, 4}, kF64);
  EXPECT_LT(mig(unit_codes(zi, 1, 0), f), 0.05);
  // Group level: factors in distinct groups -> high; both factors in every group -> 0 gap.
  auto zg = torch::randn({n, 4}, kF64);
  zg.select(1, 0).copy_(f[0].values.to(kF64));
  zg.select(1, 3).copy_(f[1].values / 10);
  EXPECT_GT(mig(unit_codes(zg, 2, 0), f), 0.7);
  auto both = torch::stack({f[0].values.to(kF64), f[1].values / 10}, 1);
  EXPECT_LT(mig(unit_codes(torch::cat({both, both}, 1), 2, 0), f), 0.05);
}

TEST(MetricsTest, FactorVaeScoreSeesWhichUnitChanged) {
  torch::manual_seed(5);
  auto z = torch::randn({500, 6}, kF64);
  EXPECT_GT(factorvae_score(z, 1, {}, 0, 2000, 10), 0.95);
  EXPECT_GT(factorvae_score(z, 2, {}, 0, 2000, 10), 0.95);
  // A map that mixes every unit into the same pattern hides which one changed (chance 1/6).
  LatentMap collapse = [](const Tensor& t) { return t.sum(1, true).expand({t.size(0), t.size(1)}).contiguous(); };
  EXPECT_LT(factorvae_score(z, 1, collapse, 0, 2000, 10), 0.35);
  // Leaves the global generator as it was.
  torch::manual_seed(9);
  auto a = torch::rand({1});
  torch::manual_seed(9);
  factorvae_score(z, 1, {}, 0, 200, 1);
  EXPECT_TRUE(torch::equal(torch::rand({1}), a));
}

TEST(MetricsTest, SapHighForIndicatorDimsAndLowForNoise) {
  torch::manual_seed(6);
  const int64_t n = 1000;
  auto lab = torch::randint(10, {n}, torch::kInt64);
  auto z = torch::one_hot(lab, 10).to(kF64) + 0.1 * torch::randn({n, 10}, kF64);
  // Class c's own indicator: balanced accuracy ~1. Any other indicator j says "not j",
  // which a class-balanced classifier turns into "c" with TPR 1, TNR 1/9: 5/9.
  // Gap ~ 1 - 5/9 = 4/9 (a little less: the second best is a max over 9 noisy units).
  EXPECT_NEAR(sap_score(z, lab, 1, 0), 4.0 / 9.0, 0.08);
  EXPECT_LT(sap_score(torch::randn({n, 10}, kF64), lab, 1, 0), 0.1);
  EXPECT_GT(sap_score(z, lab, 5, 0), 0.0);
}

TEST(MetricsTest, ImagePseudoFactorClustersPrototypes) {
  torch::manual_seed(7);
  auto protos = torch::rand({3, 64}, kF64);
  auto which = torch::arange(60, torch::kInt64).remainder(3);
  auto imgs = protos.index({which}) + 0.01 * torch::randn({60, 64}, kF64);
  auto lab = image_pseudo_factor(imgs, 0, 5, 3);
  EXPECT_NEAR(mutual_info(lab, which), std::log(3.0), 1e-9);
}

TEST(MetricsTest, NeuralScores) {
  torch::manual_seed(8);
  auto t = torch::randn({40, 5}, kF64);
  EXPECT_NEAR(r2_score(t, t), 1.0, 1e-12);
  EXPECT_NEAR(r2_score(t.mean(0).expand_as(t), t), 0.0, 1e-12);
  EXPECT_NEAR(mse(t, t + 0.5), 0.25, 1e-12);
  auto rate = torch::rand({2000, 3}, kF64) * 5 + 0.5;
  auto counts = torch::poisson(rate);
  auto mean_rate = counts.mean(0);
  EXPECT_NEAR(bits_per_spike(mean_rate.expand_as(rate), counts, mean_rate), 0.0, 1e-9);
  EXPECT_GT(bits_per_spike(rate, counts, mean_rate), 0.1);
}

TEST(MetricsTest, GroupFactorMatrixAndRecovery) {
  const int64_t n = 800;
  torch::manual_seed(9);
  auto cat = torch::randint(4, {n}, torch::kInt64);
  auto pose = torch::randn({n}, kF64);
  std::vector<FactorLabels> f = {{"category", "category", true, cat}, {"rxy", "pose", false, pose}};
  auto emb = torch::randn({4, 2}, kF64) * 3;
  // Group 0 = pose, group 1 = category embedding, group 2 = noise.
  auto z = torch::cat({torch::stack({pose, torch::randn({n}, kF64)}, 1), emb.index({cat}) + 0.05 * torch::randn({n, 2}, kF64),
                       torch::randn({n, 2}, kF64)}, 1);
  auto train = torch::arange(0, 600, torch::kInt64), test = torch::arange(600, n, torch::kInt64);
  auto m = group_factor_matrix(z, 2, f, train, test);
  ASSERT_EQ(m.roles, (std::vector<std::string>{"pose", "category"}));
  EXPECT_GT(m.scores[0][0].item<double>(), 0.95);
  EXPECT_GT(m.scores[1][1].item<double>(), 0.9);
  EXPECT_LT(m.scores[2][0].item<double>(), 0.05);
  EXPECT_LT(m.scores[2][1].item<double>(), 0.1);
  auto rec = recovery_score(m, {"pose", "category"});
  EXPECT_GT(rec.score, 0.85);
  EXPECT_EQ(rec.assignment, (std::vector<int64_t>{0, 1}));
  // Every factor in every group: nothing is group-specific.
  auto mixed = torch::cat({z.slice(1, 0, 1), z.slice(1, 2, 3), z.slice(1, 0, 1), z.slice(1, 2, 3)}, 1);
  auto mm = group_factor_matrix(mixed, 2, f, train, test);
  EXPECT_LT(recovery_score(mm, {"pose", "category"}).score, 0.05);
  EXPECT_EQ(recovery_score(m, {"size"}).score, 0.0);
}

TEST(MetricsTest, SapSeesAWeakButSpecificUnit) {
  // A unit that shifts by one standard deviation on a 10% class is informative, but
  // unweighted least squares on a 10%-positive target never predicts the class from
  // it (balanced accuracy 0.5 for every unit: SAP 0). Class-balanced weights see it.
  torch::manual_seed(10);
  const int64_t n = 2000;
  auto lab = torch::randint(10, {n}, torch::kInt64);
  auto z = torch::randn({n, 10}, kF64) + torch::one_hot(lab, 10).to(kF64);
  // Own unit: threshold half-way, balanced accuracy P(N(0,1) < 0.5) ~ 0.69; other units
  // shift by -1/9 on the class (~0.52, max over 9 noisy ones ~0.55): gap ~0.14.
  EXPECT_GT(sap_score(z, lab, 1, 0), 0.07);
  auto plain = fit_ridge_classifier(z.slice(1, 0, 1), (lab == 0).to(torch::kInt64), 2);
  EXPECT_EQ(plain.predict(z.slice(1, 0, 1)).sum().item<int64_t>(), 0) << "the degenerate case this guards against";
}

TEST(MetricsTest, WeightedRidgeEqualsRepeatedRows) {
  auto x = torch::tensor({0.0, 1.0, 2.0, 3.0}, kF64).unsqueeze(1);
  auto y = torch::tensor({1.0, 3.0, 2.0, 6.0}, kF64);
  auto w = torch::tensor({1.0, 2.0, 1.0, 3.0}, kF64);
  auto xr = torch::tensor({0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0}, kF64).unsqueeze(1);
  auto yr = torch::tensor({1.0, 3.0, 3.0, 2.0, 6.0, 6.0, 6.0}, kF64);
  auto a = fit_ridge(x, y, 0.5, w), b = fit_ridge(xr, yr, 0.5);
  EXPECT_TRUE(torch::allclose(a.w, b.w, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(a.b, b.b, 1e-12, 1e-12));
}

TEST(MetricsTest, LinearReadoutOfPoseLabels) {
  torch::manual_seed(11);
  const int64_t n = 600;
  auto z = torch::randn({n, 5}, kF64);
  auto y = torch::stack({z.select(1, 0) * 2 + 1, z.select(1, 3) - z.select(1, 4)}, 1);
  auto train = torch::arange(0, 480, torch::kInt64), test = torch::arange(480, n, torch::kInt64);
  auto r = linear_readout(z, y, train, test);
  EXPECT_GT(r.r2, 0.99);
  EXPECT_LT(r.rmse, 0.05);
  auto noise = linear_readout(torch::randn({n, 5}, kF64), y, train, test);
  EXPECT_LT(noise.r2, 0.05);
  // RMSE is in the targets' units: about their standard deviation when nothing is read.
  EXPECT_NEAR(noise.rmse, y.index({test}).std(0).mean().item<double>(), 0.3);
}

// A planted-disentangled latent: 4 groups of 2 dimensions; group g's first dimension
// is factor g (standardised, + small noise), its second independent noise. Two
// entangled versions hold exactly the same information, spread over dimensions and
// groups: z_mix under the normalised 8x8 Hadamard rotation (every factor loads 1/8 of
// its variance on every dimension: maximally entangled), z_rot under a seeded random
// rotation (entangled to a random degree: some factors may keep a dominant dimension).
struct Planted {
  std::vector<FactorLabels> factors;
  Tensor z, z_mix, z_rot, images, train, test;
};
Planted planted(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  Planted p;
  auto cat = torch::randint(4, {n}, torch::kInt64);
  p.factors = {{"category", "category", true, cat},
               {"rxy", "pose", false, torch::rand({n}, kF64) * 90 - 45},
               {"tx", "position", false, torch::rand({n}, kF64) * 0.3 - 0.15},
               {"size", "size", false, torch::rand({n}, kF64) * 0.25 + 0.35}};
  const int64_t g = 4, r = 2, d = g * r;
  p.z = torch::randn({n, d}, kF64);
  for (int64_t k = 0; k < g; ++k) {
    auto v = p.factors[k].values.to(kF64);
    p.z.select(1, k * r).copy_((v - v.mean()) / v.std() + 0.1 * torch::randn({n}, kF64));
  }
  auto q = std::get<0>(torch::linalg::qr(torch::randn({d, d}, kF64)));
  p.z_rot = p.z.matmul(q);
  auto h = torch::ones({1, 1}, kF64);  // Sylvester: H_2n = [[H, H], [H, -H]]
  while (h.size(0) < d) h = torch::cat({torch::cat({h, h}, 1), torch::cat({h, -h}, 1)}, 0);
  p.z_mix = p.z.matmul(h / std::sqrt(static_cast<double>(d)));
  // "Images" whose dominant structure is the category (the pseudo-factor of SAP).
  auto protos = torch::randn({4, 32}, kF64) * 3;
  p.images = protos.index({cat}) + 0.3 * torch::randn({n, 32}, kF64);
  p.train = torch::arange(0, n * 4 / 5, torch::kInt64);
  p.test = torch::arange(n * 4 / 5, n, torch::kInt64);
  return p;
}

TEST(MetricsTest, EachMetricRanksPlantedDisentangledAboveARotation) {
  auto p = planted(2000, 12);
  auto pseudo = image_pseudo_factor(p.images, 0, 5, 4);
  ASSERT_NEAR(mutual_info(pseudo, p.factors[0].values), std::log(4.0), 0.05) << "pseudo-factor = category";
  struct Named {
    const char* name;
    std::function<double(const Tensor&)> f;
  };
  const std::vector<Named> metrics = {
      {"mig", [&](const Tensor& z) { return mig(unit_codes(z, 1, 0), p.factors); }},
      {"mig_group", [&](const Tensor& z) { return mig(unit_codes(z, 2, 0), p.factors); }},
      {"sap", [&](const Tensor& z) { return sap_score(z, pseudo, 1, 0); }},
      {"sap_group", [&](const Tensor& z) { return sap_score(z, pseudo, 2, 0); }},
      {"sap_factors", [&](const Tensor& z) { return sap_factors(z, 1, p.factors, p.train, p.test); }},
      {"sap_factors_group", [&](const Tensor& z) { return sap_factors(z, 2, p.factors, p.train, p.test); }},
      {"factorvae_factors", [&](const Tensor& z) { return factorvae_factors(z, 1, p.factors, 0); }},
      {"factorvae_factors_group", [&](const Tensor& z) { return factorvae_factors(z, 2, p.factors, 0); }},
  };
  for (const auto& m : metrics) {
    double planted_score = m.f(p.z), mixed = m.f(p.z_mix), rotated = m.f(p.z_rot);
    EXPECT_GT(planted_score, mixed + 0.1) << m.name << ": planted " << planted_score << ", Hadamard " << mixed;
    EXPECT_GT(planted_score, rotated) << m.name << ": planted " << planted_score << ", random rotation " << rotated;
    std::printf("%-24s planted %.3f  Hadamard %.3f  random rotation %.3f\n", m.name, planted_score, mixed, rotated);
  }
  // The unsupervised FactorVAE-style score cannot: a rotation of the latent space
  // (with the matching rotation of a decoder / re-encoder) leaves "which unit
  // changed" exactly as visible as before. Documented in docs/METRICS.md.
  double fv = factorvae_score(p.z, 1, {}, 0, 2000, 10), fv_mix = factorvae_score(p.z_mix, 1, {}, 0, 2000, 10);
  EXPECT_NEAR(fv, fv_mix, 0.05);
  std::printf("%-24s planted %.3f  Hadamard %.3f (rotation-invariant)\n", "factorvae", fv, fv_mix);
}

TEST(MetricsTest, SupervisedFactorVaeIgnoresCollapsedDimsAndIsSeeded) {
  auto p = planted(1000, 13);
  // A constant dimension has zero variance in every vote; it must not win them all.
  auto z = torch::cat({p.z, torch::zeros({1000, 2}, kF64)}, 1);
  EXPECT_GT(factorvae_factors(z, 1, p.factors, 3), 0.9);
  EXPECT_EQ(factorvae_factors(z, 1, p.factors, 3), factorvae_factors(z, 1, p.factors, 3));
}

}  // namespace
}  // namespace migvis::metrics
