// `migvis sweep submit` (status, resume and cancel: orchestrator/slurm/sweep_status.h): compiles a sweep's DAG into one SLURM job array per
// stage level, chained with afterok, plus an ingest job after each level, and
// exits (no driver process stays alive). Job directories and job.yaml are
// written first, exactly as the local executor writes them, so a job runs the
// same wherever it is launched; completed jobs are not submitted again.
#pragma once

#include <functional>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "orchestrator/executor.h"
#include "orchestrator/slurm/submit.h"
#include "sweeps/sweep.h"

namespace migvis::orch {

struct SlurmSubmitOptions {
  fs::path root = "runs";
  std::string partition, account, qos;
  int throttle = 0;            // %N per array; 0 = none
  int signal_seconds = 120;    // --signal=B:USR1@N (checkpoint before the limit / preemption)
  bool dry_run = false;        // write scripts and print the plan; submit nothing
  std::string worker;          // migvis-worker path (default: as the local executor finds it)
  std::string self;            // this migvis binary (data stage and ingest jobs)
  int max_array_size = 0;      // 0: ask scontrol
  int retries = 2;             // resubmissions `sweep resume` allows a job whose failures are its own
  // Dependency shapes (README "Cluster", slurm::Level): false = per task
  // (aftercorr where tasks correspond, grouped afterok on many-to-one);
  // true = every stage waits for its whole parent stages.
  bool barriers = false;
  int max_split = 32;          // slurm::SubmitOptions::max_split
  int ingest_batch = 8;        // tasks per ingest job (afterany on them); 0 = one per stage
};

struct SlurmSubmission {
  std::vector<slurm::SubmittedLevel> levels;
  size_t cached = 0;           // jobs already complete, not submitted
  fs::path record;             // <root>/slurm/<sweep>.json: what was submitted (status, cancel)
};

// Stage levels of the plan's not-yet-complete jobs, in plan order: one Level per
// stage, parents = the levels of the stages its jobs depend on. Writes job dirs.
Result<std::vector<slurm::Level>> slurm_levels(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                               size_t* cached);

// Renders and (unless dry_run) submits; records the plan in the catalog and the
// submitted array ids in <root>/slurm/<sweep>.json (atomic).
Result<SlurmSubmission> submit_plan_to_slurm(const sweeps::Plan& plan, const std::string& sweep_text,
                                             const SlurmSubmitOptions& opts, RunRecorder* recorder,
                                             slurm::CommandRunner* runner);

// The slurm::SubmitOptions of a submission or resume round.
slurm::SubmitOptions submit_options(const SlurmSubmitOptions& opts, const fs::path& script_dir);

// Shared with sweep_status.cc (resume resubmits through the same levels).
// Levels (one per stage) of the plan jobs `include` selects, in plan order;
// writes missing job dirs. `extra_after_ok(i)` adds SLURM ids job i must wait
// for beyond the selected jobs (resume: parents still queued from earlier rounds).
Result<std::vector<slurm::Level>> levels_for(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                             const std::function<bool(size_t)>& include,
                                             const std::function<std::vector<std::string>(size_t)>& extra_after_ok);
// The record entry of one submitted level (schemas/slurm_record.md).
nlohmann::json level_record(const slurm::SubmittedLevel& l, const std::vector<slurm::Level>& levels);

}  // namespace migvis::orch
