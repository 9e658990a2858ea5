// worker/stages/inputs: the image-training keys shared by the critic and eval
// stages, and keep-the-best-epoch parameter snapshots.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

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

}  // namespace
}  // namespace migvis::worker
