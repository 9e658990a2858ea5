// `sweep submit`'s record read back by `sweep status` and `sweep cancel`,
// against a fake SLURM (unit).
#include "orchestrator/slurm_submit.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::orch {
namespace {

class FakeSlurm : public slurm::CommandRunner {
 public:
  Result<slurm::CommandOutput> run(const std::vector<std::string>& argv,
                                   const std::map<std::string, std::string>&) override {
    calls.push_back(argv);
    if (argv[0] == "sacct") return slurm::CommandOutput{0, sacct, ""};
    if (argv[0] == "squeue") return slurm::CommandOutput{0, squeue, ""};
    return slurm::CommandOutput{0, "", ""};
  }
  std::string sacct, squeue;
  std::vector<std::vector<std::string>> calls;
};

const char* kRecord = R"({
  "sweep": "s", "submitted_at": "2026-11-25T18:00:00Z",
  "levels": [
    {"stage": "vae", "arrays": ["10", "11"], "array_sizes": [2, 1], "ingest": "12",
     "job_dirs": ["/r/jobs/vae/a", "/r/jobs/vae/b", "/r/jobs/vae/c"]},
    {"stage": "diffusion", "arrays": ["13"], "array_sizes": [1], "ingest": "14",
     "job_dirs": ["/r/jobs/diffusion/d"]}
  ]})";

TEST(SlurmSubmitRecordTest, TaskStatesMapSplitArraysToJobDirsAndClassify) {
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "s.json", kRecord).ok());
  FakeSlurm fake;
  fake.sacct = "10_0|COMPLETED|0:0|0:0\n10_1|TIMEOUT|0:0|0:0\n11_0|PREEMPTED|0:15|0:0\n13_0|RUNNING|0:0|0:0\n";
  fake.squeue = "13_0|RUNNING|None\n";
  auto t = slurm_task_states(tmp / "s.json", &fake, [](double) {});
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(t->size(), 4u);
  EXPECT_EQ((*t)[1].task_id, "10_1");
  EXPECT_EQ((*t)[1].job_dir, "/r/jobs/vae/b");
  EXPECT_EQ((*t)[1].outcome, slurm::Outcome::kTimeout);
  EXPECT_EQ((*t)[2].task_id, "11_0") << "the second array of a split level starts at task 0";
  EXPECT_EQ((*t)[2].job_dir, "/r/jobs/vae/c");
  EXPECT_EQ((*t)[2].outcome, slurm::Outcome::kTemporary);
  EXPECT_EQ((*t)[3].outcome, slurm::Outcome::kStillQueued);
  // sacct was asked from the submission time on, for exactly this sweep's arrays.
  bool asked = false;
  for (auto& c : fake.calls)
    if (c[0] == "sacct") {
      asked = true;
      EXPECT_NE(std::find(c.begin(), c.end(), "2026-11-25T18:00:00"), c.end());
      EXPECT_NE(std::find(c.begin(), c.end(), "10,11,13"), c.end());
    }
  EXPECT_TRUE(asked);
}

TEST(SlurmSubmitRecordTest, CancelTouchesOnlyThisSweepsJobs) {
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "s.json", kRecord).ok());
  FakeSlurm fake;
  auto n = slurm_cancel(tmp / "s.json", &fake);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  ASSERT_EQ(fake.calls.size(), 1u);
  EXPECT_EQ(fake.calls[0], (std::vector<std::string>{"scancel", "10", "11", "12", "13", "14"}));
}

TEST(SlurmSubmitRecordTest, CorruptRecordIsDataLoss) {
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "s.json", "{not json").ok());
  FakeSlurm fake;
  EXPECT_EQ(slurm_cancel(tmp / "s.json", &fake).status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(fake.calls.empty());
}

}  // namespace
}  // namespace migvis::orch
