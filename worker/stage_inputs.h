// Reading upstream job outputs as tensors, shared by the critic, synthesis and
// eval stages. Errors name the job.yaml key or the HDF5 path.
#pragma once

#include <string>

#include <torch/torch.h>

#include "common/files.h"
#include "common/status.h"
#include "results/dataset_io.h"
#include "schemas/job_spec.h"

namespace migvis::worker {

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

}  // namespace migvis::worker
