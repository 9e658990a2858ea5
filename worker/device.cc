#include "worker/device.h"

#include <cstdlib>
#include <thread>
#include <utility>

#include <torch/cuda.h>

#include "common/log.h"
#include "worker/comm.h"

namespace migvis::worker {

int resolve_threads(int flag, int from_job) {
  if (flag > 0) return flag;
  if (from_job > 0) return from_job;
  for (const char* var : {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"}) {
    if (const char* s = std::getenv(var)) {
      int n = std::atoi(s);
      if (n > 0) return n;
    }
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

CudaProbe torch_cuda_probe() {
  return {[] { return torch::cuda::is_available(); }, [] { return static_cast<int>(torch::cuda::device_count()); }};
}

int local_rank_from_environment() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* s = std::getenv(var)) return std::max(0, std::atoi(s));
  return 0;
}

std::string resolve_device(int gpus, const CudaProbe& probe, int local_rank, bool* fell_back) {
  if (fell_back) *fell_back = false;
  if (gpus <= 0) return "cpu";  // never asks CUDA: a CPU job stays off the driver entirely
  const int n = probe.available() ? probe.device_count() : 0;
  if (n <= 0) {
    if (fell_back) *fell_back = true;
    return "cpu";
  }
  return "cuda:" + std::to_string(std::max(0, local_rank) % n);
}

std::string resolve_device(int gpus) {
  bool fell_back = false;
  std::string d = resolve_device(gpus, torch_cuda_probe(), local_rank_from_environment(), &fell_back);
  if (fell_back)
    MIGVIS_LOG_WARN("job asked for {} GPU(s) but this LibTorch sees no CUDA device: running on the CPU", gpus);
  return d;
}

std::unique_ptr<Communicator> make_communicator() {
#ifdef MIGVIS_HAVE_MPI
  if (launched_under_mpi()) {
    DeviceRoutingCommunicator::Factory cuda;
#ifdef MIGVIS_HAVE_NCCL
    // Called only on the first collective over CUDA tensors, i.e. only in a
    // job whose device is CUDA; each rank's tensors live on its local GPU.
    cuda = []() -> std::unique_ptr<Communicator> {
      const int n = static_cast<int>(torch::cuda::device_count());
      auto c = make_nccl_communicator(n > 0 ? local_rank_from_environment() % n : 0);
      if (!c) MIGVIS_LOG_WARN("NCCL communicator failed to start: CUDA tensors go over MPI through host memory");
      return c;
    };
#endif
    return std::make_unique<DeviceRoutingCommunicator>(make_mpi_communicator(), std::move(cuda));
  }
#endif
  return nullptr;
}

RankInfo rank_from_environment() {
  const std::pair<const char*, const char*> vars[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMIX_RANK", "PMIX_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}};
  for (auto& [r, s] : vars) {
    const char* rv = std::getenv(r);
    const char* sv = std::getenv(s);
    if (rv && sv && std::atoi(sv) > 0) return {std::atoi(rv), std::atoi(sv)};
  }
  return {};
}

}  // namespace migvis::worker
