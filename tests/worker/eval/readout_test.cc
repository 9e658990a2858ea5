// worker/eval/readout: periodic angle heads (read out as cos/sin, compared with
// the wrapped difference) and the per-role change measures.
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

}  // namespace
}  // namespace migvis::worker::eval
