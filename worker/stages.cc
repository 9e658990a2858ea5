// The stage table. A new stage adds one line here and one file of its own.
#include <map>

#include "worker/stage.h"
#include "worker/stage_vae.h"

namespace migvis::worker {

Status run_diffusion_stage(StageContext& ctx);  // worker/stage_diffusion.cc
Status run_critic_stage(StageContext& ctx);      // worker/stage_critic.cc
Status run_synthesis_stage(StageContext& ctx);   // worker/stage_synthesis.cc
Status run_eval_stage(StageContext& ctx);        // worker/stage_eval.cc

namespace {
const std::map<std::string, StageFn>& table() {
  static const std::map<std::string, StageFn> t = {
      {"vae", run_vae_stage},
      {"diffusion", run_diffusion_stage},
      {"critic", run_critic_stage},
      {"synthesis", run_synthesis_stage},
      {"eval", run_eval_stage},
  };
  return t;
}
}  // namespace

Result<StageFn> find_stage(const std::string& name) {
  auto& t = table();
  auto it = t.find(name);
  if (it != t.end()) return it->second;
  std::string known;
  for (auto& [k, v] : t) known += (known.empty() ? "" : ", ") + k;
  return Status::InvalidArgument("unknown stage '" + name + "' (this worker runs: " +
                                 (known.empty() ? std::string("none yet") : known) + ")");
}

}  // namespace migvis::worker
