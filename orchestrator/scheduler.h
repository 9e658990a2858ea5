// The scheduler core: runs a DAG of jobs through a Launcher with at most
// `max_parallel` processes and at most `cores` threads' worth of jobs at once
// (each job costs ranks x threads; one asking for more than `cores` runs alone
// with `cores` threads), ready jobs in critical-path order (longest remaining
// weighted path to a sink first), with the exit-code policy of schemas/job.md.
// Synchronous and deterministic given its Launcher and Clock: tests drive it
// with fakes and never sleep. The real process launcher lives in executor.h.
//
// Ownership: the Scheduler borrows the Launcher, Clock and Hooks (they must
// outlive it). Not thread-safe; one thread drives run().
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace migvis::orch {

// What to start for one job.
struct LaunchSpec {
  std::vector<std::string> argv;   // argv[0] is the program
  std::filesystem::path dir;       // the job directory (cwd of the process)
  std::filesystem::path log;       // stdout+stderr are appended here
  std::map<std::string, std::string> env;  // extra environment
};

// Starts, watches and kills job processes.
class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts the process; returns a handle (a pid for real processes).
  virtual Result<int64_t> start(const LaunchSpec& spec) = 0;
  // A process that has exited since the last call, with its exit code
  // (128 + signal when killed), or nullopt if none has. Never blocks.
  virtual std::optional<std::pair<int64_t, int>> poll() = 0;
  // Blocks until a process may have exited or `timeout_s` passed (fakes: advance the fake clock).
  virtual void wait(double timeout_s) = 0;
  // Kills the process (and its process group).
  virtual void kill(int64_t handle) = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double now_s() = 0;  // monotonic seconds
};

enum class JobState { kPending, kCached, kRunning, kDone, kFailed, kBlocked, kCancelled };
const char* job_state_name(JobState s);  // "pending", "cached", ... (the catalog's status strings)

struct SchedJob {
  std::string id;              // job_id
  std::string stage;
  std::vector<size_t> deps;    // indices of jobs this one waits for
  LaunchSpec launch;
  JobState state = JobState::kPending;  // kCached for jobs complete before the run
  int attempts = 0;            // launches that counted against the retry cap
  int requeues = 0;            // exit 75 launches (do not count)
  std::string note;            // why it failed / is blocked
  double started_s = 0;
  double wall_s = 0;
  // Cores the job asks for: threads per rank x ranks (ranks > 1 only when the
  // job really runs as several processes, e.g. under mpirun).
  int threads = 1;
  int ranks = 1;
  // Expected run time (any unit; relative sizes matter): the critical-path weight.
  double weight = 1;
  // Set by the scheduler when it starts the job: threads per rank it was given
  // (the job's own, or fewer for a job asking for more than `cores`).
  int granted_threads = 0;
};

// The environment a job granted `threads_per_rank` threads gets: OMP / MKL /
// OpenBLAS thread counts, and OMP_WAIT_POLICY=PASSIVE when `shared` (other jobs
// may run beside it: spinning OpenMP threads would steal their cores).
std::map<std::string, std::string> thread_env(int threads_per_rank, bool shared);

// Called by the scheduler as jobs change state. All run on the driving thread.
class SchedulerHooks {
 public:
  virtual ~SchedulerHooks() = default;
  // Before launching job i (write job.yaml, mark running in the DB, ...). A
  // non-OK status fails the job without launching it.
  virtual Status before_start(size_t i, SchedJob& job) { return Status::Ok(); }
  // Job i's process exited with `exit_code`: true when its result.yaml says ok.
  virtual bool result_ok(size_t i, const SchedJob& job, int exit_code) = 0;
  // Every state change (after it happened).
  virtual void on_state(size_t i, const SchedJob& job) {}
  // Polled once per loop iteration: true stops the run (running jobs are killed).
  virtual bool should_cancel() { return false; }
  // Once per loop iteration (about every poll_interval_s): live displays redraw here.
  virtual void on_tick(double now_s) {}
};

struct SchedulerOptions {
  int max_parallel = 1;        // processes (jobs) at once
  int retries = 1;             // extra launches after a crash / exit 70
  int max_requeues = 100;      // exit 75 launches before giving up
  double poll_interval_s = 0.2;
  int cores = 0;               // threads' worth of jobs at once; 0: no limit
};

struct RunSummary {
  size_t done = 0, cached = 0, failed = 0, blocked = 0, cancelled = 0;
  std::vector<std::string> lines;  // one per failed or blocked job: why
  bool ok() const { return failed == 0 && blocked == 0 && cancelled == 0; }
};

class Scheduler {
 public:
  Scheduler(std::vector<SchedJob> jobs, SchedulerOptions opts, Launcher* launcher, Clock* clock,
            SchedulerHooks* hooks);

  // Runs until every job is done, cached, failed, blocked or cancelled.
  RunSummary run();

  // The pieces of run(), exposed for step-by-step tests.
  void start_ready();                     // launch runnable jobs up to the cap
  void on_exit(int64_t handle, int code); // apply the exit-code policy
  bool idle() const { return running_.empty(); }
  void cancel_all();

  const std::vector<SchedJob>& jobs() const { return jobs_; }
  size_t running_count() const { return running_.size(); }
  int running_threads() const { return used_threads_; }
  // Longest weighted path from job i to a sink (its own weight included).
  double priority(size_t i) const { return priority_[i]; }
  const SchedulerOptions& options() const { return opts_; }

 private:
  bool ready(size_t i) const;
  void set_state(size_t i, JobState s);
  void block_dependents(size_t failed);
  RunSummary summarize() const;

  std::vector<SchedJob> jobs_;
  std::vector<std::vector<size_t>> dependents_;
  SchedulerOptions opts_;
  Launcher* launcher_;
  Clock* clock_;
  SchedulerHooks* hooks_;
  // Cores job i occupies while running (threads x ranks, at most cores).
  int cost(size_t i) const;

  std::map<int64_t, size_t> running_;  // handle -> job
  std::vector<double> priority_;
  int used_threads_ = 0;
};

}  // namespace migvis::orch
