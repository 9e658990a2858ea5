// InfoNCE critic: the bound's arithmetic, that training raises the held-out
// bound where z determines x, the TorchScript feature-extractor path and the
// save -> load round trip.
#include "worker/critic/critic.h"

#include <gtest/gtest.h>

#include "results/h5.h"
#include "tests/test_util.h"

namespace migvis::worker::critic {
namespace {

TEST(InfoNceTest, BoundIsLogKForPerfectScoresAndZeroForUniform) {
  auto pos = torch::arange(4, torch::kLong);
  auto perfect = torch::eye(4) * 100;
  auto p = info_nce(perfect, pos);
  EXPECT_NEAR(p.mi_bound.item<double>(), std::log(4.0), 1e-6);
  EXPECT_NEAR(p.accuracy.item<double>(), 1.0, 1e-9);
  auto u = info_nce(torch::zeros({4, 4}), pos);
  EXPECT_NEAR(u.mi_bound.item<double>(), 0.0, 1e-6);
}

// Images whose blob position is group 1's latent and whose brightness is
// group 2's first dim (its second dim is pure noise).
struct Pairs {
  torch::Tensor images, latents;
};
Pairs make_pairs(int64_t n, int64_t s, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto z = torch::randn({n, 4}, gen, torch::kFloat32);
  auto coords = torch::linspace(-1, 1, s);
  auto yy = coords.view({1, s, 1}), xx = coords.view({1, 1, s});
  auto cx = torch::tanh(z.select(1, 0)).view({n, 1, 1}) * 0.6, cy = torch::tanh(z.select(1, 1)).view({n, 1, 1}) * 0.6;
  auto amp = torch::sigmoid(2 * z.select(1, 2)).view({n, 1, 1});
  auto img = amp * torch::exp(-((xx - cx).pow(2) + (yy - cy).pow(2)) / 0.08);
  return {img.unsqueeze(1).clamp(0, 1), z};
}

TEST(CriticTest, TrainingRaisesHeldOutBoundWhereLatentDeterminesImage) {
  torch::manual_seed(1);
  auto d = make_pairs(256, 16, 7);
  CriticOptions o;
  o.groups = 2; o.group_rank = 2; o.image_size_px = 16; o.width = 8; o.feature_dim = 32; o.embed_dim = 16;
  auto c = make_critic(o);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  TrainOptions to;
  to.epochs = 25; to.batch = 32; to.negatives = 32; to.lr = 3e-3; to.seed = 3;
  auto rep = train_critic(*c, d.images, d.latents, to);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  ASSERT_EQ(rep->mi_test.size(), 2u);
  const double cap = std::log(static_cast<double>(rep->eval_candidates));
  for (int g = 0; g < 2; ++g) {
    std::cerr << "group " << g + 1 << ": held-out bound " << rep->mi_test_initial[g] << " -> " << rep->mi_test[g]
              << " nats (cap " << cap << ")\n";
    // Margins seen: group 1 0.00 -> 0.91 nats, group 2 0.00 -> 0.59 nats (cap log 51 = 3.93).
    EXPECT_GT(rep->mi_test[g], rep->mi_test_initial[g] + 0.4) << "group " << g + 1;
    EXPECT_LE(rep->mi_test[g], cap + 1e-6);
  }
  EXPECT_LT(rep->train_loss.back().second, rep->train_loss.front().second);
}

// Writes a scripted feature extractor [B, 1, 8, 8] -> [B, 5] with python3-torch.
bool write_scripted_extractor(const fs::path& path) {
  if (testing::run_command("/usr/bin/python3 -c 'import torch'").exit_code != 0) return false;
  std::string py =
      "import torch\n"
      "torch.manual_seed(0)\n"
      "m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),"
      " torch.nn.Linear(3 * 8 * 8, 5))\n"
      "torch.jit.script(m).save('" + path.string() + "')\n";
  fs::path script = path.parent_path() / "make_extractor.py";
  std::ofstream(script) << py;
  auto r = testing::run_command("/usr/bin/python3 " + script.string());
  return r.exit_code == 0 && fs::exists(path);
}

TEST(CriticTest, TorchScriptFeatureExtractorIsFrozenDifferentiableAndRoundTrips) {
  testing::TempDir tmp;
  fs::path ext = tmp / "phi.pt";
  if (!write_scripted_extractor(ext)) MIGVIS_SKIP_WITHOUT("python") << "/usr/bin/python3 with torch not available";
  CriticOptions o;
  o.groups = 2; o.group_rank = 3; o.image_size_px = 8; o.embed_dim = 4;
  o.feature_extractor = ext.string();
  auto c = make_critic(o);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Critic critic = *c;
  EXPECT_EQ(critic->options.feature_dim, 5);
  EXPECT_FALSE(critic->encoder);
  // Only the heads are trainable: the extractor's 3*9+3 + 192*5+5 weights are not in parameters().
  int64_t n_params = 0;
  for (auto& p : critic->parameters()) n_params += p.numel();
  EXPECT_EQ(n_params, 2 * ((3 * 64 + 64) + (64 * 4 + 4) + (5 * 4 + 4)));

  auto x = torch::rand({3, 1, 8, 8}).requires_grad_(true);
  auto h = critic->features(x);
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{3, 5}));
  auto z_cand = torch::randn({3, 4, 3});
  auto loss = critic->item_losses(h, z_cand, torch::tensor({0, 1, 0}, torch::kLong)).sum();
  auto g = torch::autograd::grad({loss}, {x})[0];
  EXPECT_GT(g.abs().sum().item<double>(), 0.0);

  // A little training, then save -> load gives the same scores.
  auto pairs = make_pairs(64, 8, 2);
  auto lat = torch::cat({pairs.latents.slice(1, 0, 3), pairs.latents.slice(1, 1, 4)}, 1);
  TrainOptions to;
  to.epochs = 2; to.batch = 16; to.negatives = 8;
  ASSERT_TRUE(train_critic(critic, pairs.images, lat, to).ok());
  fs::path job = tmp / "job";
  fs::create_directories(job);
  ASSERT_TRUE(save_critic(critic, job).ok());
  {
    auto af = h5::AtomicFile::create(job / "out.h5");
    ASSERT_TRUE(af.ok());
    ASSERT_TRUE(write_critic_config((*af)->file(), critic->options).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  EXPECT_TRUE(fs::exists(job / kExtractorFile));
  fs::remove(ext);  // the job directory must be self-contained
  auto back = load_critic(job);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  torch::NoGradGuard ng;
  critic->eval();
  auto xs = torch::rand({2, 1, 8, 8});
  auto s1 = critic->score_matrix(critic->features(xs), lat.slice(0, 0, 4).slice(1, 0, 3), 1);
  auto s2 = (*back)->score_matrix((*back)->features(xs), lat.slice(0, 0, 4).slice(1, 0, 3), 1);
  EXPECT_TRUE(torch::allclose(s1, s2, 1e-6, 1e-6));
}

TEST(CriticTest, UnreadableExtractorIsInvalidArgument) {
  testing::TempDir tmp;
  std::ofstream(tmp / "bad.pt") << "not a torchscript file";
  CriticOptions o;
  o.feature_extractor = (tmp / "bad.pt").string();
  auto c = make_critic(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("bad.pt"), std::string::npos);
  o.feature_extractor = (tmp / "missing.pt").string();
  EXPECT_EQ(make_critic(o).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace migvis::worker::critic
