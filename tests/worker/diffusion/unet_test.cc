#include "worker/diffusion/unet.h"

#include <gtest/gtest.h>

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

int64_t count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(UNetTest, OutputShapeMatchesInput) {
  torch::manual_seed(0);
  UNet net(tiny());
  auto x = torch::randn({3, 1, 8, 8});
  auto out = net->forward(x, torch::tensor({0, 7, 149}, torch::kLong)).pred;
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  // 3 levels, 2 channels, non-square-power default sizes too.
  UNetOptions o = tiny();
  o.mults = {1, 2, 2};
  o.channels = 2;
  o.image_size = 12;
  UNet net3(o);
  auto x3 = torch::randn({2, 2, 12, 12});
  EXPECT_EQ(net3->forward(x3, torch::tensor({1, 2})).pred.sizes(), x3.sizes());
}

TEST(UNetTest, OutputDependsOnTime) {
  torch::manual_seed(1);
  UNet net(tiny());
  auto x = torch::randn({1, 1, 8, 8});
  auto a = net->forward(x, torch::tensor({3})).pred, b = net->forward(x, torch::tensor({120})).pred;
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6);
}

TEST(UNetTest, GradientReachesEveryParameter) {
  torch::manual_seed(2);
  UNet net(tiny());
  auto x = torch::randn({2, 1, 8, 8});
  auto loss = (net->forward(x, torch::tensor({10, 90})).pred - torch::randn({2, 1, 8, 8})).pow(2).mean();
  loss.backward();
  for (auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key() << " gets no gradient";
  }
}

TEST(UNetTest, ResnetBlockParamCountMatchesFormula) {
  // time mlp T*2o + 2o; conv3x3 9*i*o + o; norm o; conv3x3 9*o*o + o; norm o; 1x1 res i*o + o.
  auto expected = [](int64_t i, int64_t o, int64_t T) {
    return T * 2 * o + 2 * o + 9 * i * o + o + o + 9 * o * o + o + o + (i != o ? i * o + o : 0);
  };
  EXPECT_EQ(count(*ResnetBlock(8, 8, 32)), expected(8, 8, 32));
  EXPECT_EQ(count(*ResnetBlock(24, 16, 64)), expected(24, 16, 64));
  // Attention: qkv 1x1 no bias (3 h d c), out 1x1 (h d c + c), pre-norm c; linear adds a post-norm c.
  EXPECT_EQ(count(*Attention(16, 4, 32)), 3 * 128 * 16 + 128 * 16 + 16 + 16);
  EXPECT_EQ(count(*LinearAttention(16, 4, 32)), 3 * 128 * 16 + 128 * 16 + 16 + 16 + 16);
}

TEST(UNetTest, ParamCountsArePlausible) {
  // The paper configuration (width 64, mults 1,2,4,8, 4 heads x 32) is a ~35 M parameter
  // model in the reference implementation; the CPU default is ~2-3 M.
  int64_t paper = UNet(UNetOptions::paper())->num_parameters();
  EXPECT_GT(paper, 30'000'000);
  EXPECT_LT(paper, 40'000'000);
  int64_t cpu = UNet(UNetOptions())->num_parameters();
  EXPECT_GT(cpu, 1'000'000);
  EXPECT_LT(cpu, 4'000'000);
  // Channels only touch the first and last conv.
  UNetOptions o;
  o.channels = 3;
  EXPECT_EQ(UNet(o)->num_parameters() - cpu, 2 * 49 * 32 + 2 * 32 + 2);
}

TEST(UNetTest, RunsInFloat64) {
  torch::manual_seed(3);
  UNet net(tiny());
  net->to(torch::kDouble);
  auto x = torch::randn({1, 1, 8, 8}, torch::kDouble);
  auto out = net->forward(x, torch::tensor({5})).pred;
  EXPECT_EQ(out.scalar_type(), torch::kDouble);
}

TEST(UNetTest, SinusoidalEmbeddingAtZero) {
  auto e = sinusoidal_embedding(torch::tensor({0}), 8);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1, 8}));
  EXPECT_TRUE(torch::allclose(e.slice(1, 0, 4), torch::zeros({1, 4})));
  EXPECT_TRUE(torch::allclose(e.slice(1, 4), torch::ones({1, 4})));
}

TEST(UNetTest, ValidateNamesTheField) {
  UNetOptions o;
  o.image_size = 30;  // 3 levels need a multiple of 4
  auto st = o.validate();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("image_size"), std::string::npos) << st.message();
  o = UNetOptions();
  o.mults = {};
  EXPECT_FALSE(o.validate().ok());
  EXPECT_TRUE(UNetOptions::paper().validate().ok());
}

}  // namespace
}  // namespace migvis::worker::diffusion
