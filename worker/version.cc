#include "worker/version.h"

#include <cstdlib>
#include <thread>

#include <torch/version.h>
#include <torch/cuda.h>

#include "worker/comm.h"

#ifdef MIGVIS_HAVE_MPI
#include <mpi.h>
#endif
#ifdef MIGVIS_HAVE_NCCL
#include <nccl.h>
#endif

#include "migvis_build_info.h"

namespace migvis::worker {

std::string version_string() { return std::string("migvis-worker ") + MIGVIS_VERSION + " (" + MIGVIS_GIT_COMMIT + ")"; }

std::map<std::string, std::string> library_versions() {
  std::map<std::string, std::string> v;
  v["migvis"] = MIGVIS_VERSION;
  v["git"] = MIGVIS_GIT_COMMIT;
  v["git_dirty"] = MIGVIS_GIT_DIRTY;  // "clean" or a hash of `git diff HEAD` at build time
  v["build"] = std::string(MIGVIS_BUILD_TYPE) + ": " + MIGVIS_BUILD_FLAGS;
  v["torch"] = TORCH_VERSION;
  v["cuda"] = torch::cuda::is_available() ? "available" : "none";
#ifdef MIGVIS_HAVE_MPI
  {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    std::string s(lib, static_cast<size_t>(len));
    v["mpi"] = s.substr(0, s.find(','));
  }
#else
  v["mpi"] = "none";
#endif
#ifdef MIGVIS_HAVE_NCCL
  {
    int nv = 0;
    ncclGetVersion(&nv);
    v["nccl"] = std::to_string(nv);
  }
#else
  v["nccl"] = "none";
#endif
  return v;
}

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
  // One GPU per rank on a multi-GPU node: the local rank picks it.
  int local = 0;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* s = std::getenv(var)) {
      local = std::atoi(s);
      break;
    }
  int n = static_cast<int>(torch::cuda::device_count());
  return "cuda:" + std::to_string(n > 0 ? local % n : 0);
}

std::unique_ptr<Communicator> make_communicator() {
#ifdef MIGVIS_HAVE_MPI
  if (launched_under_mpi()) {
#ifdef MIGVIS_HAVE_NCCL
    if (torch::cuda::is_available()) {
      // One GPU per rank: the local rank picks the device.
      int local = 0;
      for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
        if (const char* s = std::getenv(var)) { local = std::atoi(s); break; }
      int n = static_cast<int>(torch::cuda::device_count());
      if (auto c = make_nccl_communicator(n > 0 ? local % n : 0)) return c;
    }
#endif
    return make_mpi_communicator();
  }
#endif
  return nullptr;
}

}  // namespace migvis::worker

namespace migvis::worker {

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
