// The one table of stage parameters: for every stage, the keys the worker
// accepts, their types and the defaults the orchestrator fills in. Documented in
// schemas/sweep.md; only keys listed here are ever emitted into job.yaml (the
// worker rejects unknown keys).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace migvis::sweeps {

enum class ParamType { kInt, kNumber, kString, kBool, kEnum, kIntList, kNumberList, kStringList, kIntOrIntList, kImport };

struct ParamSpec {
  std::string name;
  ParamType type;
  nlohmann::json default_value;      // null: not emitted unless the sweep sets it
  std::vector<std::string> choices;  // kEnum only
};

// Keys of `stage` (one of stage_names()); empty for an unknown stage.
const std::vector<ParamSpec>& stage_params(const std::string& stage);
const ParamSpec* find_param(const std::string& stage, const std::string& key);

// The range a numeric parameter must lie in (checked at plan time, element-wise
// for lists): `min` inclusive unless `min_exclusive`. Parameters without a
// range: nullptr.
struct ParamRange {
  double min = 0;
  bool min_exclusive = false;
  double max = 1e300;
  std::string describe() const;  // ">= 1", "> 0", "in [0, 1]"
};
const ParamRange* param_range(const std::string& stage, const std::string& key);

// "a number", "an integer", "one of mse|poisson", ...
std::string describe_type(const ParamSpec& p);

// Sessions each animal has in a synthetic preset (`sessions: all`); 0 if unknown.
int preset_sessions_per_animal(const std::string& preset);

// Direct upstream stages of `stage` (what it is hashed against and waits for).
const std::vector<std::string>& direct_upstream(const std::string& stage);
// The job.yaml `inputs` names of `stage` besides `dataset` (stage job dirs).
const std::vector<std::string>& input_stages(const std::string& stage);

}  // namespace migvis::sweeps
