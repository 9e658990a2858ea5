// Why a planned job would (re)run, in the terms users know from Snakemake's
// rerun triggers: its params, its code, an imported dataset file's content, an
// upstream job that itself re-runs, or nothing like it has run before. Read by
// `sweep why` and `sweep plan` (orchestrator/cli_sweep.cc).
//
// A job is compared, through the hash inputs (schemas/job.md "Job identity"),
// with a completed job under the root: the one of the same science identity
// (the same job built by other code) when there is one, else the latest of the
// same stage, key, params and seed sharing the most upstream jobs, else the
// latest of the same stage and key. Reads job directories only;
// thread-compatible.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "sweeps/sweep.h"

namespace migvis::orch {

struct RerunTrigger {
  // "cached" | "new job" | "failed before" | "incomplete" | "params changed" |
  // "code of stage X changed" | "dataset file content changed" |
  // "upstream (<its trigger>)", own causes joined by ", ".
  std::string label;
  bool runs = true;              // false only for "cached"
  std::string previous;          // the completed job compared with (its directory name), if any
  std::string previous_finished;  // its result.yaml finished_at
  nlohmann::json previous_inputs;  // its hash inputs
};

class RerunExplainer {
 public:
  // `plan` (may be null) supplies hash inputs of jobs not written yet.
  RerunExplainer(fs::path root, const sweeps::Plan* plan);

  // Why a job with these hash inputs, science identity (job.yaml `science`;
  // may be empty) and directory would run.
  RerunTrigger explain(const std::string& stage, const nlohmann::json& inputs, const std::string& science,
                       const fs::path& job_dir);
  RerunTrigger explain(const sweeps::PlannedJob& job);

  // The cause of running instead of `old` (both hash inputs of `stage`):
  // "params changed", "code of stage X changed", ..., "upstream (...)".
  std::string compare(const std::string& stage, const nlohmann::json& mine, const nlohmann::json& old);

 private:
  struct Done {
    std::string id, finished_at, science;
    nlohmann::json inputs;
  };
  const std::vector<Done>& completed(const std::string& stage);
  std::optional<nlohmann::json> inputs_of(const std::string& stage, const std::string& hash);

  fs::path root_;
  std::map<std::string, nlohmann::json> planned_;  // hash -> hash inputs
  std::map<std::string, std::vector<Done>> completed_;
};

// `sweep run --keep-cache-on-code-change`: ExpandOptions::kept_cache over the
// completed jobs under `root` (by job.yaml `science`). A job already complete
// under its own hash is never replaced.
std::function<std::optional<sweeps::KeptJob>(const sweeps::PlannedJob&)> kept_cache_under(const fs::path& root);

}  // namespace migvis::orch
