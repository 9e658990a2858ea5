// InfoNCE critics: the MI estimator of MIGVIS_METHOD.md stage 3 and the guidance
// signal of stage 4. One Critic holds a feature map phi (a small CNN trained with
// the critics, or a frozen user-supplied TorchScript extractor) and one scoring
// head per latent group g: f_g(z_g, phi(x)) = <A_g(standardise(z_g)), B_g(phi(x))>.
//
// Images enter phi in [0, 1] ([B, C, H, W], resized to options.image_size inside
// features()); latent group vectors are the VAE's raw posterior means (the critic
// standardises them with the training-set mean/std it stores as buffers).
// Nothing here couples samples of a batch (no batch norm), so per-item losses and
// their input gradients are independent of what else is in the batch.
// Thread-compatible; modules are owned by the Critic.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <torch/script.h>

#include "common/files.h"
#include "common/status.h"
#include "results/h5.h"
#include "worker/image_trunk.h"

namespace migvis::worker::critic {

struct CriticOptions {
  int64_t groups = 4;
  int64_t group_rank = 6;
  int64_t channels = 1;
  int64_t image_size_px = 32;   // phi's input resolution (images are resized to it)
  int64_t width = 16;           // CNN encoder base channels
  int64_t feature_dim = 64;     // phi output size (taken from the extractor when one is used)
  int64_t embed_dim = 32;       // scoring space of every group head
  std::string feature_extractor;  // TorchScript file; empty = train the CNN encoder
};

// phi: worker::ImageTrunk -> linear. x: [B, C, S, S] in [0, 1] -> [B, feature_dim].
struct ConvEncoderImpl : torch::nn::Module {
  explicit ConvEncoderImpl(const CriticOptions& o);
  torch::Tensor forward(const torch::Tensor& x);
  ImageTrunk body{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(ConvEncoder);

// One group's scoring head. z: [Bz, R] standardised, h: [Bx, F] -> embeddings [*, E].
struct GroupHeadImpl : torch::nn::Module {
  GroupHeadImpl(int64_t rank, int64_t feature_dim, int64_t embed_dim);
  torch::Tensor embed_z(const torch::Tensor& z);  // [..., R] -> [..., E]
  torch::Tensor embed_h(const torch::Tensor& h);  // [B, F] -> [B, E]
  torch::nn::Sequential z_net{nullptr};
  torch::nn::Linear h_net{nullptr};
};
TORCH_MODULE(GroupHead);

struct CriticImpl : torch::nn::Module {
  // Loads the extractor (if any) and probes its output size. Throws c10::Error
  // on an unreadable TorchScript file (callers use make_critic for a Status).
  explicit CriticImpl(CriticOptions o);

  // x: [B, C, H, W] in [0, 1] -> phi(x): [B, F]. Differentiable w.r.t. x.
  torch::Tensor features(const torch::Tensor& x);
  // z_group: [..., R] raw latents of group g (0-based) -> [..., R] standardised.
  torch::Tensor standardise(const torch::Tensor& z_group, int64_t g) const;
  // Scores of every candidate latent against every item's features:
  // h: [B, F], z_cand: [B, K, R] raw group-g latents -> [B, K].
  torch::Tensor score_candidates(const torch::Tensor& h, const torch::Tensor& z_cand, int64_t g);
  // All-pairs scores: h: [Bx, F], z: [Bz, R] -> [Bx, Bz].
  torch::Tensor score_matrix(const torch::Tensor& h, const torch::Tensor& z, int64_t g);
  // Per-item InfoNCE loss when items belong to different groups (the synthesis
  // grid): h: [B, F]; z_cand: [B, K, R] with the positive at column 0; group: [B]
  // int64 (0-based) -> [B] losses (cross entropy of column 0).
  torch::Tensor item_losses(const torch::Tensor& h, const torch::Tensor& z_cand, const torch::Tensor& group);

  // Sets the latent standardisation from training latents [N, G * R].
  void set_latent_stats(const torch::Tensor& latents);
  // Where the critic computes (its latent-stat buffers move with it). features()
  // moves its input here; scores come back on this device.
  torch::Device device() const { return z_mean.device(); }

  CriticOptions options;
  ConvEncoder encoder{nullptr};               // null when an extractor is used
  std::optional<torch::jit::Module> extractor;  // frozen, not a registered submodule
  torch::nn::ModuleList heads{nullptr};
  torch::Tensor z_mean, z_std;                // buffers [G * R]
};
TORCH_MODULE(Critic);

// Moves the critic, including a frozen extractor (not a registered submodule), to `device`.
void to_device(Critic& critic, const torch::Device& device);

// Builds a critic; InvalidArgument when the extractor cannot be loaded or does
// not map [1, C, S, S] to a [1, F] tensor.
Result<Critic> make_critic(const CriticOptions& o);

// InfoNCE with one positive among K candidates per row.
// scores: [B, K]; positive: [B] int64 column of the positive.
struct InfoNceParts {
  torch::Tensor loss;       // scalar: mean cross entropy
  torch::Tensor mi_bound;   // scalar: log K - loss (nats), the InfoNCE lower bound
  torch::Tensor accuracy;   // scalar: fraction of rows whose positive scores highest
};
InfoNceParts info_nce(const torch::Tensor& scores, const torch::Tensor& positive);

struct TrainOptions {
  int64_t epochs = 30;
  int64_t batch = 64;
  int64_t negatives = 64;   // sampled negatives per batch on top of the in-batch ones
  double lr = 1e-3;
  double weight_decay = 1e-5;
  double test_fraction = 0.2;
  uint64_t seed = 0;
  // Augmentation of training images, so the critic also scores the blurred,
  // noisy x0_hat that guidance feeds it (MIGVIS_METHOD.md stage 4) sensibly:
  // each image gets Gaussian pixel noise of sd ~ U(0, augment_noise) ([0, 1]
  // units) and, with probability augment_blur, a 3x3 box blur. 0 = off.
  double augment_noise = 0.0;
  double augment_blur = 0.0;
  // Keep the parameters of the epoch with the best held-out bound (evaluated
  // every epoch) instead of the last: with a few hundred stimuli the CNN
  // overfits long before `epochs`.
  bool keep_best = false;
  // Called after each epoch with (epochs done, epochs): the stage writes
  // progress.yaml from it, so the live display moves while a critic trains.
  std::function<void(int64_t, int64_t)> on_epoch;
};

struct TrainReport {
  std::vector<double> mi_test;            // [G] held-out bound after training (nats)
  std::vector<double> mi_test_initial;    // [G] held-out bound before training
  int64_t eval_candidates = 0;            // K of the held-out bound (capped at log K)
  std::vector<std::pair<double, double>> train_loss;  // (epoch, mean loss)
  std::vector<std::pair<double, double>> test_mi;     // (epoch, mean over groups)
  int64_t best_epoch = 0;                 // epoch whose parameters were kept (keep_best), else epochs
};

// Trains `critic` on images [N, C, H, W] in [0, 1] paired with latents [N, G * R]
// (host tensors; each batch is moved to critic->device()):
// in-batch plus `negatives` sampled negatives, losses of all groups summed.
// A fixed `seed` split holds out test_fraction of the pairs for the bound.
// Stops early with Cancelled when `should_stop` returns true.
Result<TrainReport> train_critic(Critic& critic, const torch::Tensor& images, const torch::Tensor& latents,
                                 const TrainOptions& o, const std::function<bool()>& should_stop = {});

// Held-out bound per group: the rows are split into blocks of `candidates`
// pairs, each block's latents are the candidates of its images; mean over blocks.
std::vector<double> evaluate_mi(Critic& critic, const torch::Tensor& images, const torch::Tensor& latents,
                                int64_t candidates);

// Files of a critic job (a format: add names, never rename): `critic.pt` (module
// archive: heads, CNN encoder, latent stats), `out.h5:/config` attrs (the
// options) and, when an extractor is used, a copy `feature_extractor.pt` so the
// job directory is self-contained.
inline constexpr const char* kCriticFile = "critic.pt";
inline constexpr const char* kExtractorFile = "feature_extractor.pt";
// Writes critic.pt (and copies the extractor) into `dir`, atomically.
Status save_critic(Critic& critic, const fs::path& dir);
// Writes the options as attrs of `/config` in `out` (an open out.h5).
Status write_critic_config(const h5::Location& out, const CriticOptions& o);
// Reads `dir/out.h5:/config` and `dir/critic.pt` (and `dir/feature_extractor.pt`).
// NotFound when a file is missing; InvalidArgument when they disagree.
Result<Critic> load_critic(const fs::path& dir);

}  // namespace migvis::worker::critic
