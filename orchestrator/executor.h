// The local executor behind `migvis sweep run|resume`: job directories,
// cache checks, the root lock, real worker processes and progress output.
// The scheduling policy itself is orchestrator/scheduler.h.
//
// Files it owns under <root> (formats; add names, never rename):
//   .migvis.lock                 flock()ed by the one orchestrator writing this root
//   sweeps/<name>.yaml           the sweep text as last run (resume / status read it)
//   sweeps/<name>.cancel         present: the running orchestrator stops (sweep cancel)
//   jobs/<stage>/<id>/job.yaml   written once, atomically (schemas/job.md)
//   jobs/<stage>/<id>/hash_inputs.json  the canonical hash inputs (sweep why)
//   jobs/<stage>/<id>/worker.pid the pid of the process last started for the job
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "common/files.h"
#include "orchestrator/scheduler.h"
#include "sweeps/sweep.h"

namespace migvis::orch {

// Real processes: fork + exec, own process group, stdout/stderr appended to
// the job's run.log, worker.pid written into the job directory.
class ProcessLauncher : public Launcher {
 public:
  Result<int64_t> start(const LaunchSpec& spec) override;
  std::optional<std::pair<int64_t, int>> poll() override;
  void wait(double timeout_s) override;
  void kill(int64_t handle) override;

 private:
  std::vector<int64_t> live_;
};

class SteadyClock : public Clock {
 public:
  double now_s() override;
};

// Where results go as jobs progress. The default executor records into the
// SQLite catalog (the only DB writer); tests may pass their own.
class RunRecorder {
 public:
  virtual ~RunRecorder() = default;
  virtual Status record_plan(const sweeps::Plan& plan, const std::string& sweep_text, const fs::path& root) {
    return Status::Ok();
  }
  virtual Status job_state(const sweeps::PlannedJob& job, const SchedJob& s) { return Status::Ok(); }
  virtual Status ingest(const fs::path& job_dir) { return Status::Ok(); }
};

// Exclusive ownership of a root: flock on <root>/.migvis.lock (released by the
// kernel when the process dies, even by kill -9; not inherited by workers).
class RootLock {
 public:
  static Result<std::unique_ptr<RootLock>> acquire(const fs::path& root);
  ~RootLock();

 private:
  explicit RootLock(int fd) : fd_(fd) {}
  int fd_;
};

struct RunOptions {
  fs::path root = "runs";
  int jobs = 1;             // processes at once
  int cores = 0;            // threads' worth of jobs at once (scheduler.h); 0: machine_cores()
  int retries = 1;
  std::string worker;       // migvis-worker path; empty: $MIGVIS_WORKER, else next to this program
  std::string data_runner;  // program run as `<it> data run-job DIR`; empty: $MIGVIS_DATA_RUNNER, else this program
  std::string self;         // path of the running migvis binary
  bool tty = false;         // stdout is a terminal: the live display (progress_display.h) unless TERM=dumb
  double progress_every_s = 30;  // not live: a progress line per running job this often
  // "local": every job is one process. "mpi": data-parallel stages (diffusion,
  // synthesis) with more than one rank run as `mpirun -np R migvis-worker`.
  std::string executor = "local";
  int ranks = 0;            // ranks per data-parallel job; 0: the job's resources.ranks
  std::FILE* out = stdout;
};

// The argv that launches one worker job: `worker --job DIR`, or under mpirun
// (`--bind-to none`, threads per rank from OMP_NUM_THREADS; `--allow-run-as-root`
// when running as root) for a data-parallel stage with ranks > 1 and the mpi executor.
std::vector<std::string> worker_argv(const std::string& worker, const fs::path& dir, const std::string& stage,
                                     int ranks, const RunOptions& opts);

// Cores this process may use (its CPU affinity mask; hardware_concurrency as a fallback).
int machine_cores();

// The migvis-worker to launch: `explicit_path`, else $MIGVIS_WORKER, else next
// to `self` (install layout), else ../worker/migvis-worker (build-tree layout).
std::string resolve_worker(const std::string& explicit_path, const std::string& self);

// Per-job status seen on disk (no DB needed): complete, failed, running (a live
// worker.pid), or pending.
enum class DiskState { kPending, kRunning, kDone, kFailed };
DiskState disk_state(const fs::path& job_dir);

// One line per job of `plan` that is at work now: a live local worker, or (when
// `slurm_state` names its directory) a SLURM task with a progress.yaml and no
// result yet. Each line: stage, key, id, phase, step/total, how long ago the
// worker last wrote its progress, and the SLURM state when known.
std::vector<std::string> active_job_lines(const sweeps::Plan& plan, const fs::path& root,
                                          const std::map<std::string, std::string>& slurm_state);

// Kills a still-running worker left behind by a killed orchestrator (its pid
// file names a live process whose command line mentions the job directory).
void kill_stale_worker(const fs::path& job_dir);

// Runs (or resumes) the plan under opts.root. The caller must hold the
// RootLock of opts.root (and opened the recorder after taking it). `sweep_text`
// is saved for resume/status. Returns the summary; Status is non-OK only when
// the run could not happen at all (unwritable root, DB error).
Result<RunSummary> run_plan(const sweeps::Plan& plan, const std::string& sweep_text, const RunOptions& opts,
                            RunRecorder* recorder);

}  // namespace migvis::orch
