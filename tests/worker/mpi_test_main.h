// The main() of the test binaries that ctest starts under `mpirun -np 2`:
// one MPI communicator for every test (set into *comm before the tests run),
// one gtest report (rank 0's), and a failure on any rank fails every rank.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/comm.h"

namespace migvis::testing {

inline int run_tests_under_mpi(int argc, char** argv, worker::Communicator** comm) {
  ::testing::InitGoogleTest(&argc, argv);
  auto owned = worker::make_mpi_communicator();
  *comm = owned.get();
  if (owned->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  std::vector<at::Tensor> v = {torch::full({1}, static_cast<double>(rc), torch::kFloat64)};
  (void)owned->all_reduce_mean(v);
  const int all = v[0].item<double>() != 0.0 ? 1 : 0;
  *comm = nullptr;
  owned.reset();  // MPI_Finalize
  return all;
}

}  // namespace migvis::testing
