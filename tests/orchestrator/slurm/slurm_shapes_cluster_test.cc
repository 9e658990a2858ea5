// Per-task dependencies on a real single-node SLURM (label slurm; the private
// cluster of local_cluster.h): a slow or requeued upstream task holds back only
// the downstream task of its own index (aftercorr), where a stage barrier holds
// back all of them. The "worker" is a bash script that sleeps as long as its job
// directory says and stamps its start and end times there.
#include <gtest/gtest.h>

#include <thread>

#include "orchestrator/slurm/submit.h"
#include "tests/orchestrator/slurm/local_cluster.h"
#include "tests/test_util.h"

namespace migvis::slurm {
namespace {

const char* kFakeWorker = R"(#!/bin/bash
d=$1
echo x >>"$d/attempts"
date +%s.%N >"$d/start"
trap 'exit 75' USR1 TERM
s=$(cat "$d/sleep" 2>/dev/null || echo 0)
sleep "$s" &
wait $!
date +%s.%N >"$d/end"
)";

double stamp(const fs::path& f) {
  auto t = read_file(f);
  return t.ok() ? std::stod(*t) : -1;
}

class SlurmShapesTest : public SlurmClusterTest {
 protected:
  // Two levels of n tasks each; up task i sleeps sleeps[i] seconds; down task i
  // reads up task i (per_task: aftercorr; otherwise a barrier on the stage).
  std::vector<Level> two_levels(const fs::path& root, const std::vector<int>& sleeps, bool per_task) {
    const fs::path worker = root / "fake_worker.sh";
    EXPECT_TRUE(write_file_atomic(worker, kFakeWorker).ok());
    std::vector<Level> levels(2);
    for (size_t l = 0; l < 2; ++l) {
      auto& s = levels[l].spec;
      s.sweep = "shapes";
      s.stage = l == 0 ? "up" : "down";
      s.name = "migvis-shapes-" + s.stage;
      s.command = {"/bin/bash", worker.string()};
      s.log_dir = root / "logs";
      s.mem_gb = 0.25;
      s.time_min = 5;
      for (size_t i = 0; i < sleeps.size(); ++i) {
        fs::path d = root / s.stage / std::to_string(i);
        EXPECT_TRUE(make_dirs(d).ok());
        if (l == 0) EXPECT_TRUE(write_file_atomic(d / "sleep", std::to_string(sleeps[i])).ok());
        s.job_dirs.push_back(d);
      }
    }
    levels[1].parents = {0};
    if (per_task)
      for (size_t i = 0; i < sleeps.size(); ++i) levels[1].job_parents.push_back({{0, i}});
    return levels;
  }

  std::vector<std::string> submit(const std::vector<Level>& levels, const fs::path& root, CommandRunner* runner) {
    SubmitOptions o;
    o.script_dir = root / "scripts";
    auto sub = submit_levels(levels, o, runner);
    EXPECT_TRUE(sub.ok()) << sub.status().to_string();
    std::vector<std::string> ids;
    if (sub.ok())
      for (auto& l : *sub) ids.insert(ids.end(), l.array_ids.begin(), l.array_ids.end());
    return ids;
  }
};

TEST_F(SlurmShapesTest, SlowUpstreamTaskHoldsBackOnlyItsOwnDependent) {
  const fs::path root = dir_->path() / "slow";
  SystemCommandRunner runner;
  auto ids = submit(two_levels(root, {15, 0, 0}, true), root, &runner);
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_TRUE(wait_gone(&runner, ids, seconds_left(300, 60))) << "still queued";
  const double up0_end = stamp(root / "up/0/end");
  ASSERT_GT(up0_end, 0) << file_text(root / "logs");
  for (int i : {1, 2}) {
    const fs::path d = root / "down" / std::to_string(i);
    ASSERT_GT(stamp(d / "end"), 0) << "down task " << i << " did not run";
    EXPECT_LT(stamp(d / "end"), up0_end) << "down task " << i << " waited for the slow up task 0";
  }
  EXPECT_GE(stamp(root / "down/0/start"), up0_end) << "down task 0 started before its own parent ended";

  // The same arrays under a stage barrier: every down task waits for the slow one.
  const fs::path broot = dir_->path() / "slow_barrier";
  auto bids = submit(two_levels(broot, {15, 0, 0}, false), broot, &runner);
  ASSERT_EQ(bids.size(), 2u);
  ASSERT_TRUE(wait_gone(&runner, bids, seconds_left(300, 30))) << "still queued";
  const double bup0_end = stamp(broot / "up/0/end");
  for (int i : {0, 1, 2}) EXPECT_GE(stamp(broot / "down" / std::to_string(i) / "start"), bup0_end) << i;
}

TEST_F(SlurmShapesTest, RequeuedUpstreamTaskDelaysOnlyItsOwnDependent) {
  const fs::path root = dir_->path() / "requeue";
  SystemCommandRunner runner;
  auto levels = two_levels(root, {8, 1}, true);
  SubmitOptions o;
  o.script_dir = root / "scripts";
  auto sub = submit_levels(levels, o, &runner);
  ASSERT_TRUE(sub.ok()) << sub.status().to_string();
  const std::string up = (*sub)[0].array_ids[0], down = (*sub)[1].array_ids[0];
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    started = fs::exists(root / "up/0/start");
  }
  ASSERT_TRUE(started) << "up task 0 never started";
  auto rq = runner.run({"scontrol", "requeue", up + "_0"});
  ASSERT_TRUE(rq.ok());
  ASSERT_EQ(rq->exit_code, 0) << rq->err;
  ASSERT_TRUE(wait_gone(&runner, {up, down}, seconds_left(500, 30))) << "still queued";
  auto attempts = read_file(root / "up/0/attempts");
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ(std::count(attempts->begin(), attempts->end(), 'x'), 2) << "up task 0 was not requeued once";
  const double up0_end = stamp(root / "up/0/end");
  ASSERT_GT(up0_end, 0) << "the requeued task did not finish";
  ASSERT_GT(stamp(root / "down/1/end"), 0);
  EXPECT_LT(stamp(root / "down/1/end"), up0_end) << "down task 1 waited for the requeued up task 0";
  ASSERT_GT(stamp(root / "down/0/end"), 0) << "down task 0 never ran after its requeued parent finished";
  EXPECT_GE(stamp(root / "down/0/start"), up0_end);
}

}  // namespace
}  // namespace migvis::slurm
