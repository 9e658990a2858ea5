// Internal to sweeps/: the parsed form of a sweep file, shared by the parser
// (parse.cc: YAML -> Sweep, strict, errors with file:line) and the expander
// (expand.cc: Sweep -> Plan). Not part of the public API (sweeps/sweep.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "common/status.h"
#include "schemas/job_spec.h"

namespace migvis::sweeps::internal {

using json = nlohmann::json;

using json = nlohmann::json;

// A value from the sweep file with where it came from.
struct Val {
  json v;
  int line = 0;
  std::string path;  // "vae.grid.beta[1]"
};

struct Axis {
  std::string name;
  std::vector<Val> values;
};

struct Exclude {
  std::map<std::string, std::vector<json>> match;  // name -> any of these
};

// One (sub-)sweep: fixed params, grid axes, zip groups, union members.
struct Spec {
  std::map<std::string, Val> params;
  std::vector<Axis> axes;
  std::vector<std::vector<Axis>> zips;
  std::vector<Spec> unions;
  std::vector<Exclude> excludes;
  std::optional<std::vector<uint64_t>> seeds;
};

struct Combo {
  std::map<std::string, Val> params;
  std::optional<uint64_t> seed;
  std::vector<const Exclude*> excludes;
};

struct StageBlock {
  bool present = false;
  int line = 0;
  Spec spec;
  schema::Resources resources;
  std::optional<Val> name;  // data only
};

struct SessionsSpec {
  enum Kind { kList, kAll, kPooled } kind = kAll;
  std::vector<std::string> list;                                // kList (may include "pooled")
  std::map<std::string, std::vector<std::string>> per_animal;  // map form
  int line = 0;
};

struct Sweep {
  std::string name;
  int max_jobs = 0;
  std::vector<std::string> animals;
  int animals_line = 0;
  SessionsSpec sessions;
  std::map<std::string, StageBlock> stages;
};


// Errors that name the sweep file, its line and the key path:
// "sweeps/a.yaml:14: vae.params.beta: expected a number, got \"high\"".
class SweepErrors {
 public:
  explicit SweepErrors(std::string file) : file_(std::move(file)) {}
  Status err(int line, const std::string& path, const std::string& msg) const;
  Status err(const YAML::Node& n, const std::string& path, const std::string& msg) const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// 1-based line of a node (0 when unknown).
int line_of(const YAML::Node& n);
// How a wrong value is described in errors: "nothing", "a list", "\"high\"", ...
std::string got_text(const json& v);
std::string got_text(const YAML::Node& n);
// YAML scalars typed as YAML 1.1 would (quoted stays a string).
json to_json(const YAML::Node& n);
std::string scalar_string(const json& v);

// Parses a loaded YAML document into a Sweep; InvalidArgument naming file:line.
Result<Sweep> parse_sweep(const YAML::Node& root, const SweepErrors& errors);

}  // namespace migvis::sweeps::internal
