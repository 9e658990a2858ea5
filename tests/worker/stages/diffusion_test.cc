// Stage `diffusion` end to end through the real migvis-worker binary on a tiny job.
#include <gtest/gtest.h>

#include "results/dataset_io.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"
#include "worker/diffusion/train.h"

namespace migvis {
namespace {

using migvis::testing::run_command;
using migvis::testing::worker_bin;

// 16 toy 12x12 images in [0, 1]: a bright square in one of four places.
fs::path write_toy_dataset(const fs::path& dir) {
  data::Dataset d;
  d.source = "test:toy";
  const hsize_t n = 16, s = 12;
  d.images = h5::Array<float>({n, 1, s, s});
  for (hsize_t i = 0; i < n; ++i) {
    d.stimulus_ids.push_back("img" + std::to_string(i));
    hsize_t r0 = (i % 2) * 6, c0 = ((i / 2) % 2) * 6;
    for (hsize_t r = 0; r < s; ++r)
      for (hsize_t c = 0; c < s; ++c)
        d.images.data[(i * s + r) * s + c] = (r >= r0 && r < r0 + 6 && c >= c0 && c < c0 + 6) ? 0.9f : 0.1f;
  }
  fs::path p = dir / "dataset.h5";
  Status st = data::write_dataset(d, p);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return p;
}

schema::JobSpec tiny_job(const fs::path& dataset) {
  schema::JobSpec s;
  s.job_id = "00000000000000d1";
  s.stage = "diffusion";
  s.key = {{"dataset", "toy"}};
  s.seed = 3;
  s.inputs = {{"dataset", dataset.string()}};
  s.params = YAML::Load(
      "{width: 8, mults: [1, 2], image_size: 8, attn_heads: 2, attn_dim_head: 4, timesteps: 40, steps: 6, "
      "batch: 4, grad_accum: 2, log_every: 2, checkpoint_every: 3, ema_every: 2, sample_count: 4, sample_steps: 5}");
  s.resources.threads = 1;
  return s;
}

TEST(StageDiffusionTest, TinyJobEndToEnd) {
  migvis::testing::TempDir tmp;
  fs::path job = tmp / "job";
  fs::create_directories(job);
  ASSERT_TRUE(schema::write_job_spec(tiny_job(write_toy_dataset(tmp.path())), job).ok());
  auto r = run_command(worker_bin() + " --job " + job.string() + " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto res = schema::read_job_result(job);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "ok");
  EXPECT_GT(res->metrics.at("final_loss"), 0.0);
  EXPECT_TRUE(fs::exists(job / "ckpt/step_3.pt"));
  EXPECT_GT(fs::file_size(job / "samples.png"), 0u);
  auto prog = schema::read_progress(job);
  ASSERT_TRUE(prog.ok());
  EXPECT_EQ(prog->step, 6);

  auto f = h5::File::open(job / "out.h5");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto samples = f->read<float>("samples");
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  EXPECT_EQ(samples->shape, (std::vector<hsize_t>{4, 1, 8, 8}));
  for (float v : samples->data) {
    EXPECT_GE(v, 0.f);
    EXPECT_LE(v, 1.f);
  }
  auto curve = f->read<double>("curves/loss");
  ASSERT_TRUE(curve.ok());
  EXPECT_EQ(curve->shape, (std::vector<hsize_t>{3, 2}));
  EXPECT_EQ(*f->attr<std::string>("config", "schedule"), "sigmoid");
  EXPECT_EQ(*f->attr<int64_t>("config", "T"), 40);

  auto m = worker::diffusion::load_diffusion(job);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->unet_options.image_size, 8);
  EXPECT_EQ(m->schedule.timesteps(), 40);
  auto out = m->unet->forward(torch::zeros({2, 1, 8, 8}), torch::tensor({0, 39})).pred;
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
  auto unet = worker::diffusion::load_diffusion_model(job);
  ASSERT_TRUE(unet.ok());
  EXPECT_TRUE(torch::equal((*unet)->parameters()[0], m->unet->parameters()[0]));
}

TEST(StageDiffusionTest, UnknownParamIsRejectedByName) {
  migvis::testing::TempDir tmp;
  fs::path job = tmp / "job";
  fs::create_directories(job);
  auto spec = tiny_job(write_toy_dataset(tmp.path()));
  spec.params["learning_rate"] = 0.1;
  ASSERT_TRUE(schema::write_job_spec(spec, job).ok());
  auto r = run_command(worker_bin() + " --job " + job.string() + " --threads 1");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto res = schema::read_job_result(job);
  ASSERT_TRUE(res.ok());
  EXPECT_NE(res->error.find("learning_rate"), std::string::npos) << res->error;
}

TEST(StageDiffusionTest, LoaderNamesMissingModel) {
  migvis::testing::TempDir tmp;
  auto m = worker::diffusion::load_diffusion(tmp.path());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("model.pt"), std::string::npos);
}

}  // namespace
}  // namespace migvis
