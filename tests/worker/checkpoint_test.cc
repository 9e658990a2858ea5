#include "worker/checkpoint.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::worker {
namespace {

TEST(CheckpointTest, SaveRestoreGivesIdenticalNextLoss) {
  migvis::testing::TempDir tmp;
  torch::manual_seed(0);
  auto make = [] { return torch::nn::Linear(3, 1); };
  torch::Tensor x = torch::randn({8, 3}), y = torch::randn({8, 1});
  auto model = make();
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(0.1));
  auto step = [&](torch::nn::Linear& m, torch::optim::Adam& o) {
    o.zero_grad();
    auto loss = torch::mse_loss(m->forward(x), y);
    loss.backward();
    o.step();
    return loss.item<double>();
  };
  for (int i = 0; i < 3; ++i) step(model, opt);
  Checkpointer ck(tmp.path());
  CheckpointState st;
  st.step = 3;
  st.modules["model"] = model.get();
  st.optimizers["opt"] = &opt;
  st.tensors["curve"] = torch::arange(3);
  ASSERT_TRUE(ck.save(st).ok());
  double expected_next = step(model, opt);

  auto model2 = make();
  torch::optim::Adam opt2(model2->parameters(), torch::optim::AdamOptions(0.1));
  CheckpointState st2;
  st2.modules["model"] = model2.get();
  st2.optimizers["opt"] = &opt2;
  st2.tensors["curve"] = torch::Tensor();
  auto ok = ck.restore_latest(&st2);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  ASSERT_TRUE(*ok);
  EXPECT_EQ(st2.step, 3);
  EXPECT_TRUE(torch::equal(st2.tensors["curve"], torch::arange(3)));
  EXPECT_EQ(step(model2, opt2), expected_next);
}

TEST(CheckpointTest, KeepsOnlyLastN) {
  migvis::testing::TempDir tmp;
  auto model = torch::nn::Linear(2, 2);
  Checkpointer ck(tmp.path(), 2);
  for (int s = 1; s <= 4; ++s) {
    CheckpointState st;
    st.step = s;
    st.modules["m"] = model.get();
    ASSERT_TRUE(ck.save(st).ok());
  }
  EXPECT_EQ(*ck.latest_step(), 4);
  EXPECT_FALSE(fs::exists(tmp / "ckpt/step_2.pt"));
  EXPECT_TRUE(fs::exists(tmp / "ckpt/step_3.pt"));
  EXPECT_TRUE(fs::exists(tmp / "ckpt/step_4.pt"));
}

TEST(CheckpointTest, NoCheckpointRestoresNothing) {
  migvis::testing::TempDir tmp;
  Checkpointer ck(tmp.path());
  CheckpointState st;
  auto r = ck.restore_latest(&st);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

}  // namespace
}  // namespace migvis::worker
