#include "worker/diffusion/train.h"

#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>

#include "tests/test_util.h"

namespace migvis::worker::diffusion {
namespace {

UNetOptions tiny() {
  UNetOptions o;
  o.width = 8;
  o.mults = {1, 2};
  o.image_size = 8;
  o.attn_heads = 2;
  o.attn_dim_head = 4;
  return o;
}

// Structured toy images in [-1, 1]: a bright square at one of four places.
torch::Tensor toy_images(int64_t n) {
  torch::Tensor x = -torch::ones({n, 1, 8, 8});
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = (i % 2) * 4, c = ((i / 2) % 2) * 4;
    x[i].slice(1, r, r + 4).slice(2, c, c + 4).fill_(1.0);
  }
  return x;
}

// Loss on a fixed (x0, t, noise) batch: a noise-free measure of fit.
double eval_loss(UNet& m, const NoiseSchedule& s, const torch::Tensor& images) {
  torch::NoGradGuard g;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(123);
  torch::Tensor x0 = images.repeat({8, 1, 1, 1});
  torch::Tensor t = torch::randint(0, s.timesteps(), {x0.size(0)}, gen, torch::kLong);
  torch::Tensor noise = torch::randn(x0.sizes(), gen);
  return diffusion_loss(s, m->forward(q_sample(s, x0, t, noise), t).pred, noise, t).loss.item<double>();
}

TrainOptions small_train() {
  TrainOptions t;
  t.batch = 4;
  t.grad_accum = 2;
  t.ema_every = 2;
  t.log_every = 2;
  t.seed = 42;
  return t;
}

TEST(DiffusionTrainTest, ResumeGivesIdenticalNextLoss) {
  migvis::testing::TempDir tmp;
  SingleProcessCommunicator comm;
  NoiseSchedule s;
  Checkpointer ck(tmp.path());
  DiffusionTrainer a(tiny(), s, small_train(), toy_images(8), &comm);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.train_step().ok());
  ASSERT_TRUE(a.save(ck).ok());
  auto next = a.train_step();
  ASSERT_TRUE(next.ok());

  TrainOptions other = small_train();
  DiffusionTrainer b(tiny(), s, other, toy_images(8), &comm);
  auto found = b.restore(ck);
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  ASSERT_TRUE(*found);
  EXPECT_EQ(b.step(), 3);
  ASSERT_EQ(b.loss_curve().size(), 1u);  // window ending at step 2
  EXPECT_EQ(b.loss_curve()[0], a.loss_curve()[0]);
  auto resumed = b.train_step();
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(*resumed, *next);
  // Both now at step 4 with an EMA update: identical EMA weights and curves.
  auto pa = a.ema()->parameters(), pb = b.ema()->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  EXPECT_EQ(a.loss_curve(), b.loss_curve());
}

TEST(DiffusionTrainTest, EmaFollowsTheModelOnlyEveryK) {
  SingleProcessCommunicator comm;
  NoiseSchedule s;
  TrainOptions t = small_train();
  t.ema_every = 3;
  DiffusionTrainer tr(tiny(), s, t, toy_images(8), &comm);
  auto e0 = tr.ema()->parameters()[0].clone();
  ASSERT_TRUE(tr.train_step().ok());
  ASSERT_TRUE(tr.train_step().ok());
  EXPECT_TRUE(torch::equal(tr.ema()->parameters()[0], e0));
  ASSERT_TRUE(tr.train_step().ok());
  EXPECT_FALSE(torch::equal(tr.ema()->parameters()[0], e0));
  EXPECT_FALSE(tr.ema()->parameters()[0].requires_grad());
}

TEST(DiffusionTrainTest, OptionsValidation) {
  TrainOptions t;
  EXPECT_TRUE(t.validate(1).ok());
  t.batch = 63;
  EXPECT_FALSE(t.validate(2).ok());
  t = TrainOptions();
  t.grad_accum = 0;
  EXPECT_FALSE(t.validate(1).ok());
}

TEST(DiffusionTrainSlowTest, ShortTrainingLowersTheLoss) {
  SingleProcessCommunicator comm;
  NoiseSchedule s;
  TrainOptions t = small_train();
  t.batch = 16;
  t.grad_accum = 1;
  t.lr = 2e-3;
  torch::Tensor imgs = toy_images(16);
  DiffusionTrainer tr(tiny(), s, t, imgs, &comm);
  UNet m = tr.model();
  double before = eval_loss(m, s, imgs);
  for (int i = 0; i < 150; ++i) ASSERT_TRUE(tr.train_step().ok());
  double after = eval_loss(m, s, imgs);
  std::cout << "[ info ] fixed-batch loss " << before << " -> " << after << " after 150 steps\n";
  EXPECT_LT(after, 0.6 * before);
  EXPECT_LT(tr.loss_curve().back().second, tr.loss_curve().front().second);
}

}  // namespace
}  // namespace migvis::worker::diffusion
