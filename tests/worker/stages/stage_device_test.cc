// Every worker stage puts its models on the job's device (StageContext::device,
// resolved once by the worker). Built twice: for "cpu" (label slow) and for
// CUDA (label gpu, MIGVIS_TEST_DEVICE="cuda"; skips where CUDA is absent).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "tests/test_util.h"
#include "tests/worker/stages/chain.h"
#include "worker/device.h"

#ifndef MIGVIS_TEST_DEVICE
#define MIGVIS_TEST_DEVICE "cpu"
#endif

namespace migvis::worker {
namespace {

TEST(StageDeviceTest, EveryStagePutsItsModelsOnTheJobsDevice) {
  std::string device = MIGVIS_TEST_DEVICE;
  if (device != "cpu") {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (this LibTorch or this machine has none)";
    device = resolve_device(1);
    ASSERT_EQ(device.rfind("cuda:", 0), 0u) << device;
  } else {
    ASSERT_EQ(resolve_device(0), "cpu");
  }
  migvis::testing::TempDir tmp;
  migvis::testing::ChainConfig c;
  c.device = device;
  auto runs = migvis::testing::run_chain(tmp.path(), c);
  const std::map<std::string, std::vector<std::string>> expected = {
      {"vae", {"vae"}},           {"diffusion", {"ema", "unet"}},   {"critic", {"critic"}},
      {"synthesis", {"critic", "eps_model"}}, {"eval", {"readout"}}};
  for (auto& [stage, models] : expected) {
    SCOPED_TRACE(stage);
    ASSERT_TRUE(runs.count(stage)) << "stage did not run (an earlier one failed)";
    ASSERT_TRUE(runs[stage].status.ok()) << runs[stage].status.to_string();
    std::vector<std::string> names;
    for (auto& [name, where] : runs[stage].model_devices) {
      names.push_back(name);
      EXPECT_EQ(where, device) << name;
    }
    EXPECT_EQ(names, models);
  }
  // Outputs were written from the host: the synthesized grid and the eval tables exist.
  EXPECT_TRUE(fs::exists(tmp.path() / "synthesis" / "out.h5"));
  EXPECT_TRUE(fs::exists(tmp.path() / "eval" / "out.h5"));
}

}  // namespace
}  // namespace migvis::worker
