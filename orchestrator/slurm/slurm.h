// SLURM, as migvis sees it: parsing squeue/sacct output, classifying how a job
// ended, quoting for the shell, and rendering one sbatch array script per stage
// level from slurm/array.sbatch.in. Pure functions; running the commands is
// submit.h's business (through a CommandRunner that tests fake).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/status.h"

namespace migvis::slurm {

enum class JobState {
  kPending, kRunning, kSuspended, kCompleting, kCompleted, kFailed, kCancelled, kTimeout,
  kOutOfMemory, kPreempted, kNodeFail, kBootFail, kDeadline, kRequeued, kUnknown,
};
// "COMPLETED", "CANCELLED by 0", "OUT_OF_MEMORY", "OUT_OF_ME+" (truncated), "PD", ...
JobState parse_state(std::string_view text);
std::string_view state_name(JobState s);
bool is_terminal(JobState s);

// What the orchestrator does about an ended job (schemas/job.md exit codes).
enum class Outcome {
  kDone,          // completed, exit 0
  kStillQueued,   // pending / running / requeued
  kAppError,      // the worker failed (exit 65/66/70/other): retry budget applies
  kTemporary,     // worker exit 75 (checkpointed) or preempted: requeue, free of charge
  kTimeout,       // hit its time limit: resubmit with the checkpoint, counts as a retry
  kOutOfMemory,   // counts as a retry; the summary suggests more mem_gb
  kNodeFail,      // the machine failed: resubmit, free of charge
  kCancelled,     // cancelled by a user: not resubmitted
};
std::string_view outcome_name(Outcome o);
bool counts_against_retries(Outcome o);

struct AccountingRecord {
  std::string job_id;      // "123_4" for array tasks, "123" otherwise
  int64_t array_job_id = 0;
  int array_task = -1;     // -1: not an array task
  JobState state = JobState::kUnknown;
  std::string raw_state;
  int exit_code = 0;       // from ExitCode "code:signal"
  int signal = 0;
  int derived_exit_code = 0;
};

// Parses `sacct --parsable2 --noheader -X -o JobID,State,ExitCode,DerivedExitCode`.
// Job steps (123.batch, 123.0) are skipped. Malformed lines -> InvalidArgument
// naming the line.
Result<std::vector<AccountingRecord>> parse_sacct(std::string_view text);
Outcome classify(const AccountingRecord& r);

struct QueueRecord {
  std::string job_id;   // "123_4", or "123_[5-9%2]" for not-yet-started array tasks
  JobState state = JobState::kUnknown;
  std::string reason;   // "Dependency", "DependencyNeverSatisfied", "None", ...
};
// Parses `squeue -h -o '%i|%T|%r'`.
Result<std::vector<QueueRecord>> parse_squeue(std::string_view text);
// Expands "123_[1-3,7%2]" to {"123_1","123_2","123_3","123_7"}; other ids unchanged.
std::vector<std::string> expand_array_id(const std::string& id);

// Single-quotes `s` for bash: 'it'\''s' — nothing inside is ever expanded.
std::string shell_quote(std::string_view s);

struct ArraySpec {
  std::string sweep;
  std::string stage;
  std::string name;                 // SLURM job name, e.g. "migvis-quickstart-vae"
  std::vector<fs::path> job_dirs;   // one array task each, in order
  // The array task id of each job dir (ascending); empty: 0..n-1. Sparse ids let
  // a downstream array use the ids of the upstream tasks it corresponds to.
  std::vector<int> task_ids;
  int cpus_per_task = 1;
  int ntasks = 1;                   // > 1: data-parallel job launched with srun --mpi=pmix
  int gpus = 0;
  double mem_gb = 2;
  double time_min = 60;
  std::string partition, account, qos;
  int throttle = 0;                 // %N on the array; 0 = none
  int signal_seconds = 120;         // --signal=B:USR1@N before the time limit / preemption
  std::vector<std::string> after_ok;  // SLURM job ids this array waits for ("123" or task "123_4")
  // Arrays whose task i this array's task i waits for (SLURM's aftercorr).
  std::vector<std::string> after_corr;
  // The command each task runs, followed by its job directory, e.g.
  // {/opt/migvis/bin/migvis-worker, --job} or {/opt/migvis/bin/migvis, data, run-job}.
  std::vector<std::string> command;
  fs::path log_dir;                 // %A_%a.out files
};

// Renders the batch script (template slurm/array.sbatch.in, compiled in).
std::string render_array_script(const ArraySpec& spec);
// sbatch's argv (no shell in between): resources, array range, dependency,
// requeue/signal, output paths, then the script path.
std::vector<std::string> sbatch_args(const ArraySpec& spec, const fs::path& script);
// "0-2,5,7-9" for {0,1,2,5,7,8,9} (ascending ids).
std::string array_range(const std::vector<int>& ids);

}  // namespace migvis::slurm
