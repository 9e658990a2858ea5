// Submitting a sweep to SLURM and asking SLURM how it went. Every command goes
// through a CommandRunner (argv, never a shell), so tests run the whole
// submitter against a fake and the slurm-labelled tests against a real cluster.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "orchestrator/slurm/slurm.h"

namespace migvis::slurm {

struct CommandOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv[0] (PATH lookup) with argv; environment = this process's minus
  // every SLURM_* variable (so a submit from inside an allocation does not
  // inherit its job's settings), plus `env`.
  virtual Result<CommandOutput> run(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& env = {}) = 0;
};

// fork/exec with pipes; SLURM_* scrubbed except SLURM_CONF.
class SystemCommandRunner final : public CommandRunner {
 public:
  Result<CommandOutput> run(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env = {}) override;
};

// One stage level of a sweep: its jobs (spec.job_dirs) and what they wait for.
//
// Barrier shape (job_parents empty): the level's arrays wait for every array of
// every parent level (afterok), plus spec.after_ok.
//
// Per-task shapes (job_parents given, one entry per job dir), chosen per level
// by submit_levels():
//  - corresponding: every job has exactly one parent in some parent level P and
//    no two jobs share it (eval <- synthesis, synthesis <- critic). The level's
//    tasks take the task ids of their parents in P (sparse arrays, one array per
//    array of P) and wait with aftercorr: task i starts when P's task i is done.
//  - grouped: otherwise (many-to-one, e.g. vae <- data): jobs with the same parent
//    tasks form one array that waits (afterok) for exactly those tasks, when
//    there are at most SubmitOptions::max_split such groups; more groups: one
//    array waiting for the union (a barrier on the tasks the level needs).
// Parent levels other than the corresponding one are afterok on exactly the
// tasks the array needs (or on the whole array when it needs all of it).
struct Level {
  ArraySpec spec;
  std::vector<size_t> parents;  // indices of earlier levels (afterok on all their arrays)
  // Per job: its parents in this submission, as (level, index into that level's job_dirs).
  std::vector<std::vector<std::pair<size_t, size_t>>> job_parents;
  // Per job (optional): SLURM ids it waits for beyond job_parents (resume:
  // parents still queued from an earlier round).
  std::vector<std::vector<std::string>> job_after_ok;
};

struct SubmitOptions {
  fs::path script_dir;              // where rendered scripts go (atomic writes)
  bool dry_run = false;             // render + plan only
  int max_array_size = 0;           // 0: ask `scontrol show config` (MaxArraySize)
  // argv of the ingest command run after each level (afterany), e.g.
  // {migvis, sweep, ingest, --root, R}; empty: no ingest jobs.
  std::vector<std::string> ingest_argv;
  // Per-task shapes: at most this many arrays per many-to-one level (one per
  // group of jobs with the same parent tasks); beyond it the level waits for
  // every parent task it needs. Each array is one sbatch call and one job record
  // in the controller (slurm.conf MaxJobCount; array tasks count singly against
  // MaxSubmitJobs/MaxSubmitJobsPerUser in the association or QOS either way).
  int max_split = 32;
  // > 0: one ingest job per slice of this many tasks of each array (afterany on
  // those tasks), so results reach the catalog while the stage runs;
  // 0: one ingest job per level after all its arrays.
  int ingest_batch = 0;
};

struct SubmittedLevel {
  std::string stage;
  std::vector<std::string> array_ids;  // several when split by MaxArraySize
  std::vector<size_t> array_sizes;     // tasks in each array (the level's job dirs, in order)
  std::vector<std::vector<int>> task_ids;  // per array: the task id of each of its job dirs
  std::vector<fs::path> job_dirs;      // in array order (array 0's tasks, then array 1's, ...)
  std::string ingest_id;               // the first ingest job (ingest_ids[0]); empty: none
  std::vector<std::string> ingest_ids;
  std::string shape;                   // "barrier", "aftercorr <stage>", "grouped (N arrays)", ...
  std::vector<fs::path> scripts;
  std::vector<std::vector<std::string>> commands;  // the sbatch argv used (or planned)
};

// Renders and submits every level in order; returns what was submitted. On a
// failed sbatch, already-submitted arrays are cancelled (scancel) so nothing
// half-submitted is left queued, and the error names the command and its stderr.
Result<std::vector<SubmittedLevel>> submit_levels(const std::vector<Level>& levels, const SubmitOptions& opts,
                                                  CommandRunner* runner);

// Reads MaxArraySize from `scontrol show config`.
Result<int> query_max_array_size(CommandRunner* runner);

// `sacct --parsable2 --noheader -X --starttime S -j ids -o JobID,State,ExitCode,DerivedExitCode`
// with up to `attempts` tries and exponential backoff through `sleep_s` (fake in
// tests), since a busy controller answers slowly or not at all.
Result<std::vector<AccountingRecord>> query_accounting(CommandRunner* runner, const std::vector<std::string>& job_ids,
                                                       const std::string& starttime, int attempts,
                                                       const std::function<void(double)>& sleep_s);

// `squeue -h -o %i|%T|%r -j ids`.
Result<std::vector<QueueRecord>> query_queue(CommandRunner* runner, const std::vector<std::string>& job_ids);

}  // namespace migvis::slurm
