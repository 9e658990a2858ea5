#include "schemas/stages.h"

#include <string>

namespace migvis::schema {

const std::vector<StageInfo>& stages() {
  using R = StageRunner;
  // name, upstream, input_stages, data_parallel, uses_gpu, runner
  static const std::vector<StageInfo> k = {
      {"data", {}, {}, false, false, R::kOrchestrator},
      {"vae", {"data"}, {}, false, true, R::kWorker},
      {"diffusion", {"data"}, {}, true, true, R::kWorker},
      {"critic", {"vae"}, {"vae"}, false, true, R::kWorker},
      {"synthesis", {"critic", "diffusion"}, {"vae", "diffusion", "critic"}, true, true, R::kWorker},
      {"eval", {"synthesis"}, {"synthesis"}, false, true, R::kWorker},
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

Status check_stage_gpus(const std::string& stage, int gpus) {
  const StageInfo* s = find_stage_info(stage);
  if (!s) return Status::InvalidArgument("unknown stage '" + stage + "'");
  if (gpus < 0) return Status::InvalidArgument("stage " + stage + ": resources.gpus: expected >= 0, got " + std::to_string(gpus));
  if (gpus > 0 && !s->uses_gpu)
    return Status::InvalidArgument("stage " + stage + ": resources.gpus: " + std::to_string(gpus) +
                                   " asked for, but this stage computes on the CPU only; set gpus: 0");
  return Status::Ok();
}

fs::path jobs_dir(const fs::path& root) { return root / "jobs"; }

fs::path job_dir(const fs::path& root, const std::string& stage, const std::string& job_id) {
  return jobs_dir(root) / stage / job_id;
}

}  // namespace migvis::schema
