// Runs under `mpirun -np 2` (label mpi): collectives and data-parallel training
// with the MPI communicator.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/worker/mpi_test_main.h"
#include "worker/comm.h"

namespace migvis::worker {
namespace {

Communicator* g_comm = nullptr;

TEST(CommMpiTest, AllReduceMeanAveragesAcrossRanks) {
  ASSERT_EQ(g_comm->size(), 2);
  const int r = g_comm->rank();
  std::vector<at::Tensor> ts = {torch::full({3, 2}, static_cast<float>(r + 1)),
                                torch::full({5}, static_cast<double>(10 * r), torch::kFloat64)};
  ASSERT_TRUE(g_comm->all_reduce_mean(ts).ok());
  EXPECT_TRUE(torch::allclose(ts[0], torch::full({3, 2}, 1.5f)));
  EXPECT_TRUE(torch::allclose(ts[1], torch::full({5}, 5.0, torch::kFloat64)));
}

TEST(CommMpiTest, BroadcastCopiesRootEverywhere) {
  std::vector<at::Tensor> ts = {torch::full({4}, static_cast<float>(g_comm->rank() + 7))};
  ASSERT_TRUE(g_comm->broadcast(ts, 0).ok());
  EXPECT_TRUE(torch::equal(ts[0], torch::full({4}, 7.f)));
}

TEST(CommMpiTest, GatherRowsConcatenatesUnevenShardsInRankOrder) {
  const int r = g_comm->rank();
  at::Tensor local = torch::full({r + 1, 3}, static_cast<float>(r));  // rank0: 1 row, rank1: 2 rows
  auto g = g_comm->gather_rows(local, 0);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  if (r == 0) {
    ASSERT_EQ(g->size(0), 3);
    EXPECT_EQ(g->index({0, 0}).item<float>(), 0.f);
    EXPECT_EQ(g->index({2, 0}).item<float>(), 1.f);
  }
}

// Data-parallel SGD on shards with averaged gradients equals full-batch SGD on
// one process, and leaves identical parameters on every rank.
TEST(CommMpiTest, DataParallelMatchesFullBatchAndStaysInSync) {
  torch::manual_seed(1);  // same data on every rank
  at::Tensor x = torch::randn({64, 5}, torch::kFloat64), y = torch::randn({64, 1}, torch::kFloat64);
  torch::manual_seed(g_comm->rank() + 100);  // different init per rank: broadcast must fix it
  torch::nn::Linear dp(torch::nn::LinearOptions(5, 1));
  dp->to(torch::kFloat64);
  std::vector<at::Tensor> params;
  for (auto& p : dp->parameters()) params.push_back(p.data());
  ASSERT_TRUE(g_comm->broadcast(params, 0).ok());
  torch::nn::Linear ref(torch::nn::LinearOptions(5, 1));
  ref->to(torch::kFloat64);
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) ref->parameters()[i].copy_(dp->parameters()[i]);
  }
  torch::optim::SGD opt_dp(dp->parameters(), 0.1), opt_ref(ref->parameters(), 0.1);
  Shard s = shard_for(64, g_comm->rank(), g_comm->size());
  for (int step = 0; step < 5; ++step) {
    opt_dp.zero_grad();
    torch::mse_loss(dp->forward(x.slice(0, s.begin, s.end)), y.slice(0, s.begin, s.end)).backward();
    std::vector<at::Tensor> grads;
    for (auto& p : dp->parameters()) grads.push_back(p.grad());
    ASSERT_TRUE(g_comm->all_reduce_mean(grads).ok());
    opt_dp.step();
    opt_ref.zero_grad();
    torch::mse_loss(ref->forward(x), y).backward();
    opt_ref.step();
  }
  for (size_t i = 0; i < dp->parameters().size(); ++i) {
    EXPECT_TRUE(torch::allclose(dp->parameters()[i], ref->parameters()[i], 1e-10, 1e-12));
    std::vector<at::Tensor> mine = {dp->parameters()[i].detach().clone()}, root = {mine[0].clone()};
    ASSERT_TRUE(g_comm->broadcast(root, 0).ok());
    EXPECT_TRUE(torch::equal(mine[0], root[0])) << "ranks diverged";
  }
}

}  // namespace
}  // namespace migvis::worker

int main(int argc, char** argv) {
  return migvis::testing::run_tests_under_mpi(argc, argv, &migvis::worker::g_comm);
}
