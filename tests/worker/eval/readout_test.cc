// worker/eval/readout: periodic angle heads (read out as cos/sin, compared with
// the wrapped difference) and the per-role change measures.
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "worker/eval/readout.h"

namespace migvis::worker::eval {
namespace {

data::Dataset angles_dataset() {
  data::Dataset d;
  data::Factor rxy;
  rxy.name = "rxy";
  rxy.role = "pose";
  rxy.units = "deg";
  rxy.values = {-180, -90, 0, 90, 179};
  data::Factor ryz = rxy;
  ryz.name = "ryz";
  ryz.values = {-60, -30, 0, 30, 60};
  d.factors = {rxy, ryz};
  return d;
}

TEST(ReadoutTest, FullCircleDegreesArePeriodicAndHalfRangesAreNot) {
  auto heads = heads_for(angles_dataset());
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_TRUE(heads[0].periodic);
  EXPECT_EQ(heads[0].outputs(), 2);
  EXPECT_FALSE(heads[1].periodic);
  EXPECT_EQ(heads[1].outputs(), 1);
}

TEST(ReadoutTest, PoseChangeWrapsAroundTheCircle) {
  auto heads = heads_for(angles_dataset());
  std::vector<torch::Tensor> a = {torch::tensor({179.0f, 10.0f}), torch::tensor({0.0f, 0.0f})};
  std::vector<torch::Tensor> b = {torch::tensor({-179.0f, 100.0f}), torch::tensor({0.0f, 0.0f})};
  auto c = role_changes(heads, a, b, {"pose"});
  // rxy: 2 and 90 degrees; ryz: 0 -> mean over heads, then items: (2/2 + 90/2) / 2 = 23
  ASSERT_EQ(c.size(), 1u);
  EXPECT_NEAR(c[0], 23.0, 1e-4);
}

TEST(ReadoutTest, PeriodicHeadPredictsDegreesFromCosSin) {
  torch::manual_seed(0);
  auto heads = heads_for(angles_dataset());
  ReadoutOptions o;
  o.image_size_px = 16;
  o.width = 4;
  Readout r(o, heads);
  auto out = r->forward(torch::rand({3, 1, 16, 16}));
  EXPECT_EQ(out.outputs[0].sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(out.outputs[1].sizes(), (std::vector<int64_t>{3}));
  auto p = predict(r, torch::rand({3, 1, 16, 16}));
  EXPECT_TRUE((p.values[0] >= -180).all().item<bool>() && (p.values[0] <= 180).all().item<bool>());
}

TEST(ReadoutTest, ConstantAndNearConstantFactorsGetNoHead) {
  auto d = angles_dataset();
  data::Factor rxz = d.factors[1];
  rxz.name = "rxz";
  rxz.values = {0, 0, 0, 0, 0};
  d.factors.push_back(rxz);
  std::vector<std::string> dropped;
  auto heads = heads_for(d, &dropped);
  ASSERT_EQ(heads.size(), 2u);
  for (auto& h : heads) EXPECT_NE(h.name, "rxz");
  EXPECT_EQ(dropped, (std::vector<std::string>{"rxz"}));
  std::vector<float> mostly(100, 1.f);
  mostly[3] = 2.f;
  EXPECT_TRUE(near_constant(mostly));       // 99 of 100 share one value
  EXPECT_TRUE(near_constant({5.f, 5.f + 1e-7f, 5.f}));
  EXPECT_FALSE(near_constant({-60, -30, 0, 30, 60}));
}

// The classical judge reads a planted position (blob x) and class (blob left
// or right of centre) from pixels it never saw.
TEST(ReadoutTest, PixelJudgeReadsPlantedFactorsOnUnseenImages) {
  const int n = 160, s = 12;
  data::Dataset d;
  data::Factor side, x;
  side.name = "side"; side.role = "category"; side.kind = data::FactorKind::kCategorical; side.classes = {"l", "r"};
  x.name = "tx"; x.role = "position"; x.units = "px";
  auto imgs = torch::zeros({n, 1, s, s});
  for (int i = 0; i < n; ++i) {
    const float cx = 1.5f + 9.f * ((i * 37) % n) / (n - 1);
    side.values.push_back(cx > 6.f ? 1.f : 0.f);
    x.values.push_back(cx);
    for (int yy = 0; yy < s; ++yy)
      for (int xx = 0; xx < s; ++xx)
        imgs[i][0][yy][xx] = std::exp(-((xx - cx) * (xx - cx) + (yy - 6.f) * (yy - 6.f)) / 4.f);
  }
  d.factors = {side, x};
  auto heads = heads_for(d);
  ASSERT_EQ(heads.size(), 2u);  // category, then position
  auto targets = targets_for(d, heads);
  auto train = torch::arange(0, 120, torch::kLong), test = torch::arange(120, n, torch::kLong);
  std::vector<torch::Tensor> tr, te;
  for (auto& t : targets) { tr.push_back(t.index_select(0, train)); te.push_back(t.index_select(0, test)); }
  PixelReadoutOptions o;
  o.image_size_px = s;
  o.features = 256;
  PixelReadout judge(o, heads);
  judge.fit(imgs.index_select(0, train), tr);
  auto pred = judge.predict(imgs.index_select(0, test));
  auto sc = score_predictions(heads, pred.values, te);
  EXPECT_GT(sc[0], 0.9);  // accuracy, chance 0.5
  EXPECT_GT(sc[1], 0.8);  // R^2
  EXPECT_GT(chance_corrected(heads[0], sc[0]), 0.8);
  EXPECT_DOUBLE_EQ(chance_corrected(heads[0], 0.5), 0.0);
}

// The random conv features are what lets the pixel judge read a shape
// wherever it sits: bar orientation (horizontal vs vertical) at random
// positions, on unseen images, with and without them.
TEST(ReadoutTest, PixelJudgeConvFeaturesReadShapeAnywhere) {
  const int n = 300, s = 24;
  data::Dataset d;
  data::Factor ori;
  ori.name = "orientation"; ori.role = "category"; ori.kind = data::FactorKind::kCategorical; ori.classes = {"h", "v"};
  auto imgs = torch::full({n, 1, s, s}, 0.3f);
  auto gen = at::detail::createCPUGenerator(5);
  auto pos = torch::randint(4, s - 4, {n, 2}, gen, torch::kLong);
  for (int i = 0; i < n; ++i) {
    const int vertical = i % 2, cx = pos[i][0].item<int>(), cy = pos[i][1].item<int>();
    ori.values.push_back(static_cast<float>(vertical));
    for (int k = -3; k <= 3; ++k)
      for (int w = 0; w <= 1; ++w) {
        if (vertical) imgs[i][0][cy + k][cx + w] = 0.9f;
        else imgs[i][0][cy + w][cx + k] = 0.9f;
      }
  }
  d.factors = {ori};
  auto heads = heads_for(d);
  ASSERT_EQ(heads.size(), 1u);
  auto targets = targets_for(d, heads);
  auto train = torch::arange(0, 200, torch::kLong), test = torch::arange(200, n, torch::kLong);
  auto score = [&](int64_t filters) {
    PixelReadoutOptions o;
    o.image_size_px = 16;
    o.features = 256;
    o.conv_filters = filters;
    o.conv_size_px = s;
    PixelReadout judge(o, heads);
    judge.fit(imgs.index_select(0, train), {targets[0].index_select(0, train)});
    auto pred = judge.predict(imgs.index_select(0, test));
    return score_predictions(heads, pred.values, {targets[0].index_select(0, test)})[0];
  };
  const double with = score(64), without = score(0);
  std::printf("bar orientation at random positions, held-out accuracy: %.3f with conv features, %.3f without\n",
              with, without);
  EXPECT_GT(with, 0.9);
  EXPECT_GT(with, without + 0.1);
}

// An ensemble judge averages its members' outputs, then decodes them as one
// judge would: a class two members lean to, the circular mean of angles, the
// mean of values (not the mean of decoded labels).
TEST(ReadoutTest, AveragedPredictionsDecodeTheMeanOutputs) {
  std::vector<FactorHead> heads(3);
  heads[0].name = "category"; heads[0].role = "category"; heads[0].categorical = true; heads[0].classes = 3;
  heads[1].name = "rxy"; heads[1].role = "pose"; heads[1].periodic = true;
  heads[2].name = "size"; heads[2].role = "size"; heads[2].mean = 10; heads[2].std = 2;
  auto member = [](std::vector<float> probs, double deg, float z) {
    Predictions p;
    p.scores.push_back(torch::tensor(probs).view({1, 3}));
    const double r = deg * M_PI / 180;
    p.scores.push_back(torch::tensor({static_cast<float>(std::cos(r)), static_cast<float>(std::sin(r))}).view({1, 2}));
    p.scores.push_back(torch::tensor({z}));
    p.features = torch::full({1, 2}, z);
    return p;
  };
  // Members' argmax votes are 1, 1, 2; their probabilities (.1 .6 .3), (.1 .5 .4),
  // (0 .1 .9) average to (.07 .40 .53): class 2, not the majority vote.
  auto avg = average_predictions({member({0.1f, 0.6f, 0.3f}, 170, 1.f), member({0.1f, 0.5f, 0.4f}, -170, 2.f),
                                  member({0.0f, 0.1f, 0.9f}, 180, 0.f)},
                                 heads);
  EXPECT_EQ(avg.values[0].item<int64_t>(), 2);
  // 170, -170 and 180 degrees average to 180 on the circle (their plain mean is 60).
  EXPECT_NEAR(std::abs(avg.values[1].item<float>()), 180.f, 1e-3);
  EXPECT_NEAR(avg.values[2].item<float>(), 10.f + 2.f * 1.f, 1e-5);  // mean z = 1
  EXPECT_EQ(avg.features[0][0].item<float>(), 1.f) << "the first member's features";
  // One member: unchanged.
  auto one = average_predictions({member({0.2f, 0.3f, 0.5f}, 45, 0.5f)}, heads);
  EXPECT_EQ(one.scores[0].numel(), 3);
}

TEST(ReadoutTest, JudgeCnnIsNotTheCriticTrunk) {
  // Its own modules (BatchNorm, strided convs), so no parameter layout is shared with worker/image_trunk.
  JudgeTrunk t(1, 8);
  bool has_bn = false;
  for (auto& m : t->modules(false)) has_bn = has_bn || m->name() == "torch::nn::BatchNorm2dImpl";
  EXPECT_TRUE(has_bn);
  t->eval();
  EXPECT_EQ(t->forward(torch::rand({2, 1, 16, 16})).sizes(), (std::vector<int64_t>{2, t->out_features()}));
}

}  // namespace
}  // namespace migvis::worker::eval
