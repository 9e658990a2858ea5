#include "worker/device.h"

#include <cstdlib>
#include <thread>
#include <utility>

#include <torch/cuda.h>

#include "worker/comm.h"

namespace migvis::worker {

namespace {
// One GPU per rank on a multi-GPU node: the launcher's local rank picks it.
int local_gpu_index() {
  int local = 0;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* s = std::getenv(var)) {
      local = std::atoi(s);
      break;
    }
  int n = static_cast<int>(torch::cuda::device_count());
  return n > 0 ? local % n : 0;
}
}  // namespace

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

std::string resolve_device(int gpus) {
  if (gpus <= 0 || !torch::cuda::is_available()) return "cpu";
  return "cuda:" + std::to_string(local_gpu_index());
}

std::unique_ptr<Communicator> make_communicator() {
#ifdef MIGVIS_HAVE_MPI
  if (launched_under_mpi()) {
#ifdef MIGVIS_HAVE_NCCL
    if (torch::cuda::is_available())
      if (auto c = make_nccl_communicator(local_gpu_index())) return c;
#endif
    return make_mpi_communicator();
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
