// Communicator: the one interface distributed code goes through. Training
// loops call it unconditionally; with one process every call is a no-op, so
// no loop contains #ifdef. Implementations: single process (here), MPI on CPU
// tensors and NCCL on CUDA tensors (worker/comm_mpi.cc, worker/comm_nccl.cc,
// built when MIGVIS_HAVE_MPI / MIGVIS_HAVE_NCCL).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/status.h"

namespace migvis::worker {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"
  // Averages every tensor over ranks, in place. Tensors are packed into
  // flattened buckets, not sent one call per tensor.
  virtual Status all_reduce_mean(std::vector<at::Tensor>& tensors) = 0;
  // Copies root's tensors to every rank, in place.
  virtual Status broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  virtual Status barrier() = 0;
  // Concatenates every rank's `local` rows (dim 0; other dims and dtype equal on
  // all ranks, row counts may differ) on `root`, in rank order. Other ranks get
  // an undefined tensor.
  virtual Result<at::Tensor> gather_rows(const at::Tensor& local, int root) = 0;
  bool is_root() const { return rank() == 0; }
};

// Splits n items over ranks in contiguous blocks: rank r gets [begin, end).
// The first n % size ranks get one item more.
struct Shard {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
Shard shard_for(int64_t n, int rank, int size);

// Bucketed flatten/unflatten used by the multi-process communicators: packs
// tensors of one dtype into contiguous buffers of at most `bucket_bytes`.
struct Bucket {
  std::vector<size_t> index;  // positions in the caller's tensor list
  at::Tensor flat;            // 1-D, contiguous
};
std::vector<Bucket> make_buckets(const std::vector<at::Tensor>& tensors, size_t bucket_bytes);
void unpack_bucket(const Bucket& b, std::vector<at::Tensor>& tensors);
// The bucketed collective both multi-process communicators run: packs
// `tensors`, applies `collective` to each bucket's flat tensor in place, divides
// by `divide_by` when it is > 1 (a mean), and copies the results back.
Status run_bucketed(std::vector<at::Tensor>& tensors, size_t bucket_bytes, int divide_by,
                    const std::function<Status(at::Tensor& flat)>& collective);

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  Status all_reduce_mean(std::vector<at::Tensor>&) override { return Status::Ok(); }
  Status broadcast(std::vector<at::Tensor>&, int) override { return Status::Ok(); }
  Status barrier() override { return Status::Ok(); }
  Result<at::Tensor> gather_rows(const at::Tensor& local, int) override { return local; }
};

// Routes every collective by where its tensors live, so the communicator follows
// the job's device: CPU tensors go to `host` (MPI); CUDA tensors go to the
// communicator `make_cuda` returns (NCCL), which is created on the first
// collective that has CUDA tensors and never otherwise; when `make_cuda` is
// empty or returns nullptr, CUDA tensors are staged through host memory over
// `host`. gather_rows returns host rows (it feeds HDF5/PNG writes). A list
// mixing devices is split, each part goes its own way. rank/size/barrier: host's.
class DeviceRoutingCommunicator final : public Communicator {
 public:
  using Factory = std::function<std::unique_ptr<Communicator>()>;
  DeviceRoutingCommunicator(std::unique_ptr<Communicator> host, Factory make_cuda);
  ~DeviceRoutingCommunicator() override;
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  // "mpi", or "mpi+nccl" once the CUDA communicator exists.
  std::string name() const override;
  Status all_reduce_mean(std::vector<at::Tensor>& tensors) override;
  Status broadcast(std::vector<at::Tensor>& tensors, int root) override;
  Status barrier() override { return host_->barrier(); }
  Result<at::Tensor> gather_rows(const at::Tensor& local, int root) override;
  // Whether `make_cuda` has been called (tests: a CPU job never calls it).
  bool cuda_backend_requested() const { return cuda_requested_; }

 private:
  Communicator* cuda();  // nullptr: stage through host memory
  // Applies `op` to the CPU tensors through host_ and to the CUDA ones through
  // cuda() (or host_ on host copies).
  Status route(std::vector<at::Tensor>& tensors,
               const std::function<Status(Communicator&, std::vector<at::Tensor>&)>& op);

  std::unique_ptr<Communicator> cuda_;  // destroyed before host_ (declared first)
  std::unique_ptr<Communicator> host_;
  Factory make_cuda_;
  bool cuda_requested_ = false;
};

#ifdef MIGVIS_HAVE_MPI
// MPI on CPU tensors (Debian's LibTorch has no ProcessGroupMPI). Initialises MPI
// on construction (MPI_THREAD_FUNNELED) and finalises it on destruction.
std::unique_ptr<Communicator> make_mpi_communicator();
// True when this process was started by mpirun/srun with more than one rank.
bool launched_under_mpi();
// Initialises MPI (MPI_THREAD_FUNNELED) unless already done; true if this call did.
bool init_mpi_if_needed();
// MPI_Gatherv of CPU tensors' rows on `root` (shared by the MPI and NCCL communicators).
Result<at::Tensor> mpi_gather_rows(const at::Tensor& local, int root);
#endif
#ifdef MIGVIS_HAVE_NCCL
// NCCL on CUDA tensors; the unique id travels over MPI_Bcast from rank 0.
std::unique_ptr<Communicator> make_nccl_communicator(int device_index);
#endif

}  // namespace migvis::worker
