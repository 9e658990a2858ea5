// MI-guided editing: both guidance gradients (x0, unet) against central finite
// differences (float64, tiny critic and eps model), their sign, per-step
// negatives, gamma = 0 = unguided DDIM exactly, batched grid = per-item loop,
// and the deduplicated grid = the grid computed per group.
#include "worker/synthesis/guided.h"

#include <cmath>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "worker/diffusion/sampler.h"

namespace migvis::worker::synthesis {
namespace {

// A tiny smooth eps model: two convs with a timestep-dependent gain.
struct TinyEpsImpl : torch::nn::Module {
  TinyEpsImpl() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 1, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& x, int64_t t) {
    const double gain = 1 + 0.02 * static_cast<double>(t);
    return 0.3 * c2(torch::tanh(c1(x) * gain));
  }
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
};
TORCH_MODULE(TinyEps);

constexpr int64_t kPool = 20;

struct Fixture {
  TinyEps eps_net;
  critic::Critic critic{nullptr};
  diffusion::NoiseSchedule sched;
  EpsFn eps;
  explicit Fixture(torch::Dtype dt) {
    torch::manual_seed(0);
    eps_net = TinyEps();
    eps_net->to(dt);
    critic::CriticOptions o;
    o.groups = 2; o.group_rank = 3; o.image_size_px = 8; o.width = 2; o.feature_dim = 6; o.embed_dim = 4;
    critic = *critic::make_critic(o);
    critic->to(dt);
    critic->eval();
    diffusion::ScheduleOptions so;
    so.timesteps = 20;
    so.schedule = diffusion::BetaSchedule::kLinear;
    sched = diffusion::NoiseSchedule(so);
    eps = [this](const torch::Tensor& x, int64_t t) { return eps_net->forward(x, t); };
  }
  GuidedBatch batch(int64_t n, torch::Dtype dt, std::vector<double> gammas, uint64_t seed = 5) {
    auto gen = at::detail::createCPUGenerator(seed);
    GuidedBatch b;
    b.x_source = (torch::rand({n, 1, 8, 8}, gen, torch::kFloat64) * 1.6 - 0.8).to(dt);
    b.z_cand = torch::randn({n, 11, 3}, gen, torch::kFloat64).to(dt);
    b.group = torch::arange(n, torch::kLong) % 2;
    b.gamma = torch::tensor(gammas, torch::kFloat64).to(dt);
    for (int64_t i = 0; i < n; ++i) b.noise_seed.push_back(100 + i);
    // Pool for per-step negatives: 20 latents of 2 groups x 3 dims.
    b.z_pool = torch::randn({kPool, 6}, gen, torch::kFloat64).to(dt);
    b.target_row = torch::arange(n, torch::kLong) % kPool;
    for (int64_t i = 0; i < n; ++i) b.negative_seed.push_back(900 + i);
    return b;
  }
};

TEST(GuidedTest, GuidanceGradientMatchesCentralDifferences) {
  Fixture f(torch::kFloat64);
  auto b = f.batch(2, torch::kFloat64, {1.0, 1.0});
  const int64_t t = 12;
  const double a = f.sched.abar(t);
  auto x_t = torch::randn({2, 1, 8, 8}, torch::kFloat64) * 0.3;
  auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, /*clip_x0=*/false, GuidanceGrad::kUnet);
  auto total = [&](const torch::Tensor& x) {
    torch::NoGradGuard ng;
    auto eps = f.eps(x, t);
    auto x0 = (x - std::sqrt(1 - a) * eps) / std::sqrt(a);
    return guidance_losses(f.critic, x0, b.z_cand, b.group).sum().item<double>();
  };
  const double h = 1e-6;
  double max_err = 0, max_g = 0;
  auto flat = x_t.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto xp = x_t.clone(), xm = x_t.clone();
    xp.view({-1})[i] += h;
    xm.view({-1})[i] -= h;
    double fd = (total(xp) - total(xm)) / (2 * h);
    double an = ge.grad.view({-1})[i].item<double>();
    max_err = std::max(max_err, std::abs(fd - an));
    max_g = std::max(max_g, std::abs(an));
  }
  EXPECT_GT(max_g, 1e-4);
  EXPECT_LT(max_err, 1e-7 + 1e-6 * max_g) << "max |fd - autograd| = " << max_err << ", max |grad| = " << max_g;
  // eps' = eps + gamma * dL/dx_t.
  EXPECT_TRUE(torch::allclose(ge.eps, ge.eps_model + ge.grad, 0, 1e-12));
}

TEST(GuidedTest, X0GradientMatchesCentralDifferencesWithEpsHeldFixed) {
  // The reference's gradient: eps = model(x_t) is a constant, so the loss is a
  // function of x through x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar) only.
  for (bool clip : {false, true}) {
    Fixture f(torch::kFloat64);
    auto b = f.batch(2, torch::kFloat64, {1.0, 1.0});
    const int64_t t = 12;
    const double a = f.sched.abar(t);
    // Large enough that some x0_hat pixels leave [-1, 1] (the clip matters).
    auto x_t = torch::randn({2, 1, 8, 8}, torch::kFloat64) * 0.8;
    auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, clip, GuidanceGrad::kX0);
    torch::NoGradGuard ng;
    const auto eps0 = f.eps(x_t, t);
    auto total = [&](const torch::Tensor& x) {
      auto x0 = (x - std::sqrt(1 - a) * eps0) / std::sqrt(a);
      return guidance_losses(f.critic, clip ? x0.clamp(-1, 1) : x0, b.z_cand, b.group).sum().item<double>();
    };
    const double h = 1e-6;
    double max_err = 0, max_g = 0;
    for (int64_t i = 0; i < x_t.numel(); ++i) {
      auto xp = x_t.clone(), xm = x_t.clone();
      xp.view({-1})[i] += h;
      xm.view({-1})[i] -= h;
      double fd = (total(xp) - total(xm)) / (2 * h);
      double an = ge.grad.view({-1})[i].item<double>();
      max_err = std::max(max_err, std::abs(fd - an));
      max_g = std::max(max_g, std::abs(an));
    }
    EXPECT_GT(max_g, 1e-4);
    EXPECT_LT(max_err, 1e-7 + 1e-6 * max_g) << "clip " << clip << ": max |fd - analytic| = " << max_err;
    EXPECT_TRUE(torch::allclose(ge.eps, ge.eps_model + ge.grad, 0, 1e-12));
    EXPECT_TRUE(torch::equal(ge.eps_model, eps0));
    if (clip) {
      auto x0 = (x_t - std::sqrt(1 - a) * eps0) / std::sqrt(a);
      ASSERT_GT((x0.abs() > 1).sum().item<int64_t>(), 0) << "no pixel is clipped: the clip case tests nothing";
      // The clip's zero gradient outside [-1, 1] reaches x_t.
      EXPECT_EQ(ge.grad.masked_select(x0.abs() > 1).abs().max().item<double>(), 0.0);
    }
    // A different direction from the full gradient through the model.
    auto gu = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, clip, GuidanceGrad::kUnet);
    EXPECT_GT((gu.grad - ge.grad).abs().max().item<double>(), 1e-3 * max_g);
  }
}

TEST(GuidedTest, GuidedStepLowersTheInfoNceLossOfX0Hat) {
  for (auto kind : {GuidanceGrad::kX0, GuidanceGrad::kUnet}) {
    Fixture f(torch::kFloat64);
    auto b = f.batch(8, torch::kFloat64, std::vector<double>(8, 0.5));
    const int64_t t = 10;
    const double a = f.sched.abar(t);
    auto x_t = torch::randn({8, 1, 8, 8}, torch::kFloat64) * 0.3;
    auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, false, kind);
    auto x0_of = [&](const torch::Tensor& e) { return (x_t - std::sqrt(1 - a) * e) / std::sqrt(a); };
    torch::NoGradGuard ng;
    auto l_plain = guidance_losses(f.critic, x0_of(ge.eps_model), b.z_cand, b.group);
    auto l_guided = guidance_losses(f.critic, x0_of(ge.eps), b.z_cand, b.group);
    // Every item's loss goes down (= its MI bound goes up) with the sign we use.
    EXPECT_TRUE((l_guided < l_plain).all().item<bool>()) << guidance_grad_name(kind) << l_plain << l_guided;
  }
}

TEST(GuidedTest, DefaultsAreTheReferenceGuidance) {
  // docs/METRICS.md ("Guidance"): x0 gradient, negatives redrawn every step, no
  // clip before the critic; the stage's job.yaml keys default to these fields.
  GuidedOptions d;
  EXPECT_EQ(d.grad, GuidanceGrad::kX0);
  EXPECT_TRUE(d.resample_negatives);
  EXPECT_FALSE(d.clip_x0);
  EXPECT_EQ(*parse_guidance_grad("x0"), GuidanceGrad::kX0);
  EXPECT_EQ(*parse_guidance_grad("unet"), GuidanceGrad::kUnet);
  EXPECT_FALSE(parse_guidance_grad("full").ok());
  EXPECT_STREQ(guidance_grad_name(GuidanceGrad::kX0), "x0");
  EXPECT_STREQ(guidance_grad_name(GuidanceGrad::kUnet), "unet");
}

TEST(GuidedTest, NegativeSamplerDrawsNewPoolRowsEveryCallForGuidedItemsOnly) {
  Fixture f(torch::kFloat64);
  auto b = f.batch(4, torch::kFloat64, {1.0, 0.0, 2.0, 3.0});
  NegativeSampler ns(b);
  auto c1 = ns.next(b), c2 = ns.next(b);
  const int64_t k = b.z_cand.size(1) - 1;
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(torch::equal(c1[i][0], b.z_cand[i][0])) << "positive of item " << i;
    EXPECT_TRUE(torch::equal(c2[i][0], b.z_cand[i][0]));
    if (i == 1) {  // gamma 0: candidates untouched
      EXPECT_TRUE(torch::equal(c1[i], b.z_cand[i]));
      EXPECT_TRUE(torch::equal(c2[i], b.z_cand[i]));
      continue;
    }
    EXPECT_FALSE(torch::equal(c1[i], c2[i])) << "item " << i << ": same negatives on two steps";
    const int64_t g = b.group[i].item<int64_t>(), tr = b.target_row[i].item<int64_t>();
    auto pool_g = b.z_pool.slice(1, 3 * g, 3 * g + 3);  // [N, 3]
    for (const auto& c : {c1, c2}) {
      std::set<int64_t> rows;
      for (int64_t j = 1; j <= k; ++j) {
        // Each negative is a pool row in the item's group, never the target, no repeats.
        auto hit = (pool_g - c[i][j]).abs().sum(1).eq(0).nonzero();
        ASSERT_EQ(hit.size(0), 1) << "item " << i << " negative " << j;
        const int64_t r = hit[0][0].item<int64_t>();
        EXPECT_NE(r, tr);
        rows.insert(r);
      }
      EXPECT_EQ(static_cast<int64_t>(rows.size()), k);
    }
  }
  // An item draws the same alone as in the batch.
  auto b3 = b.slice(3, 4);
  NegativeSampler alone(b3);
  EXPECT_TRUE(torch::equal(alone.next(b3)[0], c1[3]));
  EXPECT_TRUE(torch::equal(alone.next(b3)[0], c2[3]));
}

// guided_edit's loop written out (SDEdit start, eta = 0), candidates per step from `cands`.
torch::Tensor manual_edit(Fixture& f, const GuidedBatch& b, const GuidedOptions& o,
                          const std::function<torch::Tensor()>& cands) {
  std::vector<torch::Tensor> start;
  for (uint64_t seed : b.noise_seed) {
    auto g = at::detail::createCPUGenerator(seed);
    start.push_back(torch::randn(b.x_source.sizes().slice(1), g, b.x_source.options()));
  }
  const double a = f.sched.abar(o.edit_t);
  auto x = std::sqrt(a) * b.x_source + std::sqrt(1 - a) * torch::stack(start);
  const auto ts = edit_timesteps(o.edit_t, o.steps);
  GuidedBatch step = b;
  for (size_t i = 0; i + 1 < ts.size(); ++i) {
    step.z_cand = cands();
    auto ge = guided_eps(f.eps, f.critic, f.sched, x, ts[i], step, o.clip_x0, o.grad);
    torch::NoGradGuard ng;
    x = diffusion::ddim_step(f.sched, x, ge.eps, ts[i], ts[i + 1], 0.0, torch::Tensor(), true);
  }
  return x.clamp(-1, 1);
}

TEST(GuidedTest, ResampleOnDrawsNegativesPerStepOffKeepsTheBatchsCandidates) {
  Fixture f(torch::kFloat64);
  GuidedOptions o;
  o.edit_t = 15; o.steps = 5; o.eta = 0.0;
  auto b = f.batch(3, torch::kFloat64, {0.0, 4.0, 8.0});
  // On: every step takes the sampler's next draw (which differs step to step:
  // NegativeSamplerDrawsNewPoolRowsEveryCallForGuidedItemsOnly).
  o.resample_negatives = true;
  auto x_on = guided_edit(f.eps, f.critic, f.sched, b, o);
  NegativeSampler ns(b);
  auto ref_on = manual_edit(f, b, o, [&] { return ns.next(b); });
  EXPECT_LT((x_on - ref_on).abs().max().item<double>(), 1e-12);
  // Off: the batch's fixed z_cand at every step.
  o.resample_negatives = false;
  auto x_off = guided_edit(f.eps, f.critic, f.sched, b, o);
  auto ref_off = manual_edit(f, b, o, [&] { return b.z_cand; });
  EXPECT_LT((x_off - ref_off).abs().max().item<double>(), 1e-12);
  // The choice matters for guided items only.
  EXPECT_TRUE(torch::equal(x_on[0], x_off[0]));
  EXPECT_GT((x_on[1] - x_off[1]).abs().max().item<double>(), 1e-6);
  EXPECT_GT((x_on[2] - x_off[2]).abs().max().item<double>(), 1e-6);
  // Off needs no pool.
  auto bare = b;
  bare.z_pool = torch::Tensor();
  bare.target_row = torch::Tensor();
  bare.negative_seed.clear();
  EXPECT_TRUE(torch::equal(guided_edit(f.eps, f.critic, f.sched, bare, o), x_off));
}

TEST(GuidedTest, WholeEditRaisesReachedMiMonotonicallyInGamma) {
  // The untrained tiny critic is nearly flat, so the effect is small but
  // deterministic. reached_mi scores the fixed candidates, so the edit uses them
  // too. Bounds seen (nats): unet 0.00564, 0.01236, 0.01254, 0.01373 at gamma 0,
  // 2, 10, 50; x0 0.00564, 0.012362, 0.012388 at 0, 2, 10, then falling slowly
  // (0.012334 at 50): abar(15) of this 20-step schedule is tiny, so the x0_hat
  // step gamma * sqrt(1 - abar) / abar * dL/dx0_hat overshoots the critic's
  // optimum beyond gamma ~ 10 (the unet gradient's model Jacobian damps it).
  struct Case { GuidanceGrad kind; std::vector<double> gammas; };
  for (const auto& c : {Case{GuidanceGrad::kUnet, {0.0, 2.0, 10.0, 50.0}}, Case{GuidanceGrad::kX0, {0.0, 2.0, 10.0}}}) {
    Fixture f(torch::kFloat64);
    GuidedOptions o;
    o.edit_t = 15; o.steps = 8; o.eta = 0.0; o.grad = c.kind; o.resample_negatives = false; o.clip_x0 = true;
    double prev = -1e9;
    for (double gm : c.gammas) {
      auto b = f.batch(8, torch::kFloat64, std::vector<double>(8, gm));
      double mi = reached_mi(f.critic, guided_edit(f.eps, f.critic, f.sched, b, o), b).mean().item<double>();
      EXPECT_GT(mi, prev + 5e-7) << guidance_grad_name(c.kind) << " gamma " << gm;
      prev = mi;
    }
  }
}

TEST(GuidedTest, GammaZeroItemsEqualUnguidedDdimExactly) {
  for (auto mode : {StartMode::kSdedit, StartMode::kInvert}) {
    Fixture f(torch::kFloat32);
    GuidedOptions o;
    o.edit_t = 15; o.steps = 6; o.eta = 0.5; o.mode = mode;
    auto mixed = f.batch(4, torch::kFloat32, {0.0, 3.0, 0.0, 3.0});
    auto plain = f.batch(4, torch::kFloat32, {0.0, 0.0, 0.0, 0.0});
    auto xm = guided_edit(f.eps, f.critic, f.sched, mixed, o);
    auto xp = guided_edit(f.eps, f.critic, f.sched, plain, o);
    EXPECT_TRUE(torch::equal(xm[0], xp[0]));
    EXPECT_TRUE(torch::equal(xm[2], xp[2]));
    EXPECT_GT((xm[1] - xp[1]).abs().max().item<double>(), 1e-4);  // guidance did something
  }
}

TEST(GuidedTest, GammaZeroEqualsDiffusionDdimSample) {
  // Unguided reference: worker/diffusion's own DDIM loop from the same SDEdit start.
  Fixture f(torch::kFloat32);
  GuidedOptions o;
  o.edit_t = 15; o.steps = 6; o.eta = 0.0;
  auto b = f.batch(3, torch::kFloat32, {0.0, 0.0, 0.0});
  auto x = guided_edit(f.eps, f.critic, f.sched, b, o);
  std::vector<torch::Tensor> start;
  for (int64_t i = 0; i < 3; ++i) {
    auto g = at::detail::createCPUGenerator(b.noise_seed[i]);
    start.push_back(torch::randn({1, 8, 8}, g, torch::kFloat32));
  }
  const double a = f.sched.abar(15);
  auto x_start = std::sqrt(a) * b.x_source + std::sqrt(1 - a) * torch::stack(start);
  diffusion::DdimOptions d;
  d.steps = 6; d.eta = 0; d.t_start = 15;
  torch::NoGradGuard ng;
  auto ref = diffusion::ddim_sample(f.sched, f.eps, x_start, d).clamp(-1, 1);
  EXPECT_TRUE(torch::equal(x, ref)) << (x - ref).abs().max();
}

TEST(GuidedTest, BatchedGridEqualsPerItemLoop) {
  for (auto dt : {torch::kFloat64, torch::kFloat32}) {
    Fixture f(dt);
    GuidedOptions o;
    o.edit_t = 17; o.steps = 5; o.eta = 1.0;
    auto b = f.batch(6, dt, {0.0, 1.0, 2.0, 0.5, 4.0, 1.0});
    auto all = guided_edit(f.eps, f.critic, f.sched, b, o);
    const double tol = dt == torch::kFloat64 ? 1e-10 : 1e-4;
    double worst = 0;
    for (int64_t i = 0; i < 6; ++i) {
      auto one = guided_edit(f.eps, f.critic, f.sched, b.slice(i, i + 1), o);
      worst = std::max(worst, (one[0] - all[i]).abs().max().item<double>());
    }
    EXPECT_LT(worst, tol) << "dtype " << dt;
  }
}

TEST(GuidedTest, MixedBatchEqualsItemsAlone) {
  // A batch mixing gamma == 0 and gamma != 0 items runs the model on two subsets
  // (the guided one with a backward, the rest without); every item's result,
  // guided eps and loss must still be what it gets run alone.
  for (auto dt : {torch::kFloat64, torch::kFloat32})
  for (auto kind : {GuidanceGrad::kX0, GuidanceGrad::kUnet}) {
    Fixture f(dt);
    GuidedOptions o;
    o.edit_t = 16; o.steps = 5; o.eta = 0.7; o.grad = kind;
    auto b = f.batch(7, dt, {2.0, 0.0, 0.0, 5.0, 0.0, 1.0, 3.0});
    auto all = guided_edit(f.eps, f.critic, f.sched, b, o);
    const double tol = dt == torch::kFloat64 ? 1e-10 : 1e-4;
    const int64_t t = 11;
    auto x_t = torch::randn({7, 1, 8, 8}, torch::kFloat64).to(dt) * 0.4;
    auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, /*clip_x0=*/true, kind);
    ASSERT_TRUE(ge.loss.defined());
    for (int64_t i = 0; i < 7; ++i) {
      auto bi = b.slice(i, i + 1);
      auto one = guided_edit(f.eps, f.critic, f.sched, bi, o);
      EXPECT_LT((one[0] - all[i]).abs().max().item<double>(), tol) << "item " << i << " dtype " << dt;
      auto gi = guided_eps(f.eps, f.critic, f.sched, x_t.slice(0, i, i + 1), t, bi, true, kind);
      EXPECT_LT((gi.eps[0] - ge.eps[i]).abs().max().item<double>(), tol) << "eps item " << i;
      EXPECT_LT((gi.eps_model[0] - ge.eps_model[i]).abs().max().item<double>(), tol) << "eps_model item " << i;
      if (b.gamma[i].item<double>() == 0) {
        EXPECT_EQ(ge.grad[i].abs().max().item<double>(), 0.0) << "gamma-0 item " << i << " got a gradient";
        EXPECT_TRUE(torch::equal(ge.eps[i], ge.eps_model[i]));
        EXPECT_TRUE(std::isnan(ge.loss[i].item<double>())) << "gamma-0 item " << i << ": critic loss computed";
      } else {
        EXPECT_GT(ge.grad[i].abs().max().item<double>(), 0.0) << "guided item " << i;
        EXPECT_LT((gi.loss[0] - ge.loss[i]).abs().item<double>(), tol) << "loss item " << i;
      }
    }
  }
}

TEST(GuidedTest, DedupedGridEqualsThePerGroupComputation) {
  // The stage's grid: groups x gammas x pairs, one seed; a pair's source, noise
  // seed and negative seed shared by its groups and gammas. Old: every item
  // computed. New: gamma == 0 items computed once per pair, in chunks of 5 (as
  // the stage does), then copied into every group's slot.
  for (auto dt : {torch::kFloat64, torch::kFloat32})
  for (auto kind : {GuidanceGrad::kX0, GuidanceGrad::kUnet}) {
    Fixture f(dt);
    const int64_t G = 3, P = 2;
    const std::vector<double> gammas = {0.0, 2.0, 5.0};
    auto src = f.batch(P, dt, std::vector<double>(P, 0.0), 11);
    auto zs = f.batch(G * P, dt, std::vector<double>(G * P, 0.0), 12);
    GuidedBatch grid;
    std::vector<torch::Tensor> xs, zc;
    std::vector<int64_t> grp, trow;
    std::vector<double> gam;
    for (int64_t g = 0; g < G; ++g)
      for (double gm : gammas)
        for (int64_t p = 0; p < P; ++p) {
          xs.push_back(src.x_source[p]);
          zc.push_back(zs.z_cand[g * P + p]);
          grp.push_back(g % 2);
          gam.push_back(gm);
          trow.push_back(3 + p);
          grid.noise_seed.push_back(40 + p);
          grid.negative_seed.push_back(70 + p);
        }
    grid.x_source = torch::stack(xs);
    grid.z_cand = torch::stack(zc);
    grid.group = torch::tensor(grp, torch::kLong);
    grid.gamma = torch::tensor(gam, torch::kFloat64).to(dt);
    grid.z_pool = src.z_pool;
    grid.target_row = torch::tensor(trow, torch::kLong);
    GuidedOptions o;
    o.edit_t = 14; o.steps = 4; o.eta = 0.5; o.grad = kind;
    auto old_x = guided_edit(f.eps, f.critic, f.sched, grid, o);

    auto d = dedup_unguided(grid);
    ASSERT_EQ(d.unique.size(), G * P * 2 + P);  // guided items + one gamma-0 item per pair
    EXPECT_EQ(d.saved(), (G - 1) * P);
    std::vector<torch::Tensor> parts;
    for (int64_t c0 = 0; c0 < d.unique.size(); c0 += 5)
      parts.push_back(guided_edit(f.eps, f.critic, f.sched, d.unique.slice(c0, std::min(d.unique.size(), c0 + 5)), o));
    auto new_x = torch::cat(parts).index_select(0, torch::tensor(d.slot, torch::kLong));
    // The model and critic see other batch compositions (14 items in chunks of
    // 5 instead of 18 at once), so the result may differ by float rounding of
    // batched kernels only: 1e-10 (float64) / 1e-5 (float32) on values in [-1, 1].
    const double tol = dt == torch::kFloat64 ? 1e-10 : 1e-5;
    EXPECT_LT((new_x - old_x).abs().max().item<double>(), tol) << guidance_grad_name(kind) << " dtype " << dt;
    // Copies are bitwise copies.
    for (int64_t g = 1; g < G; ++g)
      for (int64_t p = 0; p < P; ++p)
        EXPECT_TRUE(torch::equal(new_x[g * 3 * P + p], new_x[p]));
  }
  // Items differing in source or noise seed are not merged.
  Fixture f(torch::kFloat64);
  auto b = f.batch(4, torch::kFloat64, {0.0, 0.0, 0.0, 1.0});
  b.noise_seed = {1, 1, 2, 1};
  b.x_source[1] = b.x_source[0];
  b.x_source[3] = b.x_source[0];
  auto d = dedup_unguided(b);
  EXPECT_EQ(d.slot, (std::vector<int64_t>{0, 0, 1, 2}));
}

TEST(GuidedTest, DdpmSamplerBatchedEqualsLoopToo) {
  Fixture f(torch::kFloat64);
  GuidedOptions o;
  o.edit_t = 9; o.ddpm = true;
  auto b = f.batch(3, torch::kFloat64, {0.0, 1.0, 3.0});
  auto all = guided_edit(f.eps, f.critic, f.sched, b, o);
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_LT((guided_edit(f.eps, f.critic, f.sched, b.slice(i, i + 1), o)[0] - all[i]).abs().max().item<double>(), 1e-10);
}

TEST(GuidedTest, EditTimestepsRunFromEditTDownToClean) {
  auto ts = edit_timesteps(135, 27);
  ASSERT_EQ(ts.size(), 28u);
  EXPECT_EQ(ts.front(), 135);
  EXPECT_EQ(ts.back(), -1);
  for (size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i], ts[i - 1]);
  EXPECT_EQ(edit_timesteps(3, 10).size(), 5u);
  EXPECT_EQ(edit_timesteps(0, 5), (std::vector<int64_t>{0, -1}));
}

}  // namespace
}  // namespace migvis::worker::synthesis
