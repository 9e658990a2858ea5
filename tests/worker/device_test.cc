// Device choice, the device-routing communicator and precision checks: what a
// job with `gpus: 0` does must not depend on CUDA being present.
#include <gtest/gtest.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "schemas/stages.h"
#include "worker/comm.h"
#include "worker/device.h"
#include "worker/precision.h"

namespace migvis::worker {
namespace {

struct CountingProbe {
  int calls = 0;
  bool available = true;
  int count = 2;
  CudaProbe probe() {
    return {[this] { ++calls; return available; }, [this] { ++calls; return count; }};
  }
};

TEST(DeviceTest, ACpuJobNeverAsksCuda) {
  CountingProbe p;
  EXPECT_EQ(resolve_device(0, p.probe(), 3), "cpu");
  EXPECT_EQ(p.calls, 0);
}

TEST(DeviceTest, OneGpuPerRankByLocalRank) {
  CountingProbe p;
  EXPECT_EQ(resolve_device(1, p.probe(), 0), "cuda:0");
  EXPECT_EQ(resolve_device(1, p.probe(), 3), "cuda:1");
  EXPECT_GT(p.calls, 0);
}

TEST(DeviceTest, AskedForAGpuButNoneVisibleFallsBackToCpuAndSaysSo) {
  CountingProbe p;
  p.available = false;
  bool fell_back = false;
  EXPECT_EQ(resolve_device(2, p.probe(), 0, &fell_back), "cpu");
  EXPECT_TRUE(fell_back);
}

// Host communicator double: counts collectives, adds 1 in all_reduce so a test
// sees which tensors it reached.
class FakeHost : public Communicator {
 public:
  int calls = 0;
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "fake"; }
  Status all_reduce_mean(std::vector<at::Tensor>& ts) override {
    ++calls;
    for (auto& t : ts) t.add_(1);
    return Status::Ok();
  }
  Status broadcast(std::vector<at::Tensor>&, int) override { ++calls; return Status::Ok(); }
  Status barrier() override { ++calls; return Status::Ok(); }
  Result<at::Tensor> gather_rows(const at::Tensor& local, int) override { ++calls; return local; }
};

TEST(DeviceTest, CpuTensorsNeverStartTheCudaCommunicator) {
  auto host = std::make_unique<FakeHost>();
  FakeHost* h = host.get();
  int factory_calls = 0;
  DeviceRoutingCommunicator comm(std::move(host), [&]() -> std::unique_ptr<Communicator> {
    ++factory_calls;
    return nullptr;
  });
  std::vector<at::Tensor> ts = {torch::zeros({3}), torch::ones({2}, torch::kDouble)};
  ASSERT_TRUE(comm.all_reduce_mean(ts).ok());
  ASSERT_TRUE(comm.broadcast(ts, 0).ok());
  ASSERT_TRUE(comm.barrier().ok());
  ASSERT_TRUE(comm.gather_rows(torch::zeros({2, 2}), 0).ok());
  EXPECT_EQ(factory_calls, 0);
  EXPECT_FALSE(comm.cuda_backend_requested());
  EXPECT_EQ(comm.name(), "fake");
  EXPECT_EQ(h->calls, 4);
  EXPECT_EQ(ts[0].sum().item<float>(), 3.0f);  // the in-place result reached the caller's tensor
  EXPECT_EQ(comm.size(), 2);
}

TEST(PrecisionTest, ParsesAndRejectsMixedPrecisionOnTheCpu) {
  EXPECT_EQ(*parse_precision("bf16"), Precision::kBf16);
  EXPECT_FALSE(parse_precision("fp8").ok());
  EXPECT_TRUE(check_precision(Precision::kFp32, "cpu", "p").ok());
  EXPECT_TRUE(check_precision(Precision::kBf16, "cuda:0", "p").ok());
  Status st = check_precision(Precision::kFp16, "cpu", "job.yaml: params.precision");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("job.yaml: params.precision: fp16 needs a CUDA device"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("use precision: fp32"), std::string::npos);
}

TEST(PrecisionTest, AutocastGuardIsANoOpOnTheCpu) {
  {
    AutocastGuard g(Precision::kBf16, torch::Device(torch::kCPU));
    EXPECT_FALSE(at::autocast::is_cpu_enabled());
    EXPECT_FALSE(at::autocast::is_enabled());
    auto y = torch::mm(torch::ones({2, 2}), torch::ones({2, 2}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat);
  }
}

TEST(PrecisionTest, LossScalerSkipsOverflowAndHalvesTheScale) {
  LossScaler s(true, 1024.0, 2);
  EXPECT_DOUBLE_EQ(s.scale_loss(torch::ones({})).item<double>(), 1024.0);
  std::vector<torch::Tensor> g = {torch::full({2}, 2048.0)};
  EXPECT_TRUE(s.unscale(g));
  EXPECT_FLOAT_EQ(g[0][0].item<float>(), 2.0f);
  s.update(true);
  s.update(true);
  EXPECT_DOUBLE_EQ(s.scale(), 2048.0);  // grew after growth_interval good steps
  std::vector<torch::Tensor> bad = {torch::tensor({1.0f, std::numeric_limits<float>::infinity()})};
  EXPECT_FALSE(s.unscale(bad));
  s.update(false);
  EXPECT_DOUBLE_EQ(s.scale(), 1024.0);
  LossScaler off(false);
  EXPECT_TRUE(off.unscale(bad));
  EXPECT_DOUBLE_EQ(off.scale(), 1.0);
}

TEST(StageGpuTest, EveryWorkerStageUsesTheGpuAndThePlanCheckSaysSo) {
  for (const auto& s : schema::stages()) {
    if (s.runner != schema::StageRunner::kWorker) continue;
    EXPECT_TRUE(s.uses_gpu) << s.name;
    EXPECT_TRUE(schema::check_stage_gpus(s.name, 1).ok()) << s.name;
  }
  Status st = schema::check_stage_gpus("data", 1);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("stage data"), std::string::npos) << st.message();
  EXPECT_TRUE(schema::check_stage_gpus("data", 0).ok());
  EXPECT_FALSE(schema::check_stage_gpus("vae", -1).ok());
  EXPECT_FALSE(schema::check_stage_gpus("nope", 0).ok());
}

}  // namespace
}  // namespace migvis::worker
