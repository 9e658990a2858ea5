// The path every cluster user takes, at sweeps/paper.yaml's model sizes, on the
// CPU: 128 x 128 images, UNet width 64, mults 1,2,4,8, T = 150 (35.7 M
// parameters), 2 training steps, a 2-step guided synthesis over 2 groups x 2
// gammas, 1 eval epoch, on 24 toy images. Checks shapes, finite losses and
// reports the process's peak RSS (getrusage), recorded in docs/BENCHMARKS.md.
#include <sys/resource.h>

#include <cmath>

#include <gtest/gtest.h>

#include "results/h5.h"
#include "tests/test_util.h"
#include "tests/worker/stages/chain.h"

namespace migvis::worker {
namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

TEST(PaperScaleTest, EveryStageRunsAtThePaperConfiguration) {
  migvis::testing::TempDir tmp;
  migvis::testing::ChainConfig c;
  c.n_images = 24;
  c.image_px = 128;
  c.vae = "{groups: 4, group_rank: 6, epochs: 1, batch: 64, eval_every: 1, eval_pairs: 200}";
  c.diffusion = "{image_size: 128, width: 64, mults: [1, 2, 4, 8], timesteps: 150, schedule: sigmoid, steps: 2, "
                "batch: 2, grad_accum: 1, log_every: 1, checkpoint_every: 0, sample_count: 1, sample_steps: 2}";
  c.critic = "{epochs: 1, batch: 8, negatives: 10}";
  c.synthesis = "{groups: [1, 2], gammas: [0, 10], pairs: 1, seeds: 1, edit_t: 135, steps: 2, negatives: 10}";
  c.eval = "{epochs: 1, batch: 8, min_readout: -100}";
  auto runs = migvis::testing::run_chain(tmp.path(), c);
  for (const char* stage : {"vae", "diffusion", "critic", "synthesis", "eval"}) {
    ASSERT_TRUE(runs.count(stage)) << stage << " did not run";
    ASSERT_TRUE(runs[stage].status.ok()) << stage << ": " << runs[stage].status.to_string();
  }
  auto& dm = runs["diffusion"].result.metrics;
  // The paper's UNet: 35.7 M parameters (MIGVIS_METHOD.md); within 1%.
  ASSERT_TRUE(dm.count("unet_params"));
  EXPECT_NEAR(dm["unet_params"], 35.7e6, 0.357e6);
  ASSERT_TRUE(dm.count("final_loss"));
  EXPECT_TRUE(std::isfinite(dm["final_loss"])) << dm["final_loss"];
  EXPECT_TRUE(std::isfinite(runs["vae"].result.metrics["test_r2"]));
  EXPECT_TRUE(std::isfinite(runs["critic"].result.metrics["train_loss"]));

  auto f = h5::File::open(tmp.path() / "synthesis" / "out.h5");
  ASSERT_TRUE(f.ok());
  auto shape = f->shape("images");
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(*shape, (std::vector<hsize_t>{2, 2, 1, 1, 1, 128, 128}));
  auto imgs = f->read<float>("images");
  ASSERT_TRUE(imgs.ok());
  for (float v : imgs->data) ASSERT_TRUE(std::isfinite(v) && v >= 0 && v <= 1) << v;
  auto samples = h5::File::open(tmp.path() / "diffusion" / "out.h5");
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(*samples->shape("samples"), (std::vector<hsize_t>{1, 1, 128, 128}));
  EXPECT_TRUE(fs::exists(tmp.path() / "eval" / "out.h5"));

  const double rss = peak_rss_mib();
  RecordProperty("peak_rss_mib", std::to_string(rss));
  std::printf("paper-scale chain: peak RSS %.0f MiB\n", rss);
  EXPECT_GT(rss, 0.0);
}

}  // namespace
}  // namespace migvis::worker
