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

DeviceRoutingCommunicator::DeviceRoutingCommunicator(std::unique_ptr<Communicator> host, Factory make_cuda)
    : host_(std::move(host)), make_cuda_(std::move(make_cuda)) {}

DeviceRoutingCommunicator::~DeviceRoutingCommunicator() { cuda_.reset(); }

std::string DeviceRoutingCommunicator::name() const {
  return cuda_ ? host_->name() + "+" + cuda_->name() : host_->name();
}

Communicator* DeviceRoutingCommunicator::cuda() {
  if (!cuda_requested_) {
    cuda_requested_ = true;
    if (make_cuda_) cuda_ = make_cuda_();
  }
  return cuda_.get();
}

Status DeviceRoutingCommunicator::route(std::vector<at::Tensor>& tensors,
                                        const std::function<Status(Communicator&, std::vector<at::Tensor>&)>& op) {
  std::vector<at::Tensor> on_host, on_cuda;  // handles share storage: in-place ops reach the caller's tensors
  for (auto& t : tensors) (t.is_cuda() ? on_cuda : on_host).push_back(t);
  if (!on_host.empty()) MIGVIS_RETURN_IF_ERROR(op(*host_, on_host));
  if (on_cuda.empty()) return Status::Ok();
  if (Communicator* c = cuda()) return op(*c, on_cuda);
  std::vector<at::Tensor> copies;
  for (auto& t : on_cuda) copies.push_back(t.cpu());
  MIGVIS_RETURN_IF_ERROR(op(*host_, copies));
  for (size_t i = 0; i < on_cuda.size(); ++i) on_cuda[i].copy_(copies[i]);
  return Status::Ok();
}

Status DeviceRoutingCommunicator::all_reduce_mean(std::vector<at::Tensor>& tensors) {
  return route(tensors, [](Communicator& c, std::vector<at::Tensor>& ts) { return c.all_reduce_mean(ts); });
}

Status DeviceRoutingCommunicator::broadcast(std::vector<at::Tensor>& tensors, int root) {
  return route(tensors, [root](Communicator& c, std::vector<at::Tensor>& ts) { return c.broadcast(ts, root); });
}

Result<at::Tensor> DeviceRoutingCommunicator::gather_rows(const at::Tensor& local, int root) {
  return host_->gather_rows(local.is_cuda() ? local.cpu() : local, root);
}

}  // namespace migvis::worker
