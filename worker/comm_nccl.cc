// NCCL communicator on CUDA tensors. Rank 0 creates the NCCL unique id and
// sends it over MPI_Bcast; every collective runs on one CUDA stream owned by
// this object and is synchronised before returning (the training loop is
// synchronous anyway). Built only with MIGVIS_HAVE_NCCL; runs only where a
// GPU and a CUDA LibTorch exist (tests labelled gpu skip otherwise).
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <fmt/format.h>

#include "worker/comm.h"

namespace migvis::worker {
namespace {

constexpr size_t kBucketBytes = 25u << 20;

ncclDataType_t nccl_type(at::ScalarType t, bool* ok) {
  *ok = true;
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: return ncclUint8;
    default: *ok = false; return ncclFloat32;
  }
}

Status nccl_status(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess) return Status::Ok();
  return Status::Unavailable(fmt::format("{} failed: {}", what, ncclGetErrorString(rc)));
}

Status cuda_status(cudaError_t rc, const char* what) {
  if (rc == cudaSuccess) return Status::Ok();
  return Status::Unavailable(fmt::format("{} failed: {}", what, cudaGetErrorString(rc)));
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(int device) : device_(device) {
    owns_mpi_ = init_mpi_if_needed();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    ncclUniqueId id;
    if (rank_ == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    cudaSetDevice(device_);
    cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    init_ = nccl_status(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }
  const Status& init_status() const { return init_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  Status all_reduce_mean(std::vector<at::Tensor>& tensors) override {
    // Runs even with one rank, so a 1-rank job (and the gpu test) exercises NCCL.
    return run_bucketed(tensors, kBucketBytes, size_, [this](at::Tensor& flat) {
      bool ok = false;
      ncclDataType_t dt = nccl_type(flat.scalar_type(), &ok);
      if (!ok || !flat.is_cuda()) return Status::InvalidArgument("NCCL all_reduce_mean needs CUDA float tensors");
      MIGVIS_RETURN_IF_ERROR(nccl_status(
          ncclAllReduce(flat.data_ptr(), flat.data_ptr(), flat.numel(), dt, ncclSum, comm_, stream_), "ncclAllReduce"));
      return cuda_status(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    });
  }

  Status broadcast(std::vector<at::Tensor>& tensors, int root) override {
    // Runs even with one rank, so a 1-rank job (and the gpu test) exercises NCCL.
    return run_bucketed(tensors, kBucketBytes, 1, [this, root](at::Tensor& flat) {
      bool ok = false;
      ncclDataType_t dt = nccl_type(flat.scalar_type(), &ok);
      if (!ok || !flat.is_cuda()) return Status::InvalidArgument("NCCL broadcast needs CUDA tensors");
      MIGVIS_RETURN_IF_ERROR(nccl_status(
          ncclBroadcast(flat.data_ptr(), flat.data_ptr(), flat.numel(), dt, root, comm_, stream_), "ncclBroadcast"));
      return cuda_status(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    });
  }

  Status barrier() override {
    return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? Status::Ok() : Status::Unavailable("MPI_Barrier failed");
  }

  // Results are small (images of a grid): gather through host memory over MPI.
  Result<at::Tensor> gather_rows(const at::Tensor& local, int root) override { return mpi_gather_rows(local, root); }

 private:
  int device_ = 0;
  int rank_ = 0;
  int size_ = 1;
  bool owns_mpi_ = false;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  Status init_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int device_index) {
  auto c = std::make_unique<NcclCommunicator>(device_index);
  if (!c->init_status().ok()) return nullptr;
  return c;
}

}  // namespace migvis::worker
