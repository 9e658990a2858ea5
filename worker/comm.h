// Communicator: the one interface distributed code goes through. Training
// loops call it unconditionally; with one process every call is a no-op, so
// no loop contains #ifdef. Implementations: single process (here), MPI on CPU
// tensors and NCCL on CUDA tensors (worker/comm_mpi.cc, worker/comm_nccl.cc,
// built when MIGVIS_HAVE_MPI / MIGVIS_HAVE_NCCL).
#pragma once

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
  bool is_root() const { return rank() == 0; }
};

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  Status all_reduce_mean(std::vector<at::Tensor>&) override { return Status::Ok(); }
  Status broadcast(std::vector<at::Tensor>&, int) override { return Status::Ok(); }
  Status barrier() override { return Status::Ok(); }
};

}  // namespace migvis::worker
