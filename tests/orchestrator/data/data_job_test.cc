// The `data` stage runner: job.yaml in, dataset.h5 + result.yaml out.
#include "orchestrator/data/data_job.h"

#include <gtest/gtest.h>

#include "results/dataset_io.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis::data {
namespace {

schema::JobSpec data_spec(const std::string& params_yaml) {
  schema::JobSpec s;
  s.job_id = "00112233aabbccdd";
  s.hash = "00112233aabbccdd";
  s.stage = "data";
  s.sweep = "test";
  s.key = {{"dataset", "synth"}};
  s.seed = 9;
  s.params = YAML::Load(params_yaml);
  return s;
}

TEST(DataJobTest, SynthJobWritesDatasetThenResult) {
  testing::TempDir tmp;
  ASSERT_TRUE(schema::write_job_spec(data_spec("{preset: tiny, seed: 4}"), tmp.path()).ok());
  Status st = run_data_job(tmp.path(), {{"migvis", "test"}});
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto d = read_dataset(tmp / kDatasetFile);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->source, "synth:tiny:seed=4");
  EXPECT_TRUE(fs::exists(tmp / kStimuliGridFile));
  auto r = schema::read_job_result(tmp.path());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, "ok");
  EXPECT_EQ(r->job_id, "00112233aabbccdd");
  EXPECT_EQ(r->metrics.at("num_images"), 64);
  EXPECT_EQ(r->metrics.at("num_sessions"), 6);
  EXPECT_EQ(r->metrics.at("num_animals"), 2);
  EXPECT_EQ(r->versions.at("migvis"), "test");
}

TEST(DataJobTest, JobSeedIsUsedWhenParamsHaveNone) {
  testing::TempDir tmp;
  ASSERT_TRUE(schema::write_job_spec(data_spec("{preset: tiny, poses_per_object: 2}"), tmp.path()).ok());
  ASSERT_TRUE(run_data_job(tmp.path(), {}).ok());
  auto d = read_dataset(tmp / kDatasetFile);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->source, "synth:tiny:seed=9");
  EXPECT_EQ(d->num_images(), 32u);
}

TEST(DataJobTest, UnknownParamFailsNamingTheKeyAndWritesNoDataset) {
  testing::TempDir tmp;
  ASSERT_TRUE(schema::write_job_spec(data_spec("{preset: tiny, sead: 4}"), tmp.path()).ok());
  Status st = run_data_job(tmp.path(), {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("sead"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(tmp / kDatasetFile));
  auto r = schema::read_job_result(tmp.path());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, "failed");
  EXPECT_EQ(r->exit_code, 65);
  EXPECT_NE(r->error.find("sead"), std::string::npos);
}

TEST(DataJobTest, BadValuesAndWrongStageFail) {
  testing::TempDir tmp;
  ASSERT_TRUE(schema::write_job_spec(data_spec("{preset: tiny, categories: 40}"), tmp.path()).ok());
  Status st = run_data_job(tmp.path(), {});
  EXPECT_NE(st.message().find("categories"), std::string::npos) << st.message();
  auto spec = data_spec("{}");
  spec.stage = "vae";
  testing::TempDir tmp2;
  ASSERT_TRUE(schema::write_job_spec(spec, tmp2.path()).ok());
  st = run_data_job(tmp2.path(), {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("stage"), std::string::npos);
  testing::TempDir empty;
  EXPECT_EQ(run_data_job(empty.path(), {}).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(empty / "result.yaml"));
}

}  // namespace
}  // namespace migvis::data
