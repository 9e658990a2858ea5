// The worker's runners for the stages of schemas/stages.h whose runner is the
// worker. A new stage adds its row there, its file and header in
// worker/stages/, and one line here.
#include <map>

#include "worker/stages/critic.h"
#include "worker/stages/diffusion.h"
#include "worker/stages/eval.h"
#include "worker/stages/stage.h"
#include "worker/stages/synthesis.h"
#include "worker/stages/vae.h"

namespace migvis::worker {

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
