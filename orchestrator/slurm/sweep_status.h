// What SLURM says about a submitted sweep, and what to do about it: `sweep
// status` (sacct/squeue per task), `sweep resume` of a submitted sweep
// (resubmission within a retry budget) and `sweep cancel`. Submission itself is
// orchestrator/slurm/sweep_submit.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "orchestrator/slurm/sweep_submit.h"

namespace migvis::orch {


// What SLURM says about a submitted sweep (record = <root>/slurm/<sweep>.json).
struct SlurmTaskState {
  std::string stage;
  std::string task_id;     // "123_4"
  fs::path job_dir;
  slurm::Outcome outcome = slurm::Outcome::kStillQueued;
  std::string raw_state;   // sacct State, or squeue's when not yet accounted
  std::string reason;      // squeue's reason while queued ("Dependency", "DependencyNeverSatisfied", ...)
  bool known = false;      // false: neither sacct nor squeue knows the task (lost)
};

// Reconciles the record with sacct (--starttime = the submission time; retried
// with backoff) and squeue; one entry per array task, in submission order.
Result<std::vector<SlurmTaskState>> slurm_task_states(const fs::path& record, slurm::CommandRunner* runner,
                                                      const std::function<void(double)>& sleep_s);

// `sweep resume` of a submitted sweep: reconciles the record with sacct/squeue
// and the job directories, and resubmits through SLURM (one array per stage,
// afterok on resubmitted parents and on parents still queued from earlier
// rounds, an ingest job after each) every job that is not complete, not still
// queued or running, and within its retry budget:
//  - failures that are the job's own (application error, TIMEOUT,
//    OUT_OF_MEMORY) are charged once each (the task id is remembered);
//    PREEMPTED, NODE_FAIL, exit 75, cancelled and lost tasks are free;
//  - a job charged more than `retries` times is over budget: reported, not
//    resubmitted; its not-complete descendants are reported blocked;
//  - a task pending on a dependency that can never be satisfied is scancelled
//    and resubmitted.
// The record is rewritten atomically: new rounds appended to "levels", the
// per-job charges in "jobs" (schemas/slurm_record.md), so repeated resumes
// agree. `retries` < 0: the record's "retries" (default 2).
struct SlurmResumeReport {
  std::vector<slurm::SubmittedLevel> levels;  // this round's arrays (empty: nothing to resubmit)
  size_t done = 0, queued = 0, resubmitted = 0, over_budget = 0, blocked = 0;
  int retries = 0;                            // the budget applied
  std::vector<std::string> lines;             // one per resubmitted / over-budget / blocked job: why
};
Result<SlurmResumeReport> resume_submitted_sweep(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                                 int retries, slurm::CommandRunner* runner,
                                                 const std::function<void(double)>& sleep_s);

// scancel on the sweep's own arrays and ingest jobs (and nothing else).
// Returns how many SLURM job ids were cancelled.
Result<size_t> slurm_cancel(const fs::path& record, slurm::CommandRunner* runner);

}  // namespace migvis::orch
