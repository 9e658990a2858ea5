#include "worker/version.h"

#include <torch/version.h>
#include <torch/cuda.h>

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

}  // namespace migvis::worker
