#include "schemas/job_spec.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::schema {
namespace {

TEST(JobSpecTest, RoundTrip) {
  migvis::testing::TempDir tmp;
  JobSpec s;
  s.job_id = "0123456789abcdef";
  s.hash = std::string(64, 'a');
  s.stage = "vae";
  s.sweep = "quick";
  s.key = {{"animal", "a1"}, {"session", "s1"}};
  s.seed = 42;
  s.params["lr"] = 0.001;
  s.params["groups"] = 4;
  s.inputs = {{"dataset", "/x/d.h5"}};
  s.upstream = {{"data", "dd00dd00dd00dd00"}};
  s.resources.threads = 2;
  ASSERT_TRUE(write_job_spec(s, tmp.path()).ok());
  auto r = read_job_spec(tmp.path());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->job_id, s.job_id);
  EXPECT_EQ(r->stage, "vae");
  EXPECT_EQ(r->key, s.key);
  EXPECT_EQ(r->seed, 42u);
  EXPECT_EQ(r->inputs.at("dataset"), "/x/d.h5");
  EXPECT_EQ(r->upstream, s.upstream);
  EXPECT_EQ(r->resources.threads, 2);
  Params p(r->params, "job.yaml");
  EXPECT_DOUBLE_EQ(*p.get_double("lr", 0), 0.001);
  EXPECT_EQ(*p.get_int("groups", 0), 4);
  EXPECT_EQ(*p.get_int("missing", 7), 7);
}

TEST(JobSpecTest, ParamsErrorsNameKeyAndLine) {
  YAML::Node n = YAML::Load("lr: fast\nbatch: 3\n");
  Params p(n, "sweep.yaml");
  auto r = p.get_double("lr", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sweep.yaml:1: params.lr: expected a number, got \"fast\""), std::string::npos)
      << r.status().message();
  Status st = p.check_known({"lr"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("params.batch: unknown key"), std::string::npos) << st.message();
}

TEST(JobSpecTest, MalformedJobYamlIsInvalidArgument) {
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "job.yaml", "format: migvis-job/1\njob_id: [1, 2\n").ok());
  auto r = read_job_spec(tmp.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("job.yaml"), std::string::npos);
}

TEST(JobResultTest, RoundTripKeepsMetricsExactly) {
  migvis::testing::TempDir tmp;
  JobResult r;
  r.job_id = "abc";
  r.stage = "vae";
  r.metrics = {{"test_r2", 0.123456789012345}, {"mig", 1e-9}};
  r.artifacts = {{"latents", "out.h5", "/latents"}};
  ASSERT_TRUE(write_job_result(r, tmp.path()).ok());
  auto back = read_job_result(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->metrics.at("test_r2"), 0.123456789012345);
  EXPECT_EQ(back->metrics.at("mig"), 1e-9);
  ASSERT_EQ(back->artifacts.size(), 1u);
  EXPECT_EQ(back->artifacts[0].h5, "/latents");
}

}  // namespace
}  // namespace migvis::schema
