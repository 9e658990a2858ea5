#include "worker/vae/vae.h"

#include <gtest/gtest.h>

namespace migvis::vae {
namespace {

VaeOptions small_opts() {
  VaeOptions o;
  o.session_neurons = {7};
  o.groups = 3;
  o.group_rank = 2;
  o.hidden = 8;
  o.pose_dims = 2;
  o.n_classes = 3;
  return o;
}

TEST(VaeTest, ForwardShapes) {
  torch::manual_seed(0);
  Vae m(small_opts());
  auto out = m->forward(torch::randn({5, 7}));
  EXPECT_EQ(out.mu.sizes(), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(out.logvar.sizes(), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(out.z.sizes(), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(out.recon.sizes(), (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(out.pose_hat.sizes(), (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(out.class_logits.sizes(), (std::vector<int64_t>{5, 3}));
  auto det = m->forward(torch::randn({5, 7}), 0, /*sample=*/false);
  EXPECT_TRUE(torch::equal(det.z, det.mu));
}

TEST(VaeTest, PooledSessionsShareTheLatentSpace) {
  auto o = small_opts();
  o.session_neurons = {7, 11};
  Vae m(o);
  auto a = m->forward(torch::randn({4, 7}), 0);
  auto b = m->forward(torch::randn({4, 11}), 1);
  EXPECT_EQ(a.recon.size(1), 7);
  EXPECT_EQ(b.recon.size(1), 11);
  EXPECT_EQ(b.mu.size(1), 6);
  // Decoding the same latent through each session's read-out gives each session's neurons.
  auto z = torch::randn({3, 6});
  EXPECT_EQ(m->decode(z, 1).size(1), 11);
}

TEST(VaeTest, KlIsNonNegativeAndZeroAtPrior) {
  torch::manual_seed(1);
  for (int i = 0; i < 20; ++i) {
    auto mu = torch::randn({16, 6}) * 2, lv = torch::randn({16, 6});
    EXPECT_GE(kl_normal(mu, lv).item<double>(), 0.0);
  }
  EXPECT_NEAR(kl_normal(torch::zeros({4, 6}), torch::zeros({4, 6})).item<double>(), 0.0, 1e-12);
  // Analytic value for one dimension: mu = 1, var = e: 0.5 * (1 + e - 1 - 1).
  EXPECT_NEAR(kl_normal(torch::ones({1, 1}), torch::ones({1, 1})).item<double>(), 0.5 * (std::exp(1.0) - 1), 1e-6);
}

TEST(VaeTest, PoissonNllMinimisedAtTrueRate) {
  auto x = torch::full({1, 1}, 3.0);
  double at = recon_poisson(torch::full({1, 1}, std::log(3.0)), x).item<double>();
  EXPECT_LT(at, recon_poisson(torch::full({1, 1}, std::log(2.5)), x).item<double>());
  EXPECT_LT(at, recon_poisson(torch::full({1, 1}, std::log(3.5)), x).item<double>());
}

TEST(VaeTest, GroupTcZeroForIdenticalPosteriorsAndSmallForIndependentGroups) {
  torch::manual_seed(2);
  // Identical posteriors: the estimator is exactly 0.
  auto mu0 = torch::zeros({64, 6}), lv0 = torch::zeros({64, 6});
  auto z0 = torch::randn({64, 6});
  EXPECT_NEAR(group_tc(z0, mu0, lv0, 2).item<double>(), 0.0, 1e-5);
  // Independent groups (independent posterior means, broad posteriors): ~0.
  double sum = 0;
  for (int t = 0; t < 5; ++t) {
    auto mu = torch::randn({512, 6}) * 0.5, lv = torch::full({512, 6}, std::log(0.5));
    auto z = mu + torch::randn_like(mu) * torch::exp(0.5 * lv);
    sum += group_tc(z, mu, lv, 2).item<double>();
  }
  EXPECT_LT(std::abs(sum / 5), 0.05) << sum / 5;
}

TEST(VaeTest, GroupTcPositiveForDependentGroups) {
  torch::manual_seed(3);
  // Group 2 copies group 1: strong dependence, narrow posteriors.
  double sum = 0;
  for (int t = 0; t < 5; ++t) {
    auto a = torch::randn({256, 2});
    auto mu = torch::cat({a, a, torch::randn({256, 2})}, 1);
    auto lv = torch::full({256, 6}, std::log(0.05));
    auto z = mu + torch::randn_like(mu) * torch::exp(0.5 * lv);
    double tc = group_tc(z, mu, lv, 2).item<double>();
    EXPECT_GT(tc, 0.0);
    sum += tc;
  }
  EXPECT_GT(sum / 5, 1.0);
  // Per-dimension TC (group size 1) includes the within-group dependence too.
  auto a = torch::randn({128, 1});
  auto mu = torch::cat({a, a}, 1), lv = torch::full({128, 2}, std::log(0.05));
  EXPECT_GT(group_tc(mu, mu, lv, 1).item<double>(), 1.0);
}

TEST(VaeTest, GroupTcGradientMatchesCentralDifferences) {
  // A tiny float64 model: mu = x A, logvar = x B, z = mu + eps * exp(logvar / 2), fixed eps.
  torch::manual_seed(4);
  auto opt64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto x = torch::randn({6, 3}, opt64), eps = torch::randn({6, 4}, opt64);
  auto a = (torch::randn({3, 4}, opt64) * 0.7).requires_grad_(true);
  auto b = (torch::randn({3, 4}, opt64) * 0.3).requires_grad_(true);
  auto f = [&](const torch::Tensor& aa, const torch::Tensor& bb) {
    auto mu = x.matmul(aa), lv = x.matmul(bb);
    return group_tc(mu + eps * torch::exp(0.5 * lv), mu, lv, 2);
  };
  auto loss = f(a, b);
  loss.backward();
  const double h = 1e-6;
  for (auto* p : {&a, &b}) {
    auto grad = p->grad();
    for (int64_t i = 0; i < p->numel(); ++i) {
      torch::NoGradGuard ng;
      auto plus = p->detach().clone(), minus = p->detach().clone();
      plus.view(-1)[i] += h;
      minus.view(-1)[i] -= h;
      double num = (p == &a ? (f(plus, b) - f(minus, b)) : (f(a, plus) - f(a, minus))).item<double>() / (2 * h);
      EXPECT_NEAR(grad.view(-1)[i].item<double>(), num, 1e-6 * std::max(1.0, std::abs(num))) << "entry " << i;
    }
  }
}

TEST(VaeTest, LossSelectsTermsByModel) {
  torch::manual_seed(5);
  auto o = small_opts();
  Vae m(o);
  auto x = torch::randn({8, 7});
  auto out = m->forward(x);
  auto pose = torch::randn({8, 2});
  auto cat = torch::randint(3, {8}, torch::kInt64);
  LossWeights w;
  w.model = ModelKind::kVae;
  auto vae = vae_loss(out, x, pose, cat, o, w);
  EXPECT_NEAR(vae.total.item<double>(), (vae.recon + w.w_kl * vae.kl).item<double>(), 1e-6);
  EXPECT_EQ(vae.tc.item<double>(), 0.0);
  w.model = ModelKind::kBetaVae;
  auto bv = vae_loss(out, x, pose, cat, o, w);
  EXPECT_NEAR(bv.total.item<double>(), (bv.recon + w.beta * w.w_kl * bv.kl).item<double>(), 1e-6);
  w.model = ModelKind::kMigVis;
  w.w_tc = 0.5;
  auto mv = vae_loss(out, x, pose, cat, o, w);
  EXPECT_GT(mv.pose.item<double>(), 0.0);
  EXPECT_GT(mv.ce.item<double>(), 0.0);
  EXPECT_NEAR(mv.total.item<double>(),
              (mv.recon + w.w_guid * (mv.pose + 0.1 * mv.ce) + w.w_kl * mv.kl + w.w_tc * mv.tc).item<double>(), 1e-5);
  w.model = ModelKind::kMigVisUnsup;
  auto mu = vae_loss(out, x, pose, cat, o, w);
  EXPECT_EQ(mu.pose.item<double>(), 0.0);
  EXPECT_NEAR(mu.total.item<double>(), (mu.recon + w.w_kl * mu.kl + w.w_tc * mu.tc).item<double>(), 1e-5);
  w.model = ModelKind::kTcVae;
  auto tc = vae_loss(out, x, pose, cat, o, w);
  EXPECT_NE(tc.tc.item<double>(), 0.0);
}

TEST(VaeTest, ShortTrainingLowersTheLoss) {
  torch::manual_seed(6);
  auto o = small_opts();
  o.pose_dims = 0;
  o.n_classes = 0;
  Vae m(o);
  // Data on a 2-D linear subspace.
  auto x = torch::randn({128, 2}).matmul(torch::randn({2, 7}));
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-2));
  LossWeights w;
  w.model = ModelKind::kVae;
  auto eval = [&] {
    torch::NoGradGuard ng;
    return vae_loss(m->forward(x, 0, false), x, {}, {}, o, w).total.item<double>();
  };
  double before = eval();
  for (int i = 0; i < 150; ++i) {
    opt.zero_grad();
    auto p = vae_loss(m->forward(x), x, {}, {}, o, w);
    p.total.backward();
    opt.step();
  }
  EXPECT_LT(eval(), 0.5 * before);
}

TEST(VaeTest, ParseNames) {
  EXPECT_TRUE(parse_model("tcvae").ok());
  EXPECT_FALSE(parse_model("tc-vae").ok());
  EXPECT_EQ(*parse_recon("poisson"), Recon::kPoisson);
  EXPECT_FALSE(parse_recon("gauss").ok());
}

}  // namespace
}  // namespace migvis::vae
