// The one table of pipeline stages, read by both programs: the sweep planner
// (order, upstream), the local/MPI executor and the SLURM submitter (who runs a
// stage, whether its ranks share one job), the worker (which stages it must
// have a runner for) and the catalog. A new stage adds one row here, its
// parameters in sweeps/defaults.cc and, for a worker stage, its runner in
// worker/stages/registry.cc.
//
// Stage names are a format (directory names under <root>/jobs, job.yaml
// `stage`, catalog rows): add names, never rename.
#pragma once

#include <string>
#include <vector>

#include "common/files.h"
#include "common/status.h"

namespace migvis::schema {

// Which program runs a stage's jobs.
enum class StageRunner {
  kOrchestrator,  // `migvis data run-job <dir>` (no LibTorch)
  kWorker,        // `migvis-worker --job <dir>`
};

struct StageInfo {
  std::string name;
  // Direct upstream stages: what a job is hashed against and waits for.
  std::vector<std::string> upstream;
  // Upstream stages whose job directories appear in job.yaml `inputs` under
  // the stage's name (besides `dataset`, which every stage but data gets).
  std::vector<std::string> input_stages;
  // One job runs data-parallel over all its ranks (mpirun -np / srun --ntasks);
  // other stages always run as one process per job.
  bool data_parallel = false;
  // The stage places its work (models and tensors) on a CUDA device when
  // resources.gpus > 0. Every worker stage does; the data stage runs in the
  // orchestrator and never does.
  bool uses_gpu = false;
  StageRunner runner = StageRunner::kWorker;
};

// Every stage in dependency order (a stage's upstream stages precede it).
const std::vector<StageInfo>& stages();

// The row of `name`; nullptr for an unknown stage.
const StageInfo* find_stage_info(const std::string& name);

// Stage names in dependency order: data, vae, diffusion, critic, synthesis, eval.
const std::vector<std::string>& stage_names();

// True for a known stage whose jobs run data-parallel over their ranks.
bool is_data_parallel(const std::string& stage);
// True for a known stage run by the orchestrator (`migvis data run-job`);
// every other stage is launched as `migvis-worker --job`.
bool runs_in_orchestrator(const std::string& stage);

// The plan-time check of a stage's GPU request: InvalidArgument naming the
// stage when it is unknown, gpus < 0, or gpus > 0 for a stage that cannot use
// a GPU (today only `data`); Ok otherwise.
Status check_stage_gpus(const std::string& stage, int gpus);

// The job directory of one job: `<root>/jobs/<stage>/<job_id>` (schemas/job.md).
// A format: the layout is read by resume, status, ingest and the SLURM scripts.
fs::path job_dir(const fs::path& root, const std::string& stage, const std::string& job_id);
// `<root>/jobs`, the folder holding one folder per stage.
fs::path jobs_dir(const fs::path& root);

}  // namespace migvis::schema
