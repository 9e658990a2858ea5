// The job-directory contract (schemas/job.md) in C++: job.yaml, result.yaml and
// progress.yaml, read and written by both programs. Parameters stay a YAML node
// so each stage reads its own keys with typed, key-naming accessors.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/files.h"
#include "common/status.h"

namespace migvis::schema {

inline constexpr const char* kJobFormat = "migvis-job/1";
inline constexpr const char* kResultFormat = "migvis-result/1";
inline constexpr const char* kJobFile = "job.yaml";
inline constexpr const char* kResultFile = "result.yaml";
inline constexpr const char* kProgressFile = "progress.yaml";
inline constexpr const char* kOutFile = "out.h5";
inline constexpr const char* kLogFile = "run.log";
inline constexpr const char* kCheckpointDir = "ckpt";

struct Resources {
  int threads = 1;
  int ranks = 1;
  int gpus = 0;
  double mem_gb = 2;
  double time_min = 60;
};

struct JobSpec {
  std::string job_id;
  std::string hash;
  std::string stage;
  std::string sweep;
  std::map<std::string, std::string> key;     // e.g. {animal: a1, session: s1}
  uint64_t seed = 0;
  YAML::Node params = YAML::Node(YAML::NodeType::Map);
  std::map<std::string, std::string> inputs;  // name -> absolute path
  // Every ancestor job by stage -> job_id (a synthesis job: data, vae, critic,
  // diffusion). Empty in job.yaml written before the field existed.
  std::map<std::string, std::string> upstream;
  // Fingerprint of the code the planner expects to compute this job
  // (schemas/code_identity.h); the worker refuses to run a job whose `code`
  // differs from its own. Empty (job.yaml without `code`: hand-made job
  // directories, or written before the field existed): not checked.
  std::string code;
  // SHA-256 of the job's science identity (no code fingerprints): what
  // --keep-cache-on-code-change matches on. Empty in older job.yaml.
  std::string science;
  Resources resources;
};

// Typed accessors for JobSpec::params with defaults; errors name the key and
// the file: "job.yaml: params.lr: expected a number, got \"fast\"".
class Params {
 public:
  Params(const YAML::Node& node, std::string where) : node_(node), where_(std::move(where)) {}
  bool has(const std::string& key) const;
  Result<double> get_double(const std::string& key, double def) const;
  Result<int64_t> get_int(const std::string& key, int64_t def) const;
  Result<bool> get_bool(const std::string& key, bool def) const;
  Result<std::string> get_string(const std::string& key, const std::string& def) const;
  Result<std::vector<double>> get_doubles(const std::string& key, const std::vector<double>& def) const;
  Result<std::vector<int64_t>> get_ints(const std::string& key, const std::vector<int64_t>& def) const;
  Result<std::vector<std::string>> get_strings(const std::string& key, const std::vector<std::string>& def) const;
  // Keys present in the node that are not in `known`: InvalidArgument naming them.
  Status check_known(const std::vector<std::string>& known) const;

 private:
  YAML::Node lookup(const std::string& key) const;  // supports dotted keys "a.b"
  YAML::Node node_;
  std::string where_;
};

Status write_job_spec(const JobSpec& spec, const fs::path& dir);
Result<JobSpec> read_job_spec(const fs::path& dir);
std::string job_spec_to_yaml(const JobSpec& spec);

struct Artifact {
  std::string kind;
  std::string path;  // relative to the job directory
  std::string h5;    // HDF5 object path inside `path`, if any
};

// Why `path` (an Artifact::path from result.yaml) may not be read as a file of
// the job directory `job_dir`: empty when it is relative and stays inside the
// directory, else the problem ("is absolute", "leaves the job directory (..)",
// "leaves the job directory through a symbolic link to ..."). Symbolic links
// are followed for the parts that exist; a missing file is not a problem here.
std::string artifact_path_problem(const fs::path& job_dir, const std::string& path);

struct JobResult {
  std::string job_id;
  std::string stage;
  std::string status = "ok";  // ok | failed
  std::string error;
  int exit_code = 0;
  std::string started_at;
  std::string finished_at;
  double wall_s = 0;
  std::string host;
  std::map<std::string, std::string> layout;
  std::map<std::string, std::string> versions;
  std::map<std::string, double> metrics;
  std::vector<Artifact> artifacts;
};

Status write_job_result(const JobResult& r, const fs::path& dir);
Result<JobResult> read_job_result(const fs::path& dir);

struct Progress {
  int64_t step = 0;
  int64_t total_steps = 0;
  std::string phase;
  std::string updated_at;
};
Status write_progress(const Progress& p, const fs::path& dir);
Result<Progress> read_progress(const fs::path& dir);

// UTC ISO-8601 time, e.g. "2026-11-25T18:00:00Z".
std::string utc_now_iso8601();

}  // namespace migvis::schema
