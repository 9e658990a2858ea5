// worker/image_trunk: output size, per-item independence (the guidance of
// worker/synthesis needs each item's gradient to be its own), gradients reach x.
#include <gtest/gtest.h>

#include "worker/image_trunk.h"

namespace migvis::worker {
namespace {

TEST(ImageTrunkTest, OutputHasTwentyWidthsPerItem) {
  torch::manual_seed(0);
  ImageTrunk t(ImageTrunkOptions{1, 8});
  auto y = t->forward(torch::rand({3, 1, 16, 16}) * 2 - 1);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 160}));
  EXPECT_EQ(t->out_features(), 160);
  ImageTrunk rgb(ImageTrunkOptions{3, 4});  // 4 channels: GroupNorm falls back to gcd(8, 4) groups
  EXPECT_EQ(rgb->forward(torch::rand({2, 3, 8, 8})).sizes(), (std::vector<int64_t>{2, 80}));
}

TEST(ImageTrunkTest, ItemsDoNotInfluenceEachOther) {
  torch::manual_seed(1);
  ImageTrunk t(ImageTrunkOptions{1, 8});
  auto x = torch::rand({4, 1, 16, 16}, torch::kFloat64) * 2 - 1;
  t->to(torch::kFloat64);
  auto y = t->forward(x);
  auto x2 = x.clone();
  x2[2] = torch::rand({1, 16, 16}, torch::kFloat64);  // change item 2 only
  auto y2 = t->forward(x2);
  for (int64_t i : {0, 1, 3}) EXPECT_TRUE(torch::allclose(y[i], y2[i], 0, 1e-12)) << "item " << i;
  EXPECT_FALSE(torch::allclose(y[2], y2[2]));
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(torch::allclose(t->forward(x.slice(0, i, i + 1))[0], y[i], 1e-10, 1e-10));
}

TEST(ImageTrunkTest, GradientReachesEveryInputItem) {
  torch::manual_seed(2);
  ImageTrunk t(ImageTrunkOptions{1, 8});
  auto x = (torch::rand({2, 1, 16, 16}) * 2 - 1).requires_grad_(true);
  t->forward(x).pow(2).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  for (int64_t i = 0; i < 2; ++i) EXPECT_GT(x.grad()[i].abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace migvis::worker
