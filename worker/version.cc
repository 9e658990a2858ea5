#include "worker/version.h"

#include <cstdlib>
#include <thread>

#include <torch/version.h>
#include <torch/cuda.h>

#include "worker/comm.h"

#include "migvis_build_info.h"

namespace migvis::worker {

std::string version_string() { return std::string("migvis-worker ") + MIGVIS_VERSION + " (" + MIGVIS_GIT_COMMIT + ")"; }

std::map<std::string, std::string> library_versions() {
  std::map<std::string, std::string> v;
  v["migvis"] = MIGVIS_VERSION;
  v["git"] = MIGVIS_GIT_COMMIT;
  v["torch"] = TORCH_VERSION;
  v["cuda"] = torch::cuda::is_available() ? "available" : "none";
#ifdef MIGVIS_HAVE_MPI
  v["mpi"] = "built";
#else
  v["mpi"] = "none";
#endif
#ifdef MIGVIS_HAVE_NCCL
  v["nccl"] = "built";
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
  if (gpus > 0 && torch::cuda::is_available()) return "cuda:0";
  return "cpu";
}

std::unique_ptr<Communicator> make_communicator() { return nullptr; }

}  // namespace migvis::worker
