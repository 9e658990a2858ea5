// The denoising UNet of shared/MIGVIS_METHOD.md "Stage 2" (the layout of the
// paper's reference code):
//   init 7x7 conv -> per level: 2 ResNet blocks (skips kept), attention
//   (linear at every level but the deepest, full at the deepest), downsample
//   (space-to-depth + 1x1 conv; a 3x3 conv at the deepest level) -> middle:
//   ResNet, full attention, ResNet -> per level (reversed): 2 ResNet blocks on
//   concatenated skips, attention, upsample (nearest + 3x3 conv; a 3x3 conv at
//   the top) -> final ResNet block on concat with the init features -> 1x1 conv.
// ResNet block: (conv3x3 -> RMS-norm -> time scale/shift -> SiLU) then
// (conv3x3 -> RMS-norm -> SiLU), plus a 1x1 residual projection when widths differ.
// Time: sinusoidal embedding (width) -> Linear -> GELU -> Linear (4 x width).
//
// Sizes: paper 128x128, width 64, mults (1, 2, 4, 8) (~35.7 M params);
// CPU default 32x32, width 32, mults (1, 2, 2) (see UNetOptions). The image
// size must be divisible by 2^(levels - 1).
// Not thread-safe (a torch::nn::Module); one owner per job.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"

namespace migvis::worker::diffusion {

struct UNetOptions {
  int64_t width = 32;                      // base channel width ("dim")
  std::vector<int64_t> mults = {1, 2, 2};  // channel multiplier per level
  int64_t channels = 1;                    // image channels (input and output)
  int64_t image_size = 32;                 // H = W, pixels
  int64_t attn_heads = 4;
  int64_t attn_dim_head = 32;
  bool full_attn_deepest = true;           // full (not linear) attention at the deepest level

  // The paper's configuration (128x128, width 64, mults 1,2,4,8).
  static UNetOptions paper();
  // InvalidArgument naming the offending field.
  Status validate() const;
  int64_t time_dim() const { return 4 * width; }
};

// RMS norm over channels: x / ||x||_c * sqrt(C) * g.  x: [B, C, H, W].
class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor g_;  // [1, C, 1, 1]
  double scale_;
};
TORCH_MODULE(RMSNorm);

class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t dim_in, int64_t dim_out, int64_t time_dim);
  // x: [B, dim_in, H, W]; t_emb: [B, time_dim] -> [B, dim_out, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t_emb);

 private:
  torch::nn::Linear time_mlp_{nullptr};  // time_dim -> 2 * dim_out (scale, shift)
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  RMSNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d res_conv_{nullptr};  // 1x1, only when dim_in != dim_out
};
TORCH_MODULE(ResnetBlock);

// Linear attention (softmax over features for q, over positions for k):
// O(HW) memory; used at high resolution. Includes its pre-norm; the caller adds the residual.
class LinearAttentionImpl : public torch::nn::Module {
 public:
  LinearAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head);
  // x: [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t heads_, dim_head_;
  RMSNorm norm_{nullptr}, out_norm_{nullptr};
  torch::nn::Conv2d to_qkv_{nullptr}, to_out_{nullptr};
};
TORCH_MODULE(LinearAttention);

// Full softmax attention over the H*W positions. Includes its pre-norm.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads, int64_t dim_head);
  // x: [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t heads_, dim_head_;
  RMSNorm norm_{nullptr};
  torch::nn::Conv2d to_qkv_{nullptr}, to_out_{nullptr};
};
TORCH_MODULE(Attention);

// Sinusoidal embedding of (float) timesteps. t: [B] -> [B, dim].
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim);

struct UNetOutput {
  torch::Tensor pred;  // [B, C, H, W]: eps (pred_noise) or v (pred_v)
};

class UNetImpl : public torch::nn::Module {
 public:
  // Precondition: options.validate().ok().
  explicit UNetImpl(const UNetOptions& options);
  // x: [B, C, H, W] (float32 or float64, in [-1, 1] scale); t: [B] int64 or float timesteps.
  UNetOutput forward(const torch::Tensor& x, const torch::Tensor& t);
  const UNetOptions& options() const { return options_; }
  int64_t num_parameters() const;

 private:
  struct Level {
    ResnetBlock block1{nullptr}, block2{nullptr};
    torch::nn::AnyModule attn;       // LinearAttention or Attention
    torch::nn::AnyModule resample;   // Downsample/Upsample stack or a 3x3 conv
    bool space_to_depth = false;     // down path: rearrange before the 1x1 conv
    bool upsample = false;           // up path: nearest x2 before the conv
  };
  UNetOptions options_;
  torch::nn::Conv2d init_conv_{nullptr}, final_conv_{nullptr};
  torch::nn::Linear time_fc1_{nullptr}, time_fc2_{nullptr};
  std::vector<Level> downs_, ups_;
  ResnetBlock mid1_{nullptr}, mid2_{nullptr}, final_block_{nullptr};
  Attention mid_attn_{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace migvis::worker::diffusion
