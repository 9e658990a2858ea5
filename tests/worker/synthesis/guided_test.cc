// MI-guided editing: the guidance gradient against central finite differences
// (float64, tiny critic and eps model), its sign, gamma = 0 = unguided DDIM
// exactly, and batched grid = per-item loop.
#include "worker/synthesis/guided.h"

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
    return b;
  }
};

TEST(GuidedTest, GuidanceGradientMatchesCentralDifferences) {
  Fixture f(torch::kFloat64);
  auto b = f.batch(2, torch::kFloat64, {1.0, 1.0});
  const int64_t t = 12;
  const double a = f.sched.abar(t);
  auto x_t = torch::randn({2, 1, 8, 8}, torch::kFloat64) * 0.3;
  auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, /*clip_x0=*/false);
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

TEST(GuidedTest, GuidedStepLowersTheInfoNceLossOfX0Hat) {
  Fixture f(torch::kFloat64);
  auto b = f.batch(8, torch::kFloat64, std::vector<double>(8, 0.5));
  const int64_t t = 10;
  const double a = f.sched.abar(t);
  auto x_t = torch::randn({8, 1, 8, 8}, torch::kFloat64) * 0.3;
  auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, false);
  auto x0_of = [&](const torch::Tensor& e) { return (x_t - std::sqrt(1 - a) * e) / std::sqrt(a); };
  torch::NoGradGuard ng;
  auto l_plain = guidance_losses(f.critic, x0_of(ge.eps_model), b.z_cand, b.group);
  auto l_guided = guidance_losses(f.critic, x0_of(ge.eps), b.z_cand, b.group);
  // Every item's loss goes down (= its MI bound goes up) with the sign we use.
  EXPECT_TRUE((l_guided < l_plain).all().item<bool>()) << l_plain << l_guided;
}

TEST(GuidedTest, WholeEditRaisesReachedMiMonotonicallyInGamma) {
  // The untrained tiny critic is nearly flat (bounds ~ -0.008 nats), so the
  // effect is small but deterministic: margins seen 1e-6 (gamma 2) .. 2.5e-5 (gamma 50).
  Fixture f(torch::kFloat64);
  GuidedOptions o;
  o.edit_t = 15; o.steps = 8; o.eta = 0.0;
  double prev = -1e9;
  for (double gm : {0.0, 2.0, 10.0, 50.0}) {
    auto b = f.batch(8, torch::kFloat64, std::vector<double>(8, gm));
    double mi = reached_mi(f.critic, guided_edit(f.eps, f.critic, f.sched, b, o), b).mean().item<double>();
    EXPECT_GT(mi, prev + 5e-7) << "gamma " << gm;
    prev = mi;
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
  for (auto dt : {torch::kFloat64, torch::kFloat32}) {
    Fixture f(dt);
    GuidedOptions o;
    o.edit_t = 16; o.steps = 5; o.eta = 0.7;
    auto b = f.batch(7, dt, {2.0, 0.0, 0.0, 5.0, 0.0, 1.0, 3.0});
    auto all = guided_edit(f.eps, f.critic, f.sched, b, o);
    const double tol = dt == torch::kFloat64 ? 1e-10 : 1e-4;
    const int64_t t = 11;
    auto x_t = torch::randn({7, 1, 8, 8}, torch::kFloat64).to(dt) * 0.4;
    auto ge = guided_eps(f.eps, f.critic, f.sched, x_t, t, b, /*clip_x0=*/true);
    ASSERT_TRUE(ge.loss.defined());
    for (int64_t i = 0; i < 7; ++i) {
      auto bi = b.slice(i, i + 1);
      auto one = guided_edit(f.eps, f.critic, f.sched, bi, o);
      EXPECT_LT((one[0] - all[i]).abs().max().item<double>(), tol) << "item " << i << " dtype " << dt;
      auto gi = guided_eps(f.eps, f.critic, f.sched, x_t.slice(0, i, i + 1), t, bi, true);
      EXPECT_LT((gi.eps[0] - ge.eps[i]).abs().max().item<double>(), tol) << "eps item " << i;
      EXPECT_LT((gi.eps_model[0] - ge.eps_model[i]).abs().max().item<double>(), tol) << "eps_model item " << i;
      if (b.gamma[i].item<double>() == 0) {
        EXPECT_EQ(ge.grad[i].abs().max().item<double>(), 0.0) << "gamma-0 item " << i << " got a gradient";
        EXPECT_TRUE(torch::equal(ge.eps[i], ge.eps_model[i]));
      } else {
        EXPECT_GT(ge.grad[i].abs().max().item<double>(), 0.0) << "guided item " << i;
        EXPECT_LT((gi.loss[0] - ge.loss[i]).abs().item<double>(), tol) << "loss item " << i;
      }
    }
    // The gamma == 0 items' losses are filled in too (same value as a guided run of them).
    auto b_all = b;
    b_all.gamma = torch::ones_like(b.gamma);
    auto ge_all = guided_eps(f.eps, f.critic, f.sched, x_t, t, b_all, true);
    EXPECT_LT((ge_all.loss - ge.loss).abs().max().item<double>(), tol);
  }
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
