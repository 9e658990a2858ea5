// `sweep submit`'s record read back by `sweep status` and `sweep cancel`,
// against a fake SLURM (unit).
#include "orchestrator/slurm/sweep_status.h"

#include <gtest/gtest.h>

#include "schemas/job_spec.h"
#include "sweeps/sweep.h"
#include "tests/test_util.h"

namespace migvis::orch {
namespace {

// A fake SLURM: canned sacct/squeue output, sbatch answered with ids 100, 101, ...; records every call.
class FakeCluster : public slurm::CommandRunner {
 public:
  Result<slurm::CommandOutput> run(const std::vector<std::string>& argv,
                                   const std::map<std::string, std::string>&) override {
    calls.push_back(argv);
    if (argv[0] == "sacct") return slurm::CommandOutput{0, sacct, ""};
    if (argv[0] == "squeue") return slurm::CommandOutput{0, squeue, ""};
    if (argv[0] == "sbatch") {
      sbatches.push_back(argv);
      return slurm::CommandOutput{0, std::to_string(next_id++) + "\n", ""};
    }
    return slurm::CommandOutput{0, "", ""};
  }
  // The sbatch argv of job arrays (not the ingest jobs) since the last clear.
  std::vector<std::vector<std::string>> arrays() const {
    std::vector<std::vector<std::string>> out;
    for (auto& c : sbatches)
      if (std::find(c.begin(), c.end(), "--wrap") == c.end()) out.push_back(c);
    return out;
  }
  std::string sacct, squeue;
  int next_id = 100;
  std::vector<std::vector<std::string>> calls, sbatches;
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
  FakeCluster fake;
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
  FakeCluster fake;
  auto n = slurm_cancel(tmp / "s.json", &fake);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  ASSERT_EQ(fake.calls.size(), 1u);
  EXPECT_EQ(fake.calls[0], (std::vector<std::string>{"scancel", "10", "11", "12", "13", "14"}));
}

TEST(SlurmSubmitRecordTest, CorruptRecordIsDataLoss) {
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "s.json", "{not json").ok());
  FakeCluster fake;
  EXPECT_EQ(slurm_cancel(tmp / "s.json", &fake).status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(fake.calls.empty());
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// data (1 job) -> vae (2 jobs). Submitted: data = array 100 (+ ingest 101),
// vae = array 102 (+ ingest 103); resubmissions get 104, 105, ...
class SlurmResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string text =
        "sweep: r\nanimals: [a1]\nsessions: [s1]\ndata:\n  params: {preset: tiny, seed: 1}\n"
        "vae:\n  params: {groups: 2, group_rank: 2, epochs: 1}\n  grid:\n    model: [migvis, vae]\n";
    auto p = sweeps::expand_sweep(text, "r.yaml", {});
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    plan = *p;
    ASSERT_EQ(plan.jobs.size(), 3u);
    opts.root = tmp.path();
    opts.self = "/opt/migvis/bin/migvis";
    opts.worker = "/opt/migvis/bin/migvis-worker";
    opts.max_array_size = 1001;
    RunRecorder none;
    auto sub = submit_plan_to_slurm(plan, text, opts, &none, &fake);
    ASSERT_TRUE(sub.ok()) << sub.status().to_string();
    ASSERT_EQ(fake.arrays().size(), 2u);
    fake.sbatches.clear();
  }
  fs::path dir(size_t i) const { return sweeps::job_dir_for(tmp.path(), plan.jobs[i]); }
  std::string key(size_t i) const { return plan.jobs[i].stage + "/" + plan.jobs[i].job_id; }
  void finish(size_t i, const std::string& status = "ok") {
    schema::JobResult r;
    r.job_id = plan.jobs[i].job_id;
    r.stage = plan.jobs[i].stage;
    r.status = status;
    ASSERT_TRUE(schema::write_job_result(r, dir(i)).ok());
  }
  Result<SlurmResumeReport> resume(int retries = -1) {
    fake.sbatches.clear();
    return resume_submitted_sweep(plan, opts, retries, &fake, [](double) {});
  }
  nlohmann::json record() const {
    return nlohmann::json::parse(*read_file(tmp.path() / "slurm" / "r.json"));
  }

  migvis::testing::TempDir tmp;
  sweeps::Plan plan;
  SlurmSubmitOptions opts;
  FakeCluster fake;
};

TEST_F(SlurmResumeTest, PreemptedTaskIsResubmittedWithoutUsingTheBudget) {
  finish(0);
  finish(2);
  fake.sacct = "100_0|COMPLETED|0:0|0:0\n102_0|PREEMPTED|0:15|0:0\n102_1|COMPLETED|0:0|0:0\n";
  for (int round = 0; round < 4; ++round) {  // preempted again and again: never over budget
    auto r = resume(0);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->resubmitted, 1u) << "round " << round;
    EXPECT_EQ(r->over_budget, 0u);
    EXPECT_EQ(r->done, 2u);
    auto arrays = fake.arrays();
    ASSERT_EQ(arrays.size(), 1u);
    EXPECT_TRUE(has(arrays[0], "--array=0-0"));
    for (auto& a : arrays[0]) EXPECT_EQ(a.find("--dependency"), std::string::npos) << "data is done: " << a;
    const std::string task = std::to_string(fake.next_id - 2) + "_0";  // the new array (then its ingest)
    fake.sacct += task + "|PREEMPTED|0:15|0:0\n";
  }
  auto rec = record();
  EXPECT_EQ(rec["jobs"][key(1)]["charged"].size(), 0u);
  EXPECT_EQ(rec["jobs"][key(1)]["free"].size(), 4u);
  EXPECT_EQ(rec["rounds"], 4);
  // The rewritten record maps the newest array to the job: status sees it.
  auto t = slurm_task_states(tmp.path() / "slurm" / "r.json", &fake, [](double) {});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->back().job_dir, dir(1));
}

TEST_F(SlurmResumeTest, FailedTaskIsResubmittedUntilTheBudgetIsSpentAndDependentsAreBlocked) {
  // data fails; SLURM cancels the vae tasks that waited on it.
  fake.sacct = "100_0|FAILED|1:0|0:0\n102_[0-1]|CANCELLED|0:0|0:0\n";
  finish(0, "failed");
  auto r = resume(1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->resubmitted, 3u) << "the failed job and its cancelled dependents";
  EXPECT_FALSE(fs::exists(dir(0) / "result.yaml")) << "the failed attempt's result is cleared";
  auto arrays = fake.arrays();
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_TRUE(has(arrays[0], "--array=0-0"));
  EXPECT_TRUE(has(arrays[1], "--array=0-1"));
  EXPECT_TRUE(has(arrays[1], "--dependency=afterok:104")) << "vae waits for the resubmitted data array";
  EXPECT_TRUE(has(arrays[1], "--kill-on-invalid-dep=yes"));
  EXPECT_EQ(record()["jobs"][key(0)]["charged"], nlohmann::json({"100_0"}));

  // The second attempt fails too: over budget (1 retry), vae blocked, nothing submitted.
  fake.sacct += "104_0|OUT_OF_MEMORY|0:125|0:0\n106_[0-1]|CANCELLED|0:0|0:0\n";
  for (int again = 0; again < 2; ++again) {  // the same verdict each time: no double charge
    r = resume(1);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->resubmitted, 0u);
    EXPECT_EQ(r->over_budget, 1u);
    EXPECT_EQ(r->blocked, 2u);
    EXPECT_TRUE(fake.sbatches.empty());
    EXPECT_EQ(record()["jobs"][key(0)]["charged"], nlohmann::json({"100_0", "104_0"}));
  }
  // A larger budget lets it go again.
  r = resume(2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->resubmitted, 3u);
}

TEST_F(SlurmResumeTest, CompletedJobsAreNeverResubmittedAndQueuedOnesAreLeftAlone) {
  finish(0);
  finish(1);
  fake.sacct = "100_0|COMPLETED|0:0|0:0\n102_0|COMPLETED|0:0|0:0\n102_1|RUNNING|0:0|0:0\n";
  fake.squeue = "102_1|RUNNING|None\n";
  auto r = resume();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->done, 2u);
  EXPECT_EQ(r->queued, 1u);
  EXPECT_EQ(r->resubmitted, 0u);
  EXPECT_TRUE(fake.sbatches.empty());
  EXPECT_EQ(r->retries, 2) << "the record's default budget";
  for (auto& c : fake.calls) EXPECT_NE(c[0], "scancel");
}

TEST_F(SlurmResumeTest, LostTaskIsResubmittedFreeAndWaitsForItsStillRunningParent) {
  // data still running; vae task 0 unknown to SLURM (lost), task 1 pending on data.
  fake.sacct = "100_0|RUNNING|0:0|0:0\n";
  fake.squeue = "100_0|RUNNING|None\n102_1|PENDING|Dependency\n";
  auto r = resume();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->queued, 2u);
  EXPECT_EQ(r->resubmitted, 1u);
  auto arrays = fake.arrays();
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_TRUE(has(arrays[0], "--dependency=afterok:100_0")) << "waits for the parent task still queued";
  EXPECT_FALSE(record()["jobs"].contains(key(1))) << "a lost task is charged nothing";
}

TEST_F(SlurmResumeTest, TaskThatCanNeverStartIsCancelledAndResubmitted) {
  finish(0);
  fake.sacct = "100_0|COMPLETED|0:0|0:0\n";
  fake.squeue = "102_[0-1]|PENDING|DependencyNeverSatisfied\n";
  auto r = resume();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->resubmitted, 2u);
  bool cancelled = false;
  for (auto& c : fake.calls)
    if (c[0] == "scancel") cancelled = has(c, "102_0") && has(c, "102_1");
  EXPECT_TRUE(cancelled);
}

}  // namespace
}  // namespace migvis::orch
