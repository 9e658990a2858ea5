// Sweeps: the YAML sweep grammar (schemas/sweep.md) expanded into a DAG of
// jobs. Pure and deterministic: the same text and options always give the same
// jobs, ids and order; nothing here touches the filesystem except load_sweep()
// reading the one file it is given.
//
// A job has two identities (schemas/job.md "Job identity"):
// - the cache identity, its hash: SHA-256 of its hash inputs (stage, resolved
//   params, key, seed when given, upstream job hashes, the stage's code
//   fingerprint, an imported file's content) as canonical JSON; its id is the
//   first 16 hex digits. It names the job directory: any change re-runs the job.
// - the science identity: the same without code fingerprints (over upstream
//   science identities). Derived seeds come from it, so a code edit never
//   changes a job's random draws; --keep-cache-on-code-change matches on it.
// Resources (threads, memory) are in neither: changing them never invalidates
// a cached result.
//
// Thread-compatible (no shared state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/status.h"
#include "schemas/code_identity.h"
#include "schemas/job_spec.h"
#include "schemas/stages.h"

namespace migvis::sweeps {

// Pipeline stages in dependency order, from the stage registry
// (schemas/stages.h). A format: add names, never rename.
inline const std::vector<std::string>& stage_names() { return schema::stage_names(); }

struct PlannedJob {
  std::string stage;
  std::string job_id;  // first 16 hex digits of hash
  std::string hash;    // SHA-256 hex of hash_inputs.dump()
  std::map<std::string, std::string> key;
  nlohmann::json params = nlohmann::json::object();  // resolved; reaches the worker verbatim
  uint64_t seed = 0;
  bool seed_given = false;
  // Every ancestor by stage (e.g. a synthesis job: data, vae, critic, diffusion),
  // as indices into Plan::jobs. Ancestors always precede the job in Plan::jobs.
  std::map<std::string, size_t> upstream;
  std::vector<size_t> deps;  // direct dependencies (indices), sorted
  nlohmann::json hash_inputs;
  // SHA-256 hex of the science identity (no code fingerprints); the derived
  // seed is its first 8 hex digits (31 bits).
  std::string science_hash;
  // Set when ExpandOptions::kept_cache kept a completed job built by other
  // code: the fingerprint this build has for the stage (hash_inputs then holds
  // the kept job's own, older one).
  std::string kept_from_code;
  schema::Resources resources;
};

struct Plan {
  std::string sweep;  // the sweep's name (safe as a path component)
  std::string source;  // file name the sweep came from
  std::vector<PlannedJob> jobs;  // topological order: data, vae, diffusion, critic, synthesis, eval
  std::map<std::string, size_t> count_by_stage() const;
};

// A completed job that stands in for a planned one (see ExpandOptions::kept_cache).
struct KeptJob {
  std::string hash;            // its job hash (its id is the first 16 hex digits)
  nlohmann::json hash_inputs;  // its hash_inputs.json
};

struct ExpandOptions {
  size_t max_jobs = 100000;  // the sweep's own `max_jobs:` may lower it, never raise it above this
  // Stage -> code fingerprint folded into that stage's job hashes. Empty: the
  // table this program was built with (schema::built_in_code_fingerprints()).
  // Golden tests pass a fixed table so plans do not change with every edit.
  schema::CodeFingerprints code;
  // SHA-256 hex of an imported data file (data.params.import.path, absolute).
  // Empty: file_sha256 (common/hash.h), i.e. expansion reads imported files.
  std::function<Result<std::string>(const std::string& path)> file_digest;
  // `sweep run --keep-cache-on-code-change`: asked for every job once its
  // identities are computed; returns a completed job of the same stage and
  // science identity (built by other code) to keep instead, or nullopt. The
  // job then takes the kept job's hash, id and hash inputs (kept_from_code
  // records why); its seed is unchanged. Empty: never keep.
  std::function<std::optional<KeptJob>(const PlannedJob& job)> kept_cache;
};

// Expands sweep YAML text. `file` names the source in error messages
// ("sweeps/a.yaml:14: vae.params.beta: expected a number, got \"high\"").
// InvalidArgument for every grammar, type, reference, cycle, size or
// path-safety error. Never partial: either the whole plan or an error.
Result<Plan> expand_sweep(const std::string& yaml_text, const std::string& file, const ExpandOptions& opts = {});

// Reads `path` (NotFound if missing) and expands it.
Result<Plan> load_sweep(const fs::path& path, const ExpandOptions& opts = {});

// The job.yaml content for plan.jobs[i] under `root` (absolute paths for inputs):
// job dir `<root>/jobs/<stage>/<job_id>` (schema::job_dir).
schema::JobSpec job_spec_for(const Plan& plan, size_t i, const fs::path& root);
fs::path job_dir_for(const fs::path& root, const PlannedJob& job);

// A stable, human-readable rendering of the whole plan (golden files).
std::string plan_to_text(const Plan& plan);

// True when `s` is safe as one path component / key value: [A-Za-z0-9_][A-Za-z0-9_.-]*,
// no "..", at most 64 characters.
bool is_safe_name(const std::string& s);

// JSON -> YAML node (maps, lists, scalars keep their types).
YAML::Node json_to_yaml(const nlohmann::json& j);

}  // namespace migvis::sweeps
