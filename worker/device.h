// Where and how one worker job runs: intra-op threads, the device (CPU or one
// CUDA GPU per rank) and the communicator between ranks. Decided once per job
// in worker/main.cc; stages only read the result (StageContext).
#pragma once

#include <memory>
#include <string>

namespace migvis::worker {

class Communicator;  // worker/comm.h

// Thread count: explicit flag, else job.yaml's resources.threads, else
// SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else hardware_concurrency().
int resolve_threads(int flag, int from_job);
// "cuda:0" when CUDA is available and the job asked for GPUs, else "cpu".
std::string resolve_device(int gpus);
// MPI communicator when launched by mpirun/srun with more than one rank, NCCL
// when the device is CUDA and NCCL was built in; nullptr for a single process.
std::unique_ptr<Communicator> make_communicator();

// This process's rank and world size from the launcher's environment
// (Open MPI, PMIx, SLURM); {0, 1} when not launched by one.
struct RankInfo {
  int rank = 0;
  int size = 1;
};
RankInfo rank_from_environment();

}  // namespace migvis::worker
