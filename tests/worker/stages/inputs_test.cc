// worker/stages/inputs: the image-training keys shared by the critic and eval
// stages, and keep-the-best-epoch parameter snapshots.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "tests/test_util.h"
#include "worker/stages/inputs.h"

namespace migvis::worker {
namespace {

TEST(StageInputsTest, ImageTrainingParamsDefaultAndNameTheBadKey) {
  YAML::Node none = YAML::Load("{}");
  auto d = read_image_training_params(schema::Params(none, "job.yaml"));
  ASSERT_TRUE(d.ok());
  EXPECT_DOUBLE_EQ(d->augment_noise, 0.1);
  EXPECT_DOUBLE_EQ(d->augment_blur, 0.5);
  EXPECT_TRUE(d->keep_best);
  YAML::Node blur = YAML::Load("{augment_blur: 1.5}");
  auto b = read_image_training_params(schema::Params(blur, "job.yaml"));
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("params.augment_blur"), std::string::npos) << b.status().message();
  YAML::Node noise = YAML::Load("{augment_noise: -0.1}");
  auto n = read_image_training_params(schema::Params(noise, "job.yaml"));
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("params.augment_noise"), std::string::npos) << n.status().message();
}

TEST(StageInputsTest, BestParametersKeepsTheHighestScoreAndRestoresIt) {
  torch::nn::Linear m(2, 1);
  BestParameters best;
  best.restore(*m);  // nothing kept yet: no-op
  torch::NoGradGuard ng;
  m->weight.fill_(1);
  EXPECT_TRUE(best.offer(0.5, *m));
  m->weight.fill_(2);
  EXPECT_FALSE(best.offer(0.4, *m));
  m->weight.fill_(3);
  EXPECT_TRUE(best.offer(0.9, *m));
  m->weight.fill_(4);
  best.restore(*m);
  EXPECT_TRUE(torch::equal(m->weight, torch::full({1, 2}, 3.0)));
}

TEST(StageInputsTest, JudgeSplitIsDeterministicDisjointAndSized) {
  auto a = judge_split(1000, 0.25), b = judge_split(1000, 0.25);
  EXPECT_EQ(a.heldout, b.heldout);
  EXPECT_EQ(a.heldout.size(), 250u);
  EXPECT_EQ(a.critic.size(), 750u);
  std::vector<int64_t> all = a.heldout;
  all.insert(all.end(), a.critic.begin(), a.critic.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(all[i], i);
  for (int64_t i : a.heldout) EXPECT_TRUE(a.is_heldout(i));
  for (int64_t i : a.critic) EXPECT_FALSE(a.is_heldout(i));
  // Spread over the index range, not a block (datasets are ordered by category).
  EXPECT_LT(a.heldout.front(), 50);
  EXPECT_GT(a.heldout.back(), 950);
  // A larger fraction holds out a superset: the order does not depend on it.
  auto c = judge_split(1000, 0.5);
  EXPECT_TRUE(std::includes(c.heldout.begin(), c.heldout.end(), a.heldout.begin(), a.heldout.end()));
  EXPECT_TRUE(judge_split(10, 0).heldout.empty());
}

TEST(StageInputsTest, JudgeSplitRoundTripsThroughHdf5AndRejectsEdits) {
  migvis::testing::TempDir tmp;
  {
    auto af = h5::AtomicFile::create(tmp / "out.h5");
    ASSERT_TRUE(af.ok());
    ASSERT_TRUE(write_judge_split((*af)->file(), judge_split(40, 0.3), 40).ok());
    ASSERT_TRUE((*af)->file().write_vector<int32_t>("bad/judge_heldout", {0, 1, 2}).ok());
    ASSERT_TRUE((*af)->file().set_attr<double>("bad/judge_heldout", "fraction", 0.3).ok());
    ASSERT_TRUE((*af)->file().set_attr<int64_t>("bad/judge_heldout", "images", 40).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  auto f = h5::File::open(tmp / "out.h5");
  ASSERT_TRUE(f.ok());
  auto s = read_judge_split(*f);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->heldout, judge_split(40, 0.3).heldout);
  EXPECT_DOUBLE_EQ(s->fraction, 0.3);
  auto g = f->open_group("bad");
  ASSERT_TRUE(g.ok());
  auto bad = read_judge_split(*g);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  YAML::Node too_big = YAML::Load("{judge_holdout: 0.95}");
  auto r = read_judge_holdout(schema::Params(too_big, "job.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("judge_holdout"), std::string::npos);
}

}  // namespace
}  // namespace migvis::worker
