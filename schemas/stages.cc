#include "schemas/stages.h"

namespace migvis::schema {

const std::vector<StageInfo>& stages() {
  using R = StageRunner;
  // name, upstream, input_stages, data_parallel, uses_gpu, runner
  static const std::vector<StageInfo> k = {
      {"data", {}, {}, false, false, R::kOrchestrator},
      {"vae", {"data"}, {}, false, false, R::kWorker},
      {"diffusion", {"data"}, {}, true, true, R::kWorker},
      {"critic", {"vae"}, {"vae"}, false, false, R::kWorker},
      {"synthesis", {"critic", "diffusion"}, {"vae", "diffusion", "critic"}, true, false, R::kWorker},
      {"eval", {"synthesis"}, {"synthesis"}, false, false, R::kWorker},
  };
  return k;
}

const StageInfo* find_stage_info(const std::string& name) {
  for (auto& s : stages())
    if (s.name == name) return &s;
  return nullptr;
}

const std::vector<std::string>& stage_names() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> v;
    for (auto& s : stages()) v.push_back(s.name);
    return v;
  }();
  return k;
}

bool is_data_parallel(const std::string& stage) {
  const StageInfo* s = find_stage_info(stage);
  return s && s->data_parallel;
}

bool runs_in_orchestrator(const std::string& stage) {
  const StageInfo* s = find_stage_info(stage);
  return s && s->runner == StageRunner::kOrchestrator;
}

fs::path jobs_dir(const fs::path& root) { return root / "jobs"; }

fs::path job_dir(const fs::path& root, const std::string& stage, const std::string& job_id) {
  return jobs_dir(root) / stage / job_id;
}

}  // namespace migvis::schema
