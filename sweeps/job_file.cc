// The job file: a planned job as job.yaml (schemas/job.md), its directory,
// and the plan as text for golden files.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "schemas/stages.h"
#include "sweeps/defaults.h"
#include "sweeps/sweep.h"

namespace migvis::sweeps {

using json = nlohmann::json;

YAML::Node json_to_yaml(const json& j) {
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (auto& [k, v] : j.items()) n[k] = json_to_yaml(v);
    return n;
  }
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (auto& v : j) n.push_back(json_to_yaml(v));
    return n;
  }
  if (j.is_null()) return YAML::Node(YAML::NodeType::Null);
  if (j.is_boolean()) return YAML::Node(j.get<bool>());
  if (j.is_number_integer()) return YAML::Node(j.get<int64_t>());
  if (j.is_number()) return YAML::Node(j.dump());  // shortest round-trip text
  return YAML::Node(j.get<std::string>());
}

schema::JobSpec job_spec_for(const Plan& plan, size_t i, const fs::path& root) {
  const PlannedJob& j = plan.jobs[i];
  fs::path abs = fs::absolute(root).lexically_normal();
  schema::JobSpec s;
  s.job_id = j.job_id;
  s.hash = j.hash;
  s.stage = j.stage;
  s.sweep = plan.sweep;
  s.key = j.key;
  s.seed = j.seed;
  s.params = json_to_yaml(j.params);
  if (j.stage != "data") {
    auto d = j.upstream.find("data");
    if (d != j.upstream.end()) s.inputs["dataset"] = (job_dir_for(abs, plan.jobs[d->second]) / "dataset.h5").string();
  }
  for (auto& st : input_stages(j.stage)) {
    auto it = j.upstream.find(st);
    if (it != j.upstream.end()) s.inputs[st] = job_dir_for(abs, plan.jobs[it->second]).string();
  }
  for (auto& [st, idx] : j.upstream) s.upstream[st] = plan.jobs[idx].job_id;
  s.code = j.hash_inputs.value("code", "");
  s.science = j.science_hash;
  s.resources = j.resources;
  return s;
}

std::string plan_to_text(const Plan& plan) {
  std::string out = fmt::format("sweep {}\n", plan.sweep);
  for (auto& [st, n] : plan.count_by_stage()) out += fmt::format("  {:<10} {} jobs\n", st, n);
  for (auto& j : plan.jobs) {
    std::vector<std::string> key, deps;
    for (auto& [k, v] : j.key) key.push_back(k + "=" + v);
    for (size_t d : j.deps) deps.push_back(plan.jobs[d].stage + ":" + plan.jobs[d].job_id);
    out += fmt::format("{} {} key[{}] seed={}{} deps[{}]\n    params {}\n", j.stage, j.job_id, fmt::join(key, ","),
                       j.seed, j.seed_given ? "" : "(derived)", fmt::join(deps, ","), j.params.dump());
  }
  return out;
}


}  // namespace migvis::sweeps
