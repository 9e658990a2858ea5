#include "sweeps/defaults.h"

#include <fmt/format.h>

#include "schemas/stages.h"

namespace migvis::sweeps {
namespace {

using J = nlohmann::json;
using T = ParamType;

// Reference defaults from shared/MIGVIS_METHOD.md (stage 1). Stages whose
// workers are not merged yet (diffusion, critic, synthesis, eval) list their
// keys without defaults: "to align" in schemas/sweep.md.
const std::map<std::string, std::vector<ParamSpec>>& table() {
  static const std::map<std::string, std::vector<ParamSpec>> k = {
      {"data",
       {
           {"preset", T::kEnum, J(), {"tiny", "default", "paper"}},
           {"seed", T::kInt, J(), {}},
           {"import", T::kImport, J(), {}},
           // Generator overrides (schemas/synth.md); animals and sessions come
           // from the sweep's own `animals:` / `sessions:` keys.
           {"image_size", T::kInt, J(), {}},
           {"categories", T::kInt, J(), {}},
           {"objects_per_category", T::kInt, J(), {}},
           {"poses_per_object", T::kInt, J(), {}},
           {"min_neurons", T::kInt, J(), {}},
           {"max_neurons", T::kInt, J(), {}},
           {"repeats", T::kInt, J(), {}},
           {"families", T::kStringList, J(), {}},
           {"background_min", T::kNumber, J(), {}},
           {"background_max", T::kNumber, J(), {}},
           {"background_texture", T::kNumber, J(), {}},
           {"pixel_noise", T::kNumber, J(), {}},
       }},
      {"vae",
       {
           {"model", T::kEnum, "migvis", {"vae", "beta_vae", "tcvae", "migvis", "migvis_unsup"}},
           {"groups", T::kInt, 4, {}},
           {"group_rank", T::kInt, 6, {}},
           {"hidden", T::kIntOrIntList, J(), {}},
           {"recon", T::kEnum, "mse", {"mse", "poisson"}},
           {"w_guid", T::kNumber, 0.2, {}},
           {"w_kl", T::kNumber, 0.002, {}},
           {"w_tc", T::kNumber, 0.02, {}},
           {"beta", T::kNumber, J(), {}},
           {"lr", T::kNumber, J(), {}},
           {"batch", T::kInt, J(), {}},
           {"epochs", T::kInt, 200, {}},
           {"weight_decay", T::kNumber, 1e-5, {}},
           {"test_fraction", T::kNumber, 0.2, {}},
           {"eval_every", T::kInt, 5, {}},
           {"patience", T::kInt, J(), {}},
           // Continuous pose labels (worker/stages/vae.h); default: every factor
           // with role pose, size or position (HvM: rxy, ryz, rxz, s, ty, tz).
           {"pose_factors", T::kStringList, J(), {}},
       }},
      // Aligned with the check_known lists of worker/stages/diffusion.cc and
      // worker/stages/{critic,synthesis,eval}.cc;
      // their defaults live in the workers.
      {"diffusion",
       {
           {"width", T::kInt, J(), {}},
           {"mults", T::kIntList, J(), {}},
           {"image_size", T::kInt, J(), {}},
           {"attn_heads", T::kInt, J(), {}},
           {"attn_dim_head", T::kInt, J(), {}},
           {"timesteps", T::kInt, J(), {}},
           {"schedule", T::kEnum, J(), {"sigmoid", "linear", "cosine"}},
           {"objective", T::kString, J(), {}},
           {"min_snr_gamma", T::kNumber, J(), {}},
           {"steps", T::kInt, J(), {}},
           {"batch", T::kInt, J(), {}},
           {"grad_accum", T::kInt, J(), {}},
           {"lr", T::kNumber, J(), {}},
           {"beta1", T::kNumber, J(), {}},
           {"beta2", T::kNumber, J(), {}},
           {"grad_clip", T::kNumber, J(), {}},
           {"ema_decay", T::kNumber, J(), {}},
           {"ema_every", T::kInt, J(), {}},
           {"log_every", T::kInt, J(), {}},
           {"checkpoint_every", T::kInt, J(), {}},
           {"sample_count", T::kInt, J(), {}},
           {"sample_steps", T::kInt, J(), {}},
           {"sample_eta", T::kNumber, J(), {}},
           // Fraction of the stimuli left to the eval judges (worker/stages/inputs.h).
           {"judge_holdout", T::kNumber, J(), {}},
       }},
      {"critic",
       {
           {"epochs", T::kInt, J(), {}},
           {"batch", T::kInt, J(), {}},
           {"negatives", T::kInt, J(), {}},
           {"lr", T::kNumber, J(), {}},
           {"weight_decay", T::kNumber, J(), {}},
           {"test_fraction", T::kNumber, J(), {}},
           {"feature_extractor", T::kString, J(), {}},
           {"width", T::kInt, J(), {}},
           {"feature_dim", T::kInt, J(), {}},
           {"embed_dim", T::kInt, J(), {}},
           {"image_size", T::kInt, J(), {}},
           {"augment_noise", T::kNumber, J(), {}},
           {"augment_blur", T::kNumber, J(), {}},
           {"keep_best", T::kBool, J(), {}},
           {"judge_holdout", T::kNumber, J(), {}},
       }},
      {"synthesis",
       {
           {"groups", T::kIntList, "from_upstream", {}},
           {"gammas", T::kNumberList, J(), {}},
           {"pairs", T::kInt, J(), {}},
           {"seeds", T::kInt, J(), {}},
           {"edit_t", T::kInt, J(), {}},
           {"steps", T::kInt, J(), {}},
           {"eta", T::kNumber, J(), {}},
           {"negatives", T::kInt, J(), {}},
           {"mode", T::kString, J(), {}},
           {"chunk", T::kInt, J(), {}},
           {"clip", T::kBool, J(), {}},
           {"sampler", T::kEnum, J(), {"ddim", "ddpm"}},
           {"guidance_grad", T::kEnum, J(), {"x0", "unet"}},
           {"resample_negatives", T::kBool, J(), {}},
       }},
      {"eval",
       {
           {"epochs", T::kInt, J(), {}},
           {"batch", T::kInt, J(), {}},
           {"lr", T::kNumber, J(), {}},
           {"width", T::kInt, J(), {}},
           {"image_size", T::kInt, J(), {}},
           {"augment_noise", T::kNumber, J(), {}},
           {"augment_blur", T::kNumber, J(), {}},
           {"keep_best", T::kBool, J(), {}},
           {"report_gamma", T::kNumber, J(), {}},
           {"min_readout", T::kNumber, J(), {}},
           {"pixel_features", T::kInt, J(), {}},
           {"pixel_conv_filters", T::kInt, J(), {}},
           {"judge_seeds", T::kInt, J(), {}},
           {"bootstrap", T::kInt, J(), {}},
       }},
  };
  return k;
}

}  // namespace

const std::vector<ParamSpec>& stage_params(const std::string& stage) {
  static const std::vector<ParamSpec> kEmpty;
  auto it = table().find(stage);
  return it == table().end() ? kEmpty : it->second;
}

const ParamSpec* find_param(const std::string& stage, const std::string& key) {
  for (auto& p : stage_params(stage))
    if (p.name == key) return &p;
  return nullptr;
}

const ParamRange* param_range(const std::string& stage, const std::string& key) {
  // Counts and sizes >= 1, rates and scales > 0, weights and guidance scales >= 0,
  // fractions in [0, 1]: values a worker would otherwise reject (or silently
  // misuse) only after the data and VAE jobs have run.
  static const ParamRange kCount{1}, kPositive{0, true}, kNonNegative{0}, kFraction{0, false, 1};
  static const std::map<std::string, const ParamRange*> k = {
      {"*.epochs", &kCount},        {"*.batch", &kCount},          {"*.steps", &kCount},
      {"*.lr", &kPositive},         {"*.negatives", &kCount},      {"*.timesteps", &kCount},
      {"*.eval_every", &kCount},    {"*.grad_accum", &kCount},     {"*.width", &kCount},
      {"*.image_size", &kCount},    {"vae.groups", &kCount},       {"vae.group_rank", &kCount},
      {"vae.beta", &kNonNegative},  {"vae.w_tc", &kNonNegative},   {"vae.w_kl", &kNonNegative},
      {"vae.w_guid", &kNonNegative}, {"synthesis.gammas", &kNonNegative}, {"synthesis.pairs", &kCount},
      {"synthesis.seeds", &kCount}, {"synthesis.chunk", &kCount},  {"synthesis.edit_t", &kCount},
      {"diffusion.ema_decay", &kFraction}, {"diffusion.judge_holdout", &kFraction},
      {"critic.judge_holdout", &kFraction}, {"data.background_min", &kFraction}, {"data.background_max", &kFraction},
      {"data.pixel_noise", &kNonNegative}, {"eval.judge_seeds", &kCount}, {"data.background_texture", &kNonNegative},
  };
  auto it = k.find(stage + "." + key);
  if (it == k.end()) it = k.find("*." + key);
  return it == k.end() ? nullptr : it->second;
}

std::string ParamRange::describe() const {
  if (max < 1e299) return fmt::format("in [{:g}, {:g}]", min, max);
  return fmt::format("{} {:g}", min_exclusive ? ">" : ">=", min);
}

std::string describe_type(const ParamSpec& p) {
  switch (p.type) {
    case T::kInt: return "an integer";
    case T::kNumber: return "a number";
    case T::kString: return "a string";
    case T::kBool: return "true or false";
    case T::kEnum: return fmt::format("one of {}", fmt::join(p.choices, "|"));
    case T::kIntList: return "a list of integers";
    case T::kNumberList: return "a list of numbers";
    case T::kStringList: return "a list of strings";
    case T::kIntOrIntList: return "an integer or a list of integers";
    case T::kImport: return "a mapping {format: <name>, path: <file>}";
  }
  return "?";
}

int preset_sessions_per_animal(const std::string& preset) {
  // To align with orchestrator/data/synth.cc (data branch) presets.
  if (preset == "tiny") return 2;
  if (preset == "default") return 3;
  if (preset == "paper") return 3;
  return 0;
}

// Both come from the stage registry (schemas/stages.h).
const std::vector<std::string>& direct_upstream(const std::string& stage) {
  static const std::vector<std::string> kEmpty;
  const schema::StageInfo* s = schema::find_stage_info(stage);
  return s ? s->upstream : kEmpty;
}

const std::vector<std::string>& input_stages(const std::string& stage) {
  // CONVENTIONS.md: vae {dataset}; diffusion {dataset}; critic {dataset, vae};
  // synthesis {dataset, vae, diffusion, critic}; eval {dataset, synthesis}.
  static const std::vector<std::string> kEmpty;
  const schema::StageInfo* s = schema::find_stage_info(stage);
  return s ? s->input_stages : kEmpty;
}

}  // namespace migvis::sweeps
