// Build and runtime facts of this worker, recorded as provenance in result.yaml.
// (Threads, device and communicator selection: worker/device.h.)
#pragma once

#include <map>
#include <string>

namespace migvis::worker {

std::string version_string();
// {migvis, git, torch, mpi, cuda, nccl, blas, build_type}
std::map<std::string, std::string> library_versions();
}  // namespace migvis::worker
