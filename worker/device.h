// Where and how one worker job runs: intra-op threads, the device (CPU or one
// CUDA GPU per rank) and the communicator between ranks. Decided once per job
// in worker/main.cc; stages only read the result (StageContext::device) and put
// every model and tensor there (worker/stages/inputs.h: stage_device()).
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace migvis::worker {

class Communicator;  // worker/comm.h

// Thread count: explicit flag, else job.yaml's resources.threads, else
// SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else hardware_concurrency().
int resolve_threads(int flag, int from_job);

// How the worker asks about CUDA: a seam so tests can prove that a job with
// `gpus: 0` never asks at all (the default probe calls LibTorch).
struct CudaProbe {
  std::function<bool()> available;
  std::function<int()> device_count;
};
CudaProbe torch_cuda_probe();

// The launcher's node-local rank (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID,
// MPI_LOCALRANKID); 0 when not launched by one.
int local_rank_from_environment();

// "cpu" when the job asked for no GPU (the probe is not called), or when it
// asked but no CUDA device is usable (then `*fell_back` is set when given);
// else "cuda:<local_rank mod device_count>": one GPU per rank on a node.
std::string resolve_device(int gpus, const CudaProbe& probe, int local_rank, bool* fell_back = nullptr);
// Same with LibTorch's probe and the launcher's local rank.
std::string resolve_device(int gpus);

// MPI communicator when launched by mpirun/srun with more than one rank
// (collectives on CPU tensors go over MPI; on CUDA tensors over NCCL when it
// was built in, created on the first CUDA collective, else staged through host
// memory), nullptr for a single process. A job on the CPU therefore never
// creates an NCCL communicator nor touches CUDA, even on a GPU node.
std::unique_ptr<Communicator> make_communicator();

// This process's rank and world size from the launcher's environment
// (Open MPI, PMIx, SLURM); {0, 1} when not launched by one.
struct RankInfo {
  int rank = 0;
  int size = 1;
};
RankInfo rank_from_environment();

}  // namespace migvis::worker
