// The scheduler core with a fake launcher and a fake clock: ordering,
// concurrency cap, retries, requeues, blocked dependents, cache hits, cancel.
// No sleeps: the fake launcher advances the fake clock to the next exit.
#include "orchestrator/scheduler.h"
#include "orchestrator/executor.h"

#include <algorithm>
#include <deque>

#include <gtest/gtest.h>

namespace migvis::orch {
namespace {

class FakeClock : public Clock {
 public:
  double now_s() override { return t; }
  double t = 0;
};

// Each job (by argv[0]) exits with the codes of its script in turn (0 when the
// script is exhausted), after `duration` fake seconds.
class FakeLauncher : public Launcher {
 public:
  explicit FakeLauncher(FakeClock* c) : clock_(c) {}
  std::map<std::string, std::deque<int>> script;
  std::map<std::string, double> duration;
  std::vector<std::string> started;  // in start order
  size_t max_running = 0;
  std::vector<int64_t> killed;

  Result<int64_t> start(const LaunchSpec& s) override {
    const std::string& name = s.argv.at(0);
    started.push_back(name);
    int code = 0;
    auto& q = script[name];
    if (!q.empty()) {
      code = q.front();
      q.pop_front();
    }
    double d = duration.count(name) ? duration[name] : 1.0;
    int64_t h = next_++;
    running_[h] = {clock_->t + d, code};
    max_running = std::max(max_running, running_.size());
    return h;
  }
  std::optional<std::pair<int64_t, int>> poll() override {
    for (auto it = running_.begin(); it != running_.end(); ++it)
      if (it->second.first <= clock_->t) {
        auto r = std::make_pair(it->first, it->second.second);
        running_.erase(it);
        return r;
      }
    return std::nullopt;
  }
  void wait(double timeout_s) override {
    double next = clock_->t + timeout_s;
    for (auto& [h, e] : running_) next = std::min(next, e.first);
    clock_->t = std::max(clock_->t, next);
  }
  void kill(int64_t h) override {
    killed.push_back(h);
    running_.erase(h);
  }

 private:
  FakeClock* clock_;
  int64_t next_ = 1;
  std::map<int64_t, std::pair<double, int>> running_;  // handle -> (finish time, code)
};

class Hooks : public SchedulerHooks {
 public:
  bool result_ok(size_t, const SchedJob&, int code) override { return code == 0; }
  void on_state(size_t i, const SchedJob& j) override { log.push_back(j.id + ":" + job_state_name(j.state)); }
  bool should_cancel() override { return cancel_after >= 0 && ++polls > cancel_after; }
  std::vector<std::string> log;
  int cancel_after = -1;
  int polls = 0;
};

SchedJob job(const std::string& id, std::vector<size_t> deps = {}) {
  SchedJob j;
  j.id = id;
  j.stage = "s";
  j.deps = std::move(deps);
  j.launch.argv = {id};
  return j;
}

struct Fixture {
  FakeClock clock;
  FakeLauncher launcher{&clock};
  Hooks hooks;
};

TEST(SchedulerTest, DependenciesOrderTheLaunches) {
  Fixture f;
  // a -> b -> d ; a -> c -> d
  std::vector<SchedJob> jobs = {job("a"), job("b", {0}), job("c", {0}), job("d", {1, 2})};
  Scheduler s(jobs, {4, 1}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_TRUE(sum.ok());
  EXPECT_EQ(sum.done, 4u);
  ASSERT_EQ(f.launcher.started.size(), 4u);
  EXPECT_EQ(f.launcher.started.front(), "a");
  EXPECT_EQ(f.launcher.started.back(), "d");
  EXPECT_EQ(f.launcher.max_running, 2u);  // b and c together
  EXPECT_DOUBLE_EQ(f.clock.t, 3.0);       // three levels of 1 s each
}

TEST(SchedulerTest, ConcurrencyCapIsNeverExceeded) {
  Fixture f;
  std::vector<SchedJob> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(job("j" + std::to_string(i)));
  Scheduler s(jobs, {3, 0}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.done, 10u);
  EXPECT_EQ(f.launcher.max_running, 3u);
  EXPECT_DOUBLE_EQ(f.clock.t, 4.0);  // ceil(10 / 3) waves
}

TEST(SchedulerTest, RetriesCrashesUpToTheCapThenFails) {
  Fixture f;
  f.launcher.script["a"] = {70, 137};  // internal error, then killed: 2 attempts, cap 1 retry
  f.launcher.script["b"] = {139, 0};   // crash then ok: retried once, succeeds
  Scheduler s({job("a"), job("b")}, {2, 1}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.done, 1u);
  EXPECT_EQ(sum.failed, 1u);
  EXPECT_EQ(s.jobs()[0].attempts, 2);
  EXPECT_NE(s.jobs()[0].note.find("killed by signal 9"), std::string::npos) << s.jobs()[0].note;
  EXPECT_EQ(s.jobs()[1].attempts, 2);
  EXPECT_EQ(std::count(f.launcher.started.begin(), f.launcher.started.end(), "a"), 2);
}

TEST(SchedulerTest, BadInputIsNotRetriedAndTemporaryFailureRequeuesForFree) {
  Fixture f;
  f.launcher.script["bad"] = {65};
  f.launcher.script["missing"] = {66};
  f.launcher.script["pre"] = {75, 75, 75, 0};
  Scheduler s({job("bad"), job("missing"), job("pre")}, {3, 5}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.failed, 2u);
  EXPECT_EQ(std::count(f.launcher.started.begin(), f.launcher.started.end(), "bad"), 1);
  EXPECT_EQ(std::count(f.launcher.started.begin(), f.launcher.started.end(), "missing"), 1);
  EXPECT_EQ(s.jobs()[2].state, JobState::kDone);
  EXPECT_EQ(s.jobs()[2].requeues, 3);
  EXPECT_EQ(s.jobs()[2].attempts, 1);  // requeues do not count against retries
}

TEST(SchedulerTest, FailureBlocksDependentsTransitivelyAndSummarySaysWhy) {
  Fixture f;
  f.launcher.script["vae"] = {65};
  // vae -> critic -> synth; other is independent and still runs.
  Scheduler s({job("vae"), job("critic", {0}), job("synth", {1}), job("other")}, {2, 1}, &f.launcher, &f.clock,
              &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.failed, 1u);
  EXPECT_EQ(sum.blocked, 2u);
  EXPECT_EQ(sum.done, 1u);
  EXPECT_EQ(s.jobs()[1].state, JobState::kBlocked);
  EXPECT_EQ(s.jobs()[2].state, JobState::kBlocked);
  EXPECT_NE(s.jobs()[1].note.find("upstream s vae failed"), std::string::npos) << s.jobs()[1].note;
  EXPECT_NE(s.jobs()[2].note.find("upstream s vae failed"), std::string::npos) << s.jobs()[2].note;
  EXPECT_EQ(std::count(f.launcher.started.begin(), f.launcher.started.end(), "critic"), 0);
  ASSERT_EQ(sum.lines.size(), 3u);
  EXPECT_NE(sum.lines[0].find("failed"), std::string::npos);
}

TEST(SchedulerTest, CachedJobsAreNotLaunchedAndUnblockDependents) {
  Fixture f;
  auto a = job("a");
  a.state = JobState::kCached;
  auto b = job("b", {0});
  b.state = JobState::kCached;
  Scheduler s({a, b, job("c", {1})}, {2, 1}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.cached, 2u);
  EXPECT_EQ(sum.done, 1u);
  EXPECT_EQ(f.launcher.started, std::vector<std::string>{"c"});
}

TEST(SchedulerTest, CancelKillsRunningAndCancelsPending) {
  Fixture f;
  f.launcher.duration["long"] = 100;
  f.hooks.cancel_after = 2;
  Scheduler s({job("long"), job("after", {0})}, {2, 1}, &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.cancelled, 2u);
  EXPECT_EQ(f.launcher.killed.size(), 1u);
  EXPECT_FALSE(sum.ok());
}

TEST(SchedulerTest, EtaFromFinishedJobs) {
  Fixture f;
  std::vector<SchedJob> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(job("j" + std::to_string(i)));
  f.launcher.duration["j0"] = 2;
  Scheduler s(jobs, {1, 0}, &f.launcher, &f.clock, &f.hooks);
  EXPECT_LT(s.eta_s(), 0);
  s.start_ready();
  f.launcher.wait(10);
  auto e = f.launcher.poll();
  ASSERT_TRUE(e);
  s.on_exit(e->first, e->second);
  EXPECT_DOUBLE_EQ(s.eta_s(), 2.0 * 3);  // 3 remaining x mean 2 s / 1 slot
}

}  // namespace
}  // namespace migvis::orch

namespace migvis::orch {
namespace {

TEST(WorkerArgvTest, MpiExecutorWrapsOnlyDataParallelStages) {
  RunOptions local;
  EXPECT_EQ(worker_argv("/w", "/r/j", "diffusion", 4, local), (std::vector<std::string>{"/w", "--job", "/r/j"}));
  RunOptions mpi;
  mpi.executor = "mpi";
  auto d = worker_argv("/w", "/r/j", "diffusion", 2, mpi);
  ASSERT_GE(d.size(), 8u);
  EXPECT_NE(d[0].find("mpirun"), std::string::npos);
  EXPECT_EQ(std::vector<std::string>(d.end() - 3, d.end()), (std::vector<std::string>{"/w", "--job", "/r/j"}));
  EXPECT_EQ(d[d.size() - 4], "2");
  EXPECT_EQ(d[d.size() - 5], "-np");
  EXPECT_NE(std::find(d.begin(), d.end(), "none"), d.end()) << "--bind-to none keeps threads off one core";
  EXPECT_EQ(worker_argv("/w", "/r/j", "vae", 2, mpi).size(), 3u) << "vae jobs stay single-process";
  EXPECT_EQ(worker_argv("/w", "/r/j", "synthesis", 1, mpi).size(), 3u) << "one rank needs no mpirun";
  mpi.ranks = 3;
  auto s = worker_argv("/w", "/r/j", "synthesis", 1, mpi);
  EXPECT_EQ(s[s.size() - 4], "3") << "--ranks overrides resources.ranks";
}

}  // namespace
}  // namespace migvis::orch
