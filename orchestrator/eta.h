// How long a sweep still needs: per-stage run times from history (the
// catalog's finished jobs, this run's finished jobs) and the running jobs'
// progress, laid along the remaining DAG with the scheduler's parallelism
// (the same process cap, core cap and critical-path order as scheduler.h).
// "Unknown" (nullopt) rather than a guess when a remaining job's stage has no
// history and no running job of it reports progress yet.
//
// Pure functions and a value type: no clock, no files except
// load_stage_history; tests pass recorded histories and times.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status.h"
#include "orchestrator/scheduler.h"

namespace migvis::orch {

// Wall seconds of finished jobs, per stage.
class StageHistory {
 public:
  void add(const std::string& stage, double wall_s);
  // The median wall time of the stage's finished jobs; nullopt with none.
  std::optional<double> typical_s(const std::string& stage) const;
  size_t count(const std::string& stage) const;

 private:
  std::map<std::string, std::vector<double>> wall_s_;
};

// Done jobs' wall times recorded in the catalog under `root` (read-only). Rows of
// `sweep` are preferred: a stage with finished jobs in this sweep uses only
// those (other sweeps may run the stage at another size); otherwise every
// sweep's rows of the stage. An empty history when there is no catalog yet.
Result<StageHistory> load_stage_history(const fs::path& root, const std::string& sweep);

// One job as the estimator sees it.
struct EtaJob {
  std::string stage;
  std::vector<size_t> deps;   // indices; deps precede the job (topological order)
  JobState state = JobState::kPending;
  int cost = 1;               // cores it occupies (threads x ranks)
  // Running jobs: seconds since start and progress (step / total; 0 when unknown).
  double elapsed_s = 0;
  int64_t step = 0, total_steps = 0;
  // The job's own remaining seconds when the caller measured its rate (steps
  // per second between progress writes); <0: derive it from step / total.
  double remaining_s = -1;
};

// A running job's remaining seconds from its own progress: `remaining_s` when
// set, else elapsed x (1 - f) / f with f = step / total; nullopt before its first step.
std::optional<double> remaining_from_progress(const EtaJob& j);

// Seconds until every remaining (pending or running) job is done, when jobs
// start as the scheduler would start them; nullopt when some remaining job's
// duration is unknown. Failed, blocked and cancelled jobs are not waited for.
// 0 when nothing remains.
std::optional<double> estimate_remaining_s(const std::vector<EtaJob>& jobs, const StageHistory& history,
                                           int max_parallel, int cores);

// Default relative stage weights for the critical path before any history
// (diffusion and synthesis dominate a sweep; data and eval are short).
double default_stage_weight(const std::string& stage);

}  // namespace migvis::orch
