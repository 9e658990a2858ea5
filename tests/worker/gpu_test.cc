// Runs only where CUDA is available (label gpu); skips itself elsewhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/comm.h"
#include "worker/diffusion/train.h"
#include "worker/device.h"

namespace migvis::worker {
namespace {

TEST(GpuTest, DiffusionTrainsOnTheDeviceTheWorkerPicks) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (this LibTorch or this machine has none)";
  const std::string dev = resolve_device(1);
  ASSERT_EQ(dev.rfind("cuda:", 0), 0u) << dev;
  diffusion::UNetOptions u;
  u.width = 8;
  u.mults = {1, 2};
  u.image_size = 8;
  u.attn_heads = 1;
  u.attn_dim_head = 8;
  diffusion::TrainOptions o;
  o.steps = 2;
  o.batch = 4;
  o.grad_accum = 1;
  o.device = dev;
  SingleProcessCommunicator comm;
  diffusion::DiffusionTrainer tr(u, diffusion::NoiseSchedule(diffusion::ScheduleOptions{}), o,
                                 torch::rand({8, 1, 8, 8}) * 2 - 1, &comm);
  for (int i = 0; i < 2; ++i) {
    auto loss = tr.train_step();
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    EXPECT_TRUE(std::isfinite(*loss));
  }
  for (auto& p : tr.model()->parameters()) EXPECT_TRUE(p.is_cuda());
}

TEST(GpuTest, CpuWhenNoGpuIsAskedFor) { EXPECT_EQ(resolve_device(0), "cpu"); }

}  // namespace
}  // namespace migvis::worker
