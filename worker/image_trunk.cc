#include "worker/image_trunk.h"

#include <numeric>

namespace migvis::worker {

namespace nn = torch::nn;

ImageTrunkImpl::ImageTrunkImpl(const ImageTrunkOptions& o) : options(o) {
  body = register_module("body", nn::Sequential());
  auto block = [&](int64_t in, int64_t out) {
    body->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)));
    body->push_back(nn::GroupNorm(nn::GroupNormOptions(std::gcd<int64_t>(8, out), out)));
    body->push_back(nn::SiLU());
  };
  const int64_t w = o.width;
  block(o.channels, w);
  block(w, w);
  body->push_back(nn::MaxPool2d(2));
  block(w, 2 * w);
  block(2 * w, 2 * w);
  body->push_back(nn::MaxPool2d(2));
  block(2 * w, 4 * w);
  block(4 * w, 4 * w);
}

torch::Tensor ImageTrunkImpl::forward(const torch::Tensor& x) {
  auto h = body->forward(x);                                            // [B, 4w, S/4, S/4]
  auto global = h.mean({2, 3});                                         // [B, 4w]
  auto quadrants = torch::adaptive_avg_pool2d(h, {2, 2}).flatten(1);    // [B, 16w]
  return torch::cat({global, quadrants}, 1);                            // [B, 20w]
}

}  // namespace migvis::worker
