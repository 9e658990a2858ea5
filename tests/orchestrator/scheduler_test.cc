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
  // Threads' worth of running jobs: OMP_NUM_THREADS x ranks (FAKE_RANKS).
  int running_threads = 0, max_threads = 0;
  std::map<std::string, size_t> running_at_start;   // name -> jobs running once it started (itself included)
  std::map<std::string, std::map<std::string, std::string>> env;  // name -> env it got

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
    int t = std::stoi(s.env.at("OMP_NUM_THREADS")) * (s.env.count("FAKE_RANKS") ? std::stoi(s.env.at("FAKE_RANKS")) : 1);
    threads_[h] = t;
    running_threads += t;
    max_threads = std::max(max_threads, running_threads);
    running_at_start[name] = running_.size();
    env[name] = s.env;
    return h;
  }
  std::optional<std::pair<int64_t, int>> poll() override {
    for (auto it = running_.begin(); it != running_.end(); ++it)
      if (it->second.first <= clock_->t) {
        auto r = std::make_pair(it->first, it->second.second);
        running_threads -= threads_[it->first];
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
    running_threads -= threads_[h];
    running_.erase(h);
  }

 private:
  FakeClock* clock_;
  int64_t next_ = 1;
  std::map<int64_t, std::pair<double, int>> running_;  // handle -> (finish time, code)
  std::map<int64_t, int> threads_;
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

SchedJob threaded(const std::string& id, int threads, std::vector<size_t> deps = {}, int ranks = 1) {
  SchedJob j = job(id, std::move(deps));
  j.threads = threads;
  j.ranks = ranks;
  if (ranks > 1) j.launch.env["FAKE_RANKS"] = std::to_string(ranks);
  return j;
}

SchedulerOptions cores_opts(int max_parallel, int cores) {
  SchedulerOptions o;
  o.max_parallel = max_parallel;
  o.retries = 0;
  o.cores = cores;
  return o;
}

TEST(SchedulerTest, RunningThreadsNeverExceedCores) {
  Fixture f;
  std::vector<SchedJob> jobs;
  const int threads[] = {1, 2, 3, 1, 2, 1, 3, 2, 1, 1, 2, 3};
  for (int i = 0; i < 12; ++i) {
    jobs.push_back(threaded("j" + std::to_string(i), threads[i]));
    f.launcher.duration["j" + std::to_string(i)] = 1 + i % 3;  // staggered exits
  }
  Scheduler s(jobs, cores_opts(12, 4), &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.done, 12u);
  EXPECT_LE(f.launcher.max_threads, 4);
  EXPECT_EQ(f.launcher.max_threads, 4) << "the cap is reached: jobs do run side by side";
  EXPECT_GT(f.launcher.max_running, 1u);
  EXPECT_EQ(s.running_threads(), 0);
  // Each job got its own thread count and a passive wait policy (it shares the machine).
  EXPECT_EQ(f.launcher.env["j2"].at("OMP_NUM_THREADS"), "3");
  EXPECT_EQ(f.launcher.env["j2"].at("MKL_NUM_THREADS"), "3");
  EXPECT_EQ(f.launcher.env["j2"].at("OPENBLAS_NUM_THREADS"), "3");
  EXPECT_EQ(f.launcher.env["j2"].at("OMP_WAIT_POLICY"), "PASSIVE");
}

TEST(SchedulerTest, WithoutCoresOnlyTheProcessCapApplies) {
  Fixture f;
  std::vector<SchedJob> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(threaded("j" + std::to_string(i), 2));
  Scheduler s(jobs, cores_opts(3, 0), &f.launcher, &f.clock, &f.hooks);
  s.run();
  EXPECT_EQ(f.launcher.max_running, 3u);
  EXPECT_EQ(f.launcher.max_threads, 6);
}

TEST(SchedulerTest, OversizedJobRunsAloneWithCoresThreadsAndSaysSo) {
  Fixture f;
  // small0 starts first (plan order, same priority); big must wait for it, and
  // nothing may start beside big even though small1/small2 are ready.
  std::vector<SchedJob> jobs = {threaded("small0", 1), threaded("big", 8), threaded("small1", 1),
                                threaded("small2", 1)};
  jobs[1].weight = 0.5;  // lowest priority: the small ones go first
  f.launcher.duration["big"] = 5;
  Scheduler s(jobs, cores_opts(4, 2), &f.launcher, &f.clock, &f.hooks);
  auto sum = s.run();
  EXPECT_EQ(sum.done, 4u);
  EXPECT_EQ(f.launcher.running_at_start["big"], 1u) << "big started alone";
  EXPECT_EQ(f.launcher.env["big"].at("OMP_NUM_THREADS"), "2") << "given --cores threads, not its 8";
  EXPECT_EQ(f.launcher.env["big"].count("OMP_WAIT_POLICY"), 0u) << "alone on the machine: no need to wait passively";
  EXPECT_EQ(s.jobs()[1].granted_threads, 2);
  EXPECT_LE(f.launcher.max_threads, 2);
  // While big ran (t in [1, 6) at the earliest), nobody ran beside it.
  auto pos = std::find(f.launcher.started.begin(), f.launcher.started.end(), "big");
  ASSERT_NE(pos, f.launcher.started.end());
  bool says_so = false;
  for (auto& l : f.hooks.log) says_so |= l == "big:running";
  EXPECT_TRUE(says_so);
}

TEST(SchedulerTest, OversizedNoteNamesTheRequestAndTheCap) {
  Fixture f;
  struct NoteHooks : Hooks {
    void on_state(size_t i, const SchedJob& j) override {
      if (j.state == JobState::kRunning) notes.push_back(j.note);
    }
    std::vector<std::string> notes;
  } hooks;
  Scheduler s({threaded("big", 8)}, cores_opts(2, 2), &f.launcher, &f.clock, &hooks);
  s.run();
  ASSERT_EQ(hooks.notes.size(), 1u);
  EXPECT_NE(hooks.notes[0].find("asks for 8 threads > --cores 2"), std::string::npos) << hooks.notes[0];
}

TEST(SchedulerTest, MpiJobsCountRanksTimesThreads) {
  Fixture f;
  // 2 ranks x 2 threads = 4 = all cores: it cannot share with the 1-thread job.
  std::vector<SchedJob> jobs = {threaded("mpi", 2, {}, 2), threaded("one", 1)};
  f.launcher.duration["mpi"] = 3;
  Scheduler s(jobs, cores_opts(4, 4), &f.launcher, &f.clock, &f.hooks);
  s.run();
  EXPECT_EQ(f.launcher.max_running, 1u);
  EXPECT_EQ(f.launcher.max_threads, 4);
  EXPECT_DOUBLE_EQ(f.clock.t, 4.0);  // one after the other

  // 3 ranks x 2 threads > 4 cores: alone, 4 / 3 = 1 thread per rank.
  Fixture g;
  Scheduler t({threaded("mpi3", 2, {}, 3), threaded("one", 1)}, cores_opts(4, 4), &g.launcher, &g.clock, &g.hooks);
  t.run();
  EXPECT_EQ(g.launcher.env["mpi3"].at("OMP_NUM_THREADS"), "1");
  EXPECT_EQ(g.launcher.running_at_start["mpi3"], 1u);
  EXPECT_LE(g.launcher.max_threads, 4);
}

TEST(SchedulerTest, CriticalPathFirstWhenBothAreReady) {
  Fixture f;
  // data -> critic (short) -> synthesis ; data -> diffusion (long) -> synthesis.
  // The plan lists critic before diffusion; with one slot the long diffusion
  // must still start first: it is on the critical path.
  auto data = threaded("data", 1);
  auto critic = threaded("critic", 1, {0});
  critic.weight = 2;
  auto diffusion = threaded("diffusion", 1, {0});
  diffusion.weight = 30;
  auto synth = threaded("synthesis", 1, {1, 2});
  synth.weight = 10;
  Scheduler s({data, critic, diffusion, synth}, cores_opts(1, 1), &f.launcher, &f.clock, &f.hooks);
  EXPECT_DOUBLE_EQ(s.priority(0), 1 + 30 + 10);
  EXPECT_DOUBLE_EQ(s.priority(1), 2 + 10);
  EXPECT_DOUBLE_EQ(s.priority(2), 30 + 10);
  s.run();
  EXPECT_EQ(f.launcher.started, (std::vector<std::string>{"data", "diffusion", "critic", "synthesis"}));
}

TEST(SchedulerTest, ThreadEnvironment) {
  auto alone = thread_env(4, false);
  EXPECT_EQ(alone.at("OMP_NUM_THREADS"), "4");
  EXPECT_EQ(alone.at("MKL_NUM_THREADS"), "4");
  EXPECT_EQ(alone.at("OPENBLAS_NUM_THREADS"), "4");
  EXPECT_EQ(alone.count("OMP_WAIT_POLICY"), 0u);
  EXPECT_EQ(thread_env(1, true).at("OMP_WAIT_POLICY"), "PASSIVE");
  EXPECT_EQ(thread_env(0, true).at("OMP_NUM_THREADS"), "1");
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
