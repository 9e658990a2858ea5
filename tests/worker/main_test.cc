// The worker process honours the job-directory contract (schemas/job.md).
#include <gtest/gtest.h>

#include "schemas/code_identity.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"
#include "worker/stages/stage.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

TEST(WorkerMainTest, UnknownStageWritesFailedResultAndExits65) {
  migvis::testing::TempDir tmp;
  schema::JobSpec s;
  s.job_id = "00000000000000aa";
  s.stage = "no-such-stage";
  ASSERT_TRUE(schema::write_job_spec(s, tmp.path()).ok());
  auto r = run_command(migvis::testing::worker_bin() + " --job " + tmp.path().string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto res = schema::read_job_result(tmp.path());
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "failed");
  EXPECT_NE(res->error.find("unknown stage 'no-such-stage'"), std::string::npos) << res->error;
  EXPECT_EQ(res->versions.count("torch"), 1u);
  // Provenance: the commit and whether (and how) the tree differed from it.
  ASSERT_EQ(res->versions.count("git_dirty"), 1u);
  EXPECT_TRUE(res->versions.at("git_dirty") == "clean" || res->versions.at("git_dirty").rfind("dirty-", 0) == 0);
  EXPECT_NE(res->versions.at("build").find("Release"), std::string::npos);
}

// A job planned by a migvis built from other sources: refused before any work,
// naming both fingerprints, unless --allow-code-mismatch.
TEST(WorkerMainTest, CodeMismatchIsRefusedWithExit65NamingBothFingerprints) {
  migvis::testing::TempDir tmp;
  schema::JobSpec s;
  s.job_id = "00000000000000ab";
  s.stage = "eval";
  s.code = "0123456789abcdef";
  const std::string mine = schema::code_fingerprint("eval");
  ASSERT_FALSE(mine.empty());
  ASSERT_NE(mine, s.code);
  ASSERT_TRUE(schema::write_job_spec(s, tmp.path()).ok());
  auto r = run_command(migvis::testing::worker_bin() + " --job " + tmp.path().string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto res = schema::read_job_result(tmp.path());
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "failed");
  EXPECT_NE(res->error.find("0123456789abcdef"), std::string::npos) << res->error;
  EXPECT_NE(res->error.find(mine), std::string::npos) << res->error;
  EXPECT_NE(res->error.find("--allow-code-mismatch"), std::string::npos) << res->error;
  EXPECT_EQ(res->versions.at("code"), mine);

  // Allowed: the job gets past the check (and fails later for its missing inputs).
  fs::remove(tmp / "result.yaml");
  r = run_command(migvis::testing::worker_bin() + " --allow-code-mismatch --job " + tmp.path().string());
  res = schema::read_job_result(tmp.path());
  ASSERT_TRUE(res.ok()) << r.output;
  EXPECT_EQ(res->error.find("0123456789abcdef"), std::string::npos) << res->error;
  EXPECT_EQ(res->versions.at("code_planned"), "0123456789abcdef");
}

TEST(WorkerMainTest, MissingJobYamlExits66WithoutResult) {
  migvis::testing::TempDir tmp;
  auto r = run_command(migvis::testing::worker_bin() + " --job " + tmp.path().string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "result.yaml"));
}

TEST(WorkerMainTest, FindStageListsKnownStages) {
  auto r = worker::find_stage("nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace migvis
