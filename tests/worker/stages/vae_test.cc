// The vae stage end to end: through the real migvis-worker binary and in-process
// (stop -> checkpoint -> resume gives the identical result).
#include "worker/stages/vae.h"

#include <gtest/gtest.h>

#include "orchestrator/data/import_util.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"
#include "tests/worker/toy_dataset.h"
#include "worker/comm.h"

namespace migvis::worker {
namespace {

using migvis::testing::TempDir;

schema::JobSpec tiny_job(const fs::path& dataset, const std::string& session = "s1") {
  schema::JobSpec s;
  s.job_id = "00000000000000v1";
  s.stage = "vae";
  s.key = {{"animal", "a1"}, {"session", session}};
  s.seed = 11;
  s.inputs = {{"dataset", dataset.string()}};
  s.resources.threads = 1;
  s.params = YAML::Load("{epochs: 6, eval_every: 2, batch: 32, lr: 0.01, eval_pairs: 400, groups: 3, group_rank: 3}");
  return s;
}

fs::path write_toy(const TempDir& tmp, migvis::testing::ToyOptions o = {}) {
  o.n_images = 120;
  o.n_neurons = 16;
  EXPECT_TRUE(data::write_dataset(migvis::testing::make_toy_dataset(o), tmp / "dataset.h5").ok());
  return tmp / "dataset.h5";
}

TEST(StageVaeTest, WorkerBinaryRunsAJobAndWritesOutputs) {
  TempDir tmp;
  auto ds = write_toy(tmp);
  fs::path job = tmp / "job";
  ASSERT_TRUE(schema::write_job_spec(tiny_job(ds), job).ok());
  auto r = migvis::testing::run_command(migvis::testing::worker_bin() + " --job " + job.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto res = schema::read_job_result(job);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "ok");
  for (const char* k : {"test_r2", "test_mse", "test_bits_per_spike", "train_r2", "mig", "mig_group", "factorvae",
                        "factorvae_group", "sap", "sap_group", "recovery", "truth.g1.pose", "truth.g3.identity"})
    EXPECT_EQ(res->metrics.count(k), 1u) << k;
  EXPECT_GE(res->metrics["recovery"], 0.0);
  EXPECT_LE(res->metrics["recovery"], 1.0);
  auto f = h5::File::open(job / "out.h5");
  ASSERT_TRUE(f.ok());
  auto lat = f->read<float>("latents");
  ASSERT_TRUE(lat.ok());
  EXPECT_EQ(lat->shape, (std::vector<hsize_t>{120, 9}));
  EXPECT_EQ(*f->attr<int32_t>("latents", "groups"), 3);
  EXPECT_EQ(*f->attr<int32_t>("latents", "group_rank"), 3);
  EXPECT_EQ(f->read_vector<int32_t>("latent_image_index")->size(), 120u);
  auto gf = f->read<float>("eval/group_factor");
  ASSERT_TRUE(gf.ok());
  EXPECT_EQ(gf->shape, (std::vector<hsize_t>{3, 3}));  // groups x {pose, category, identity}
  EXPECT_EQ(*f->attr_vector<std::string>("eval/group_factor", "factors"),
            (std::vector<std::string>{"pose", "category", "identity"}));
  EXPECT_EQ(f->read<double>("curves/train_loss")->shape, (std::vector<hsize_t>{6, 2}));
  EXPECT_EQ(f->read<double>("curves/test_loss")->shape, (std::vector<hsize_t>{3, 2}));
  EXPECT_TRUE(fs::exists(job / "model.pt"));
  EXPECT_TRUE(fs::exists(job / "progress.yaml"));
}

TEST(StageVaeTest, UnknownParamAndMissingSessionAreRejected) {
  TempDir tmp;
  auto ds = write_toy(tmp);
  auto spec = tiny_job(ds);
  spec.params["learning_rate"] = 0.1;
  ASSERT_TRUE(schema::write_job_spec(spec, tmp / "j1").ok());
  auto r = migvis::testing::run_command(migvis::testing::worker_bin() + " --job " + (tmp / "j1").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(schema::read_job_result(tmp / "j1")->error.find("learning_rate"), std::string::npos);
  auto spec2 = tiny_job(ds, "s9");
  ASSERT_TRUE(schema::write_job_spec(spec2, tmp / "j2").ok());
  r = migvis::testing::run_command(migvis::testing::worker_bin() + " --job " + (tmp / "j2").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(schema::read_job_result(tmp / "j2")->error.find("sessions of that animal: s1"), std::string::npos);
}

struct InProcess {
  schema::JobResult result;
  SingleProcessCommunicator comm;
  volatile int stop = 0;
  Status run(const schema::JobSpec& spec, const fs::path& dir) {
    StageContext ctx;
    ctx.spec = spec;
    ctx.dir = dir;
    ctx.comm = &comm;
    ctx.result = &result;
    ctx.stop_requested = &stop;
    return run_vae_stage(ctx);
  }
};

std::vector<float> read_floats(const fs::path& file, const std::string& path) {
  auto f = h5::File::open(file);
  return f.ok() ? f->read_vector<float>(path).value() : std::vector<float>{};
}
std::vector<double> read_doubles(const fs::path& file, const std::string& path) {
  auto f = h5::File::open(file);
  return f.ok() ? f->read_vector<double>(path).value() : std::vector<double>{};
}

TEST(StageVaeTest, StopThenResumeGivesTheIdenticalResult) {
  TempDir tmp;
  auto ds = write_toy(tmp);
  auto spec = tiny_job(ds);
  InProcess full;
  ASSERT_TRUE(full.run(spec, tmp / "full").ok());

  InProcess first;
  first.stop = 1;  // stop after the first epoch
  Status st = first.run(spec, tmp / "resumed");
  ASSERT_EQ(st.code(), StatusCode::kCancelled) << st.to_string();
  EXPECT_TRUE(fs::exists(tmp / "resumed/ckpt/latest"));
  EXPECT_FALSE(fs::exists(tmp / "resumed/out.h5"));
  InProcess second;
  ASSERT_TRUE(second.run(spec, tmp / "resumed").ok());

  EXPECT_EQ(read_doubles(tmp / "full/out.h5", "curves/train_loss"),
            read_doubles(tmp / "resumed/out.h5", "curves/train_loss"));
  EXPECT_EQ(read_doubles(tmp / "full/out.h5", "curves/test_loss"),
            read_doubles(tmp / "resumed/out.h5", "curves/test_loss"));
  auto a = read_floats(tmp / "full/out.h5", "latents");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, read_floats(tmp / "resumed/out.h5", "latents"));
  EXPECT_EQ(full.result.metrics, second.result.metrics);
}

TEST(StageVaeTest, PooledModelCoversAllSessions) {
  TempDir tmp;
  migvis::testing::ToyOptions o;
  o.n_sessions = 2;
  auto ds = write_toy(tmp, o);
  auto spec = tiny_job(ds, "pooled");
  spec.params["model"] = "vae";
  spec.params["recon"] = "poisson";
  InProcess p;
  Status st = p.run(spec, tmp / "job");
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_floats(tmp / "job/out.h5", "latents").size(), 120u * 9u);
  EXPECT_GT(p.result.metrics["test_bits_per_spike"], 0.0);
}

// The reference's pose supervision on an HvM-like assembly, with the factor
// roles the Brain-Score importer gives its coordinates: six continuous labels
// (rxy, rxz, ryz, size <- s, tx <- ty, ty <- tz); category and object are not
// labels. HvM's rotations stay within a half circle, so none is split.
TEST(StageVaeTest, PoseFactorsDefaultToTheSixHvmLabels) {
  using data::detail::Column;
  const int n = 12;
  std::vector<Column> cols;
  auto num = [&](const std::string& name, double lo, double hi) {
    Column c;
    c.name = name;
    for (int i = 0; i < n; ++i) c.d.push_back(lo + (hi - lo) * i / (n - 1));
    cols.push_back(c);
  };
  num("rxy", -90, 90);
  num("ryz", -80, 80);
  num("rxz", -70, 70);
  num("s", 0.7, 1.6);
  num("ty", -1, 1);
  num("tz", -0.8, 0.8);
  Column cat, obj;
  cat.name = "category_name";
  obj.name = "object_name";
  cat.is_string = obj.is_string = true;
  for (int i = 0; i < n; ++i) { cat.s.push_back(i % 2 ? "Cars" : "Faces"); obj.s.push_back("o" + std::to_string(i % 4)); }
  cols.push_back(cat);
  cols.push_back(obj);
  std::vector<int64_t> first(n);
  for (int i = 0; i < n; ++i) first[i] = i;
  data::Dataset d;
  d.factors = data::detail::factors_from_columns(cols, first);
  auto labels = pose_labels(d, {});
  ASSERT_TRUE(labels.ok()) << labels.status().to_string();
  std::vector<std::string> names;
  for (auto& l : *labels) names.push_back(l.name());
  EXPECT_EQ(names, (std::vector<std::string>{"rxy", "rxz", "ryz", "size", "tx", "ty"}));
  // A full-circle angle (the synthetic generator's rxy in [-180, 180)) is
  // regressed as (cos, sin), not as the wrapped angle.
  for (auto& f : d.factors)
    if (f.name == "rxy")
      for (int i = 0; i < n; ++i) f.values[i] = -180.f + 359.f * i / (n - 1);
  labels = pose_labels(d, {"rxy", "size"});
  ASSERT_TRUE(labels.ok());
  ASSERT_EQ(labels->size(), 3u);
  EXPECT_EQ((*labels)[0].name(), "rxy.cos");
  EXPECT_EQ((*labels)[1].name(), "rxy.sin");
  EXPECT_NEAR((*labels)[0].value(0), -1.0, 1e-9);  // cos(-180)
  EXPECT_NEAR((*labels)[2].value(0), 0.7, 1e-6);
  // Unknown and categorical names are rejected by key.
  for (auto bad : {"elevation", "category"}) {
    auto r = pose_labels(d, {bad});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("params.pose_factors"), std::string::npos);
  }
}

}  // namespace
}  // namespace migvis::worker
