#include "worker/comm.h"

#include <algorithm>
#include <map>

namespace migvis::worker {

Shard shard_for(int64_t n, int rank, int size) {
  int64_t base = n / size, extra = n % size;
  Shard s;
  s.begin = rank * base + std::min<int64_t>(rank, extra);
  s.end = s.begin + base + (rank < extra ? 1 : 0);
  return s;
}

std::vector<Bucket> make_buckets(const std::vector<at::Tensor>& tensors, size_t bucket_bytes) {
  // Group by dtype, keep caller order inside a dtype, cut at bucket_bytes.
  std::map<int, std::vector<size_t>> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) by_type[static_cast<int>(tensors[i].scalar_type())].push_back(i);
  std::vector<Bucket> out;
  for (auto& [type, idx] : by_type) {
    Bucket cur;
    size_t bytes = 0;
    auto flush = [&] {
      if (cur.index.empty()) return;
      std::vector<at::Tensor> parts;
      for (size_t i : cur.index) parts.push_back(tensors[i].reshape({-1}));
      cur.flat = at::cat(parts).contiguous();
      out.push_back(std::move(cur));
      cur = Bucket();
      bytes = 0;
    };
    for (size_t i : idx) {
      size_t b = static_cast<size_t>(tensors[i].numel()) * tensors[i].element_size();
      if (bytes > 0 && bytes + b > bucket_bytes) flush();
      cur.index.push_back(i);
      bytes += b;
    }
    flush();
  }
  return out;
}

void unpack_bucket(const Bucket& b, std::vector<at::Tensor>& tensors) {
  int64_t off = 0;
  for (size_t i : b.index) {
    at::Tensor& t = tensors[i];
    int64_t n = t.numel();
    t.copy_(b.flat.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

Status run_bucketed(std::vector<at::Tensor>& tensors, size_t bucket_bytes, int divide_by,
                    const std::function<Status(at::Tensor& flat)>& collective) {
  for (auto& b : make_buckets(tensors, bucket_bytes)) {
    MIGVIS_RETURN_IF_ERROR(collective(b.flat));
    if (divide_by > 1) b.flat.div_(divide_by);
    unpack_bucket(b, tensors);
  }
  return Status::Ok();
}

}  // namespace migvis::worker
