// Reading upstream job outputs as tensors, shared by the critic, synthesis and
// eval stages. Errors name the job.yaml key or the HDF5 path.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/files.h"
#include "common/status.h"
#include "results/dataset_io.h"
#include "schemas/job_spec.h"
#include "worker/stages/stage.h"

namespace migvis::worker {

// The job's device as a torch::Device (ctx.device).
torch::Device stage_device(const StageContext& ctx);
// Records in ctx.model_devices where `m` lives (its first parameter's or
// buffer's device; "none" without either) and logs it at debug level.
void record_model_device(StageContext& ctx, const std::string& name, const torch::nn::Module& m);

// The absolute path of job.yaml `inputs.<name>`; InvalidArgument when absent,
// NotFound when the path does not exist.
Result<fs::path> require_input(const schema::JobSpec& spec, const std::string& name);

// A VAE job's per-image latents (out.h5 /latents, /latent_image_index).
struct VaeLatents {
  torch::Tensor latents;      // [N_seen, G * R] float32
  torch::Tensor image_index;  // [N_seen] int64, dataset image of each row
  int64_t groups = 0;
  int64_t group_rank = 0;
};
// Reads `vae_dir/out.h5`. /latent_image_index is optional (0..N-1 when absent);
// attrs `groups` and `group_rank` on /latents are required and must multiply to D.
Result<VaeLatents> read_vae_latents(const fs::path& vae_dir);

// The dataset's images [N, C, H, W] float32 in [0, 1] as a tensor (a copy).
torch::Tensor images_tensor(const data::Dataset& d);

// Resizes [B, C, H, W] to [B, C, size, size] (area for shrinking, bilinear otherwise);
// returns `x` itself when the size already matches.
torch::Tensor resize_images(const torch::Tensor& x, int64_t size_px);

// Training-time augmentation of images x [B, C, H, W] in [0, 1] for networks
// that later score generated images (the critic on x0_hat, the eval read-out):
// with probability `blur` per image a 3x3 box blur, then Gaussian pixel noise
// of sd ~ U(0, noise) per image; clamped to [0, 1]. Both 0 = x unchanged.
torch::Tensor augment_images(torch::Tensor x, double noise, double blur, at::Generator& gen);

// The keys both image models (critic, eval read-out) train with, read from
// job.yaml params: augment_noise (>= 0, default 0.1), augment_blur (in [0, 1],
// default 0.5) and keep_best (default true). InvalidArgument naming the key.
struct ImageTrainingParams {
  double augment_noise = 0.1;
  double augment_blur = 0.5;
  bool keep_best = true;
};
Result<ImageTrainingParams> read_image_training_params(const schema::Params& p);

// The judge split: a deterministic partition of the dataset's N stimuli into a
// critic/diffusion part and a held-out part that only the eval read-outs (the
// judges) train on, so the judges never share the critic's training images.
// The partition depends on N and `fraction` only (not on seeds or jobs): every
// stage computes the same one. Images are ranked by a fixed hash of their index
// and the first round(fraction * N) are held out; 0 = none held out.
struct JudgeSplit {
  double fraction = 0;
  std::vector<int64_t> critic;   // ascending dataset image indices
  std::vector<int64_t> heldout;  // ascending; disjoint from critic, union = 0..N-1
  bool is_heldout(int64_t image) const;
};
JudgeSplit judge_split(int64_t n_images, double fraction);
// The default held-out fraction (critic and diffusion param `judge_holdout`).
inline constexpr double kDefaultJudgeHoldout = 0.25;
// Reads `judge_holdout` (in [0, 0.9], default kDefaultJudgeHoldout) from params.
Result<double> read_judge_holdout(const schema::Params& p);
// The split as recorded in out.h5 (a format: /judge_heldout int32 image indices,
// attrs `fraction` and `images` = N). write_ writes it; read_ returns NotFound
// when the file has no /judge_heldout, InvalidArgument when it is malformed.
Status write_judge_split(const h5::Location& out, const JudgeSplit& s, int64_t n_images);
Result<JudgeSplit> read_judge_split(const h5::Location& in);

// A module's parameters at its best evaluation so far, for "keep the best
// epoch" training: offer() after every evaluation, restore() at the end.
class BestParameters {
 public:
  // score: higher is better. Copies m's parameters and returns true when the
  // score beats every earlier offer.
  bool offer(double score, torch::nn::Module& m);
  // Copies the kept parameters back into m; no-op when none were kept.
  void restore(torch::nn::Module& m) const;

 private:
  double best_ = -std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> params_;
};

}  // namespace migvis::worker
