#include "orchestrator/rerun_trigger.h"

#include <memory>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "orchestrator/executor.h"
#include "schemas/job_spec.h"
#include "schemas/stages.h"

namespace migvis::orch {
namespace {

using json = nlohmann::json;

std::optional<json> read_inputs(const fs::path& dir) {
  auto t = read_file(dir / "hash_inputs.json");
  if (!t.ok()) return std::nullopt;
  json j = json::parse(*t, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

json field(const json& j, const char* k) { return j.is_object() && j.contains(k) ? j[k] : json(); }

}  // namespace

RerunExplainer::RerunExplainer(fs::path root, const sweeps::Plan* plan) : root_(std::move(root)) {
  if (plan)
    for (auto& j : plan->jobs) planned_[j.hash] = j.hash_inputs;
}

const std::vector<RerunExplainer::Done>& RerunExplainer::completed(const std::string& stage) {
  auto it = completed_.find(stage);
  if (it != completed_.end()) return it->second;
  std::vector<Done>& out = completed_[stage];
  std::error_code ec;
  for (auto& d : fs::directory_iterator(schema::jobs_dir(root_) / stage, ec)) {
    auto r = schema::read_job_result(d.path());
    if (!r.ok() || r->status != "ok") continue;
    auto in = read_inputs(d.path());
    if (!in) continue;
    auto spec = schema::read_job_spec(d.path());
    out.push_back({d.path().filename().string(), r->finished_at, spec.ok() ? spec->science : "", std::move(*in)});
  }
  return out;
}

std::optional<json> RerunExplainer::inputs_of(const std::string& stage, const std::string& hash) {
  if (auto it = planned_.find(hash); it != planned_.end()) return it->second;
  if (hash.size() < 16) return std::nullopt;
  return read_inputs(schema::job_dir(root_, stage, hash.substr(0, 16)));
}

std::string RerunExplainer::compare(const std::string& stage, const json& mine, const json& old) {
  std::vector<std::string> own;
  if (field(mine, "params") != field(old, "params") || field(mine, "seed") != field(old, "seed") ||
      field(mine, "key") != field(old, "key"))
    own.push_back("params changed");
  // Hash inputs from before code fingerprints carry a release string and a revision.
  if (field(mine, "code") != field(old, "code") || field(mine, "revision") != field(old, "revision"))
    own.push_back(fmt::format("code of stage {} changed", stage));
  if (field(mine, "data_content") != field(old, "data_content")) own.push_back("dataset file content changed");
  if (!own.empty()) return fmt::format("{}", fmt::join(own, ", "));
  const json mu = field(mine, "upstream"), ou = field(old, "upstream");
  if (mu != ou && mu.is_object()) {
    for (auto& [s, h] : mu.items()) {
      if (ou.is_object() && ou.contains(s) && ou[s] == h) continue;
      auto a = inputs_of(s, h.is_string() ? h.get<std::string>() : "");
      auto b = ou.is_object() && ou.contains(s) && ou[s].is_string() ? inputs_of(s, ou[s].get<std::string>())
                                                                     : std::optional<json>();
      if (!a || !b) return fmt::format("upstream ({} job changed)", s);
      std::string inner = compare(s, *a, *b);
      return inner.rfind("upstream (", 0) == 0 ? inner : fmt::format("upstream ({})", inner);
    }
  }
  std::vector<std::string> other;
  std::set<std::string> keys;
  for (auto& [k, v] : mine.items()) keys.insert(k);
  for (auto& [k, v] : old.items()) keys.insert(k);
  for (auto& k : keys)
    if (field(mine, k.c_str()) != field(old, k.c_str())) other.push_back(k);
  return fmt::format("hash inputs changed ({})", fmt::join(other, ", "));
}

RerunTrigger RerunExplainer::explain(const std::string& stage, const json& inputs, const std::string& science,
                                     const fs::path& job_dir) {
  RerunTrigger t;
  switch (disk_state(job_dir)) {
    case DiskState::kDone: t.label = "cached"; t.runs = false; return t;
    case DiskState::kFailed: t.label = "failed before"; return t;
    case DiskState::kRunning: t.label = "incomplete"; return t;
    case DiskState::kPending: break;
  }
  // Rank the completed jobs of the same stage and key: the same science
  // identity first, then same params and seed with the most upstream jobs in
  // common, then the latest.
  auto shared_upstream = [&](const json& other) {
    int n = 0;
    const json mu = field(inputs, "upstream"), ou = field(other, "upstream");
    if (mu.is_object() && ou.is_object())
      for (auto& [k, v] : mu.items()) n += ou.contains(k) && ou[k] == v;
    return n;
  };
  const Done* best = nullptr;
  std::tuple<bool, bool, int, std::string> best_rank;
  for (const Done& d : completed(stage)) {
    if (d.id == job_dir.filename().string()) continue;
    if (field(d.inputs, "key") != field(inputs, "key")) continue;
    const bool same_science = !science.empty() && d.science == science;
    const bool same_params =
        field(d.inputs, "params") == field(inputs, "params") && field(d.inputs, "seed") == field(inputs, "seed");
    auto rank = std::make_tuple(same_science, same_params, shared_upstream(d.inputs), d.finished_at);
    if (!best || rank > best_rank) {
      best = &d;
      best_rank = rank;
    }
  }
  if (!best) {
    t.label = "new job";
    return t;
  }
  t.previous = best->id;
  t.previous_finished = best->finished_at;
  t.previous_inputs = best->inputs;
  t.label = compare(stage, inputs, best->inputs);
  return t;
}

RerunTrigger RerunExplainer::explain(const sweeps::PlannedJob& job) {
  return explain(job.stage, job.hash_inputs, job.science_hash, sweeps::job_dir_for(root_, job));
}

std::function<std::optional<sweeps::KeptJob>(const sweeps::PlannedJob&)> kept_cache_under(const fs::path& root) {
  // stage -> science hash -> completed job directory (read once per stage).
  auto index = std::make_shared<std::map<std::string, std::map<std::string, fs::path>>>();
  return [root, index](const sweeps::PlannedJob& j) -> std::optional<sweeps::KeptJob> {
    if (disk_state(sweeps::job_dir_for(root, j)) == DiskState::kDone) return std::nullopt;
    if (!index->count(j.stage)) {
      auto& m = (*index)[j.stage];
      std::error_code ec;
      for (auto& d : fs::directory_iterator(schema::jobs_dir(root) / j.stage, ec)) {
        if (disk_state(d.path()) != DiskState::kDone) continue;
        auto spec = schema::read_job_spec(d.path());
        if (spec.ok() && !spec->science.empty()) m[spec->science] = d.path();
      }
    }
    auto& m = (*index)[j.stage];
    auto it = m.find(j.science_hash);
    if (it == m.end()) return std::nullopt;
    auto spec = schema::read_job_spec(it->second);
    auto inputs = read_inputs(it->second);
    if (!spec.ok() || !inputs || spec->hash.empty()) return std::nullopt;
    return sweeps::KeptJob{spec->hash, *inputs};
  };
}

}  // namespace migvis::orch
