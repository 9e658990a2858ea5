#include "worker/diffusion/unet.h"

#include <cmath>

#include <fmt/format.h>

namespace migvis::worker::diffusion {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, bool bias = true) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2).bias(bias));
}

// [B, C, 2h, 2w] -> [B, 4C, h, w] (channel order c, p1, p2 as in the reference's rearrange).
torch::Tensor space_to_depth(const torch::Tensor& x) {
  auto B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.view({B, C, H / 2, 2, W / 2, 2}).permute({0, 1, 3, 5, 2, 4}).reshape({B, C * 4, H / 2, W / 2});
}

}  // namespace

UNetOptions UNetOptions::paper() {
  UNetOptions o;
  o.width = 64;
  o.mults = {1, 2, 4, 8};
  o.image_size = 128;
  return o;
}

Status UNetOptions::validate() const {
  if (width < 1) return Status::InvalidArgument(fmt::format("width: expected >= 1, got {}", width));
  if (width % 2 != 0 || width < 4)
    return Status::InvalidArgument(fmt::format("width: expected an even number >= 4 (sinusoidal embedding), got {}", width));
  if (mults.empty()) return Status::InvalidArgument("mults: expected at least one level");
  for (auto m : mults)
    if (m < 1) return Status::InvalidArgument(fmt::format("mults: expected positive multipliers, got {}", m));
  if (channels < 1) return Status::InvalidArgument(fmt::format("channels: expected >= 1, got {}", channels));
  int64_t f = int64_t{1} << (mults.size() - 1);
  if (image_size < f || image_size % f != 0)
    return Status::InvalidArgument(fmt::format(
        "image_size: {} px is not divisible by 2^(levels-1) = {} for {} levels", image_size, f, mults.size()));
  if (attn_heads < 1 || attn_dim_head < 1)
    return Status::InvalidArgument("attn_heads and attn_dim_head: expected >= 1");
  return Status::Ok();
}

// ------------------------------------------------------------------ blocks

RMSNormImpl::RMSNormImpl(int64_t dim) : scale_(std::sqrt(static_cast<double>(dim))) {
  g_ = register_parameter("g", torch::ones({1, dim, 1, 1}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // x: [B, C, H, W]; L2-normalise over C (eps as F.normalize: 1e-12).
  return F::normalize(x, F::NormalizeFuncOptions().dim(1)) * g_ * scale_;
}

ResnetBlockImpl::ResnetBlockImpl(int64_t dim_in, int64_t dim_out, int64_t time_dim) {
  time_mlp_ = register_module("time_mlp", torch::nn::Linear(time_dim, 2 * dim_out));
  conv1_ = register_module("conv1", conv(dim_in, dim_out, 3));
  norm1_ = register_module("norm1", RMSNorm(dim_out));
  conv2_ = register_module("conv2", conv(dim_out, dim_out, 3));
  norm2_ = register_module("norm2", RMSNorm(dim_out));
  if (dim_in != dim_out) res_conv_ = register_module("res_conv", conv(dim_in, dim_out, 1));
}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& t_emb) {
  // t_emb: [B, T] -> scale, shift: [B, dim_out, 1, 1]
  auto ss = time_mlp_->forward(torch::silu(t_emb)).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
  torch::Tensor h = norm1_->forward(conv1_->forward(x));  // [B, dim_out, H, W]
  h = torch::silu(h * (ss[0] + 1) + ss[1]);
  h = torch::silu(norm2_->forward(conv2_->forward(h)));
  return h + (res_conv_ ? res_conv_->forward(x) : x);
}

LinearAttentionImpl::LinearAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head)
    : heads_(heads), dim_head_(dim_head) {
  int64_t hidden = heads * dim_head;
  norm_ = register_module("norm", RMSNorm(dim));
  to_qkv_ = register_module("to_qkv", conv(dim, 3 * hidden, 1, /*bias=*/false));
  to_out_ = register_module("to_out", conv(hidden, dim, 1));
  out_norm_ = register_module("out_norm", RMSNorm(dim));
}

torch::Tensor LinearAttentionImpl::forward(const torch::Tensor& x) {
  auto B = x.size(0), H = x.size(2), W = x.size(3);
  auto qkv = to_qkv_->forward(norm_->forward(x)).chunk(3, 1);  // 3 x [B, h*d, H, W]
  auto heads = [&](const torch::Tensor& t) { return t.reshape({B, heads_, dim_head_, H * W}); };
  torch::Tensor q = heads(qkv[0]).softmax(-2) * (1.0 / std::sqrt(static_cast<double>(dim_head_)));  // [B, h, d, N]
  torch::Tensor k = heads(qkv[1]).softmax(-1);                                                       // [B, h, d, N]
  torch::Tensor v = heads(qkv[2]);                                                                   // [B, h, e, N]
  torch::Tensor context = torch::matmul(k, v.transpose(-1, -2));   // [B, h, d, e]
  torch::Tensor out = torch::matmul(context.transpose(-1, -2), q);  // [B, h, e, N]
  out = out.reshape({B, heads_ * dim_head_, H, W});
  return out_norm_->forward(to_out_->forward(out));
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads, int64_t dim_head) : heads_(heads), dim_head_(dim_head) {
  int64_t hidden = heads * dim_head;
  norm_ = register_module("norm", RMSNorm(dim));
  to_qkv_ = register_module("to_qkv", conv(dim, 3 * hidden, 1, /*bias=*/false));
  to_out_ = register_module("to_out", conv(hidden, dim, 1));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  auto B = x.size(0), H = x.size(2), W = x.size(3);
  auto qkv = to_qkv_->forward(norm_->forward(x)).chunk(3, 1);
  auto heads = [&](const torch::Tensor& t) { return t.reshape({B, heads_, dim_head_, H * W}).transpose(-1, -2); };
  torch::Tensor q = heads(qkv[0]) * (1.0 / std::sqrt(static_cast<double>(dim_head_)));  // [B, h, N, d]
  torch::Tensor k = heads(qkv[1]), v = heads(qkv[2]);                                  // [B, h, N, d]
  torch::Tensor attn = torch::matmul(q, k.transpose(-1, -2)).softmax(-1);             // [B, h, N, N]
  torch::Tensor out = torch::matmul(attn, v);                                           // [B, h, N, d]
  out = out.transpose(-1, -2).reshape({B, heads_ * dim_head_, H, W});
  return to_out_->forward(out);
}

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim) {
  int64_t half = dim / 2;
  double step = std::log(10000.0) / static_cast<double>(half - 1);
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(t.device());
  torch::Tensor freqs = torch::exp(torch::arange(half, opts) * -step);  // [half]
  torch::Tensor args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  return torch::cat({args.sin(), args.cos()}, 1);  // [B, dim]
}

// ------------------------------------------------------------------ UNet

UNetImpl::UNetImpl(const UNetOptions& o) : options_(o) {
  TORCH_CHECK(o.validate().ok(), "UNetOptions: ", o.validate().message());
  const int64_t tdim = o.time_dim();
  const size_t L = o.mults.size();
  std::vector<int64_t> dims = {o.width};
  for (auto m : o.mults) dims.push_back(o.width * m);

  init_conv_ = register_module("init_conv", conv(o.channels, o.width, 7));
  time_fc1_ = register_module("time_fc1", torch::nn::Linear(o.width, tdim));
  time_fc2_ = register_module("time_fc2", torch::nn::Linear(tdim, tdim));

  auto attention = [&](int64_t dim, bool full) {
    return full ? torch::nn::AnyModule(Attention(dim, o.attn_heads, o.attn_dim_head))
                : torch::nn::AnyModule(LinearAttention(dim, o.attn_heads, o.attn_dim_head));
  };
  for (size_t i = 0; i < L; ++i) {
    int64_t din = dims[i], dout = dims[i + 1];
    bool last = i + 1 == L;
    Level lv;
    lv.block1 = ResnetBlock(din, din, tdim);
    lv.block2 = ResnetBlock(din, din, tdim);
    lv.attn = attention(din, last && o.full_attn_deepest);
    lv.space_to_depth = !last;
    lv.resample = torch::nn::AnyModule(last ? conv(din, dout, 3) : conv(din * 4, dout, 1));
    std::string p = fmt::format("down{}_", i);
    register_module(p + "block1", lv.block1);
    register_module(p + "block2", lv.block2);
    register_module(p + "attn", lv.attn.ptr());
    register_module(p + "resample", lv.resample.ptr());
    downs_.push_back(std::move(lv));
  }
  int64_t mid = dims.back();
  mid1_ = register_module("mid1", ResnetBlock(mid, mid, tdim));
  mid_attn_ = register_module("mid_attn", Attention(mid, o.attn_heads, o.attn_dim_head));
  mid2_ = register_module("mid2", ResnetBlock(mid, mid, tdim));
  for (size_t j = 0; j < L; ++j) {
    size_t i = L - 1 - j;  // level, deepest first
    int64_t din = dims[i], dout = dims[i + 1];
    bool last = j + 1 == L;  // top level
    Level lv;
    lv.block1 = ResnetBlock(dout + din, dout, tdim);
    lv.block2 = ResnetBlock(dout + din, dout, tdim);
    lv.attn = attention(dout, i + 1 == L && o.full_attn_deepest);
    lv.upsample = !last;
    lv.resample = torch::nn::AnyModule(conv(dout, din, 3));
    std::string p = fmt::format("up{}_", j);
    register_module(p + "block1", lv.block1);
    register_module(p + "block2", lv.block2);
    register_module(p + "attn", lv.attn.ptr());
    register_module(p + "resample", lv.resample.ptr());
    ups_.push_back(std::move(lv));
  }
  final_block_ = register_module("final_block", ResnetBlock(2 * o.width, o.width, tdim));
  final_conv_ = register_module("final_conv", conv(o.width, o.channels, 1));
}

UNetOutput UNetImpl::forward(const torch::Tensor& x_in, const torch::Tensor& t) {
  // x_in: [B, C, S, S]; t: [B]
  torch::Tensor x = init_conv_->forward(x_in);  // [B, w, S, S]
  torch::Tensor r = x;
  torch::Tensor temb = sinusoidal_embedding(t, options_.width).to(x.scalar_type());  // [B, w]
  temb = time_fc2_->forward(torch::gelu(time_fc1_->forward(temb)));                 // [B, 4w]

  std::vector<torch::Tensor> skips;
  for (auto& lv : downs_) {
    // x: [B, dims[i], s, s]
    x = lv.block1->forward(x, temb);
    skips.push_back(x);
    x = lv.block2->forward(x, temb);
    x = lv.attn.forward(x) + x;
    skips.push_back(x);
    x = lv.resample.forward(lv.space_to_depth ? space_to_depth(x) : x);  // [B, dims[i+1], s/2 (or s), ...]
  }
  x = mid1_->forward(x, temb);  // [B, mid, s_min, s_min]
  x = mid_attn_->forward(x) + x;
  x = mid2_->forward(x, temb);
  for (auto& lv : ups_) {
    // x: [B, dims[i+1], s, s]; skips: [B, dims[i], s, s]
    x = lv.block1->forward(torch::cat({x, skips.back()}, 1), temb);
    skips.pop_back();
    x = lv.block2->forward(torch::cat({x, skips.back()}, 1), temb);
    skips.pop_back();
    x = lv.attn.forward(x) + x;
    if (lv.upsample)
      x = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
    x = lv.resample.forward(x);  // [B, dims[i], 2s (or s), ...]
  }
  x = final_block_->forward(torch::cat({x, r}, 1), temb);  // [B, w, S, S]
  return {final_conv_->forward(x)};                         // [B, C, S, S]
}

int64_t UNetImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace migvis::worker::diffusion
