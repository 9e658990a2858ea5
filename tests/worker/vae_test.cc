#include "worker/vae/vae.h"

#include <gtest/gtest.h>

#include <functional>
#include <iostream>

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

// The matmul form of group_tc against the [B, B, D] reference evaluated in
// float64 (the oracle). group_tc does its matmul in float64 and rounds each
// [G, B, B] log-density to the input dtype once (the reference rounds each of
// its entries too), so on float64 inputs the two agree to float64 rounding
// (1e-10 allowed), and on float32 inputs to float32 rounding: ~6e-8 relative
// per log-density, 1e-6 of max(1, |TC|) allowed for the value, 1e-5 of the
// gradient's largest entry for each gradient (sums over B rounded terms).
struct TcCase {
  int64_t b, d, group_size;
  double mu_scale, mu_offset, logvar_mean;
};

void expect_tc_matches_reference(const TcCase& c, torch::Dtype dtype) {
  SCOPED_TRACE(::testing::Message() << "B=" << c.b << " D=" << c.d << " gs=" << c.group_size << " |mu|~" << c.mu_offset
                                    << " logvar~" << c.logvar_mean << " dtype=" << dtype);
  auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto mu0 = torch::randn({c.b, c.d}, o64) * c.mu_scale + c.mu_offset;
  auto lv0 = torch::randn({c.b, c.d}, o64) * 0.5 + c.logvar_mean;
  auto z0 = mu0 + torch::randn({c.b, c.d}, o64) * torch::exp(0.5 * lv0);
  // Inputs rounded to dtype first, so both sides see the same numbers.
  z0 = z0.to(dtype).to(torch::kFloat64);
  mu0 = mu0.to(dtype).to(torch::kFloat64);
  lv0 = lv0.to(dtype).to(torch::kFloat64);
  auto run = [&](bool reference, torch::Dtype dt) {
    auto leaf = [&](const torch::Tensor& t) { return t.to(dt).detach().clone().requires_grad_(true); };
    auto z = leaf(z0), mu = leaf(mu0), lv = leaf(lv0);
    auto tc = reference ? group_tc_reference(z, mu, lv, c.group_size, 100) : group_tc(z, mu, lv, c.group_size, 100);
    tc.backward();
    EXPECT_EQ(tc.scalar_type(), dt);
    return std::vector<torch::Tensor>{tc.detach().to(torch::kFloat64), z.grad().to(torch::kFloat64),
                                      mu.grad().to(torch::kFloat64), lv.grad().to(torch::kFloat64)};
  };
  auto ref = run(true, torch::kFloat64);
  auto got = run(false, dtype);
  const bool f64 = dtype == torch::kFloat64;
  const double v = ref[0].item<double>();
  EXPECT_NEAR(got[0].item<double>(), v, (f64 ? 1e-10 : 1e-6) * std::max(1.0, std::abs(v)));
  const char* names[] = {"", "dz", "dmu", "dlogvar"};
  for (int k = 1; k < 4; ++k) {
    const double scale = std::max(1e-12, ref[k].abs().max().item<double>());
    const double err = (got[k] - ref[k]).abs().max().item<double>();
    EXPECT_LE(err, (f64 ? 1e-9 : 1e-5) * scale) << names[k] << " max |grad| " << scale;
  }
}

TEST(VaeTest, GroupTcMatmulFormEqualsReferenceForwardAndGradients) {
  torch::manual_seed(11);
  const TcCase cases[] = {
      {1, 6, 2, 1.0, 0.0, 0.0},       // B = 1: TC is exactly 0, gradients too
      {2, 4, 4, 1.0, 0.0, -1.0},      // one group: joint = marginal
      {17, 6, 1, 1.0, 0.0, -1.0},     // per-dimension (beta-TCVAE)
      {64, 24, 6, 1.0, 0.0, -2.0},    // the MIG-Vis shape, typical posteriors
      {64, 24, 6, 0.3, 0.0, -6.0},    // narrow posteriors, close means: near-one-hot lse
      {48, 12, 3, 5.0, 200.0, -4.0},  // large |z| (~200), far-apart posteriors (one-hot logsumexp)
      // Large |z| (~1000) with overlapping posteriors (sigma ~0.1, means 0.1 apart):
      // z^2 / sigma^2 ~ 1e8, so the expansion done in float32 without centring is
      // off by ~50 nats here (measured with the PyTorch twin); this pins that it is not.
      {48, 12, 3, 0.1, 1000.0, -4.6},
  };
  for (const auto& c : cases)
    for (auto dt : {torch::kFloat64, torch::kFloat32}) expect_tc_matches_reference(c, dt);
}

// Each loss term a model claims is non-zero and moves the gradient: zeroing the
// term's weight changes the parameters' gradient by more than float32 rounding
// could (1e-4 of its norm; rounding is ~1e-7). Weights are the defaults the
// vae stage uses (LossWeights{}), with beta from sweeps/paper.yaml.
TEST(VaeTest, EveryClaimedLossTermIsNonZeroAndMovesTheGradient) {
  struct Term {
    const char* name;
    std::function<torch::Tensor(const LossParts&)> value;
    std::function<void(LossWeights*)> zero_weight;
  };
  const Term recon{"recon", [](const LossParts& p) { return p.recon; }, nullptr};
  const Term kl{"kl", [](const LossParts& p) { return p.kl; }, [](LossWeights* w) { w->w_kl = 0; }};
  const Term tc_group{"tc", [](const LossParts& p) { return p.tc; }, [](LossWeights* w) { w->w_tc = 0; }};
  const Term tc_beta{"tc", [](const LossParts& p) { return p.tc; }, [](LossWeights* w) { w->beta = 1; }};
  const Term kl_beta{"kl", [](const LossParts& p) { return p.kl; }, [](LossWeights* w) { w->w_kl = 0; }};
  const Term guid{"pose+ce", [](const LossParts& p) { return p.pose + p.ce; }, [](LossWeights* w) { w->w_guid = 0; }};
  struct Kind {
    ModelKind model;
    double beta;
    std::vector<Term> terms;
  };
  const std::vector<Kind> kinds = {{ModelKind::kVae, 1, {recon, kl}},
                                   {ModelKind::kBetaVae, 4, {recon, kl_beta}},
                                   {ModelKind::kTcVae, 6, {recon, kl, tc_beta}},
                                   {ModelKind::kMigVis, 1, {recon, kl, tc_group, guid}},
                                   {ModelKind::kMigVisUnsup, 1, {recon, kl, tc_group}}};
  VaeOptions o;  // the stage's shape: 4 groups of rank 6, pose and category heads
  o.session_neurons = {40};
  torch::manual_seed(12);
  Vae m(o);
  auto x = torch::randn({64, 40}), pose = torch::randn({64, o.pose_dims});
  auto cat = torch::randint(o.n_classes, {64}, torch::kInt64);
  // Gradient of `objective(parts)` under weights w; the same reparameterisation
  // noise every call, so runs differ only by the weights.
  auto grad_of = [&](const LossWeights& w, LossParts* parts,
                     const std::function<torch::Tensor(const LossParts&)>& objective) {
    m->zero_grad();
    torch::manual_seed(13);
    *parts = vae_loss(m->forward(x), x, pose, cat, o, w);
    objective(*parts).backward();
    std::vector<torch::Tensor> g;
    for (auto& p : m->parameters())
      g.push_back(p.grad().defined() ? p.grad().flatten().clone() : torch::zeros({p.numel()}));
    return torch::cat(g);
  };
  auto total = [](const LossParts& p) { return p.total; };
  for (const auto& k : kinds) {
    LossWeights w;
    w.model = k.model;
    w.beta = k.beta;
    LossParts parts, p0;
    auto full = grad_of(w, &parts, total);
    for (const auto& t : k.terms) {
      SCOPED_TRACE(model_name(k.model) + " term " + t.name);
      EXPECT_NE(t.value(parts).item<double>(), 0.0);
      torch::Tensor without;
      if (t.zero_weight) {
        LossWeights w0 = w;
        t.zero_weight(&w0);
        without = grad_of(w0, &p0, total);
      } else {  // recon has no weight: drop it from the objective
        without = grad_of(w, &p0, [&](const LossParts& p) { return p.total - t.value(p); });
      }
      const double rel = (full - without).norm().item<double>() / full.norm().item<double>();
      std::cout << model_name(k.model) << " " << t.name << ": relative gradient change " << rel << "\n";
      EXPECT_GT(rel, 1e-4);
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
