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

// One stage level of a sweep: an array and the levels it waits for.
struct Level {
  ArraySpec spec;
  std::vector<size_t> parents;  // indices of earlier levels (afterok on all their arrays)
};

struct SubmitOptions {
  fs::path script_dir;              // where rendered scripts go (atomic writes)
  bool dry_run = false;             // render + plan only
  int max_array_size = 0;           // 0: ask `scontrol show config` (MaxArraySize)
  // argv of the ingest command run after each level (afterany), e.g.
  // {migvis, sweep, ingest, --root, R}; empty: no ingest jobs.
  std::vector<std::string> ingest_argv;
};

struct SubmittedLevel {
  std::string stage;
  std::vector<std::string> array_ids;  // several when split by MaxArraySize
  std::vector<size_t> array_sizes;     // tasks in each array (the level's job dirs, in order)
  std::string ingest_id;
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
