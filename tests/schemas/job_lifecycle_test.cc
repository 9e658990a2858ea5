// schemas/job_lifecycle: result.yaml is written last with the outcome, except
// after Cancelled/Unavailable (exit 75), which leave the job incomplete.
#include "schemas/job_lifecycle.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::schema {
namespace {

using migvis::testing::TempDir;

TEST(JobLifecycleTest, OkAndFailedWriteResultWithStampsAndExitCode) {
  TempDir tmp;
  JobResult r;
  r.job_id = "j1";
  r.stage = "vae";
  auto out = run_job_lifecycle(tmp.path(), r, {}, [](JobResult& res) {
    EXPECT_FALSE(res.started_at.empty());
    EXPECT_FALSE(res.host.empty());
    res.metrics["m"] = 1;
    return Status::Ok();
  });
  EXPECT_TRUE(out.status.ok() && out.write_status.ok());
  EXPECT_EQ(out.exit_code(), 0);
  auto back = read_job_result(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->status, "ok");
  EXPECT_FALSE(back->finished_at.empty());
  EXPECT_EQ(back->metrics.at("m"), 1);

  JobRunOptions o;
  o.keep_metrics_on_failure = false;
  out = run_job_lifecycle(tmp.path(), r, o, [](JobResult& res) { return Status::InvalidArgument("bad"); });
  EXPECT_EQ(out.exit_code(), 65);
  back = read_job_result(tmp.path());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->status, "failed");
  EXPECT_EQ(back->exit_code, 65);
  EXPECT_NE(back->error.find("bad"), std::string::npos);
  EXPECT_TRUE(back->metrics.empty());
}

TEST(JobLifecycleTest, CancelledOrUnavailableOrNotRootWriteNothing) {
  TempDir tmp;
  for (Status st : {Status::Cancelled("stop"), Status::Unavailable("later")}) {
    JobResult r;
    auto out = run_job_lifecycle(tmp.path(), r, {}, [&](JobResult&) { return st; });
    EXPECT_EQ(out.exit_code(), 75);
    EXPECT_TRUE(leaves_job_incomplete(out.status));
    EXPECT_FALSE(fs::exists(tmp / kResultFile));
  }
  JobResult r;
  JobRunOptions o;
  o.write_result = false;
  auto out = run_job_lifecycle(tmp.path(), r, o, [](JobResult&) { return Status::Ok(); });
  EXPECT_TRUE(out.status.ok());
  EXPECT_EQ(r.status, "ok");
  EXPECT_FALSE(fs::exists(tmp / kResultFile));
}

}  // namespace
}  // namespace migvis::schema
