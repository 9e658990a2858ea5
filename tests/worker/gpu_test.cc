// Runs only where CUDA is available (label gpu); skips itself elsewhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/comm.h"
#include "worker/diffusion/train.h"
#include "worker/device.h"
#include "worker/precision.h"

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

// First-step loss of a tiny UNet at `p` (same weights, batch, t and noise for every p).
double first_loss(Precision p, const std::string& dev) {
  diffusion::UNetOptions u;
  u.width = 16;
  u.mults = {1, 2};
  u.image_size = 16;
  u.attn_heads = 1;
  u.attn_dim_head = 16;
  diffusion::TrainOptions o;
  o.steps = 1;
  o.batch = 8;
  o.grad_accum = 1;
  o.device = dev;
  o.precision = p;
  o.seed = 11;
  SingleProcessCommunicator comm;
  torch::manual_seed(3);
  auto images = torch::rand({16, 1, 16, 16}) * 2 - 1;
  diffusion::DiffusionTrainer tr(u, diffusion::NoiseSchedule(diffusion::ScheduleOptions{}), o, images, &comm);
  auto loss = tr.train_step();
  EXPECT_TRUE(loss.ok()) << loss.status().to_string();
  return loss.ok() ? *loss : std::nan("");
}

TEST(GpuTest, MixedPrecisionGivesTheFp32LossToATolerance) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: bf16/fp16 autocast runs on CUDA only";
  const std::string dev = resolve_device(1);
  const double fp32 = first_loss(Precision::kFp32, dev);
  const double bf16 = first_loss(Precision::kBf16, dev);
  const double fp16 = first_loss(Precision::kFp16, dev);
  ASSERT_TRUE(std::isfinite(fp32));
  // bf16 keeps 8 mantissa bits: a few parts in 100 on a mean of squares; fp16 is tighter.
  EXPECT_NEAR(bf16, fp32, 0.03 * std::abs(fp32));
  EXPECT_NEAR(fp16, fp32, 0.01 * std::abs(fp32));
  EXPECT_NE(bf16, fp32);  // autocast did change the arithmetic
}

#if defined(MIGVIS_HAVE_NCCL) && defined(MIGVIS_HAVE_MPI)
TEST(GpuTest, NcclAllReduceOverOneRank) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto comm = make_nccl_communicator(0);
  ASSERT_NE(comm, nullptr) << "NCCL failed to initialise";
  EXPECT_EQ(comm->name(), "nccl");
  std::vector<at::Tensor> ts = {torch::arange(6, torch::TensorOptions(torch::kFloat).device(torch::kCUDA)),
                                torch::full({3}, 2.0, torch::TensorOptions(torch::kDouble).device(torch::kCUDA))};
  ASSERT_TRUE(comm->all_reduce_mean(ts).ok());  // one rank: the mean is the tensor itself
  EXPECT_TRUE(torch::equal(ts[0].cpu(), torch::arange(6, torch::kFloat)));
  EXPECT_EQ(ts[1].sum().item<double>(), 6.0);
  ASSERT_TRUE(comm->broadcast(ts, 0).ok());
  std::vector<at::Tensor> host = {torch::zeros({2})};
  EXPECT_FALSE(comm->all_reduce_mean(host).ok());  // NCCL takes CUDA tensors only
}
#endif

}  // namespace
}  // namespace migvis::worker
