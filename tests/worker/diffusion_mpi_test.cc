// Data-parallel diffusion training under `mpirun -np 2` (label mpi): every rank
// trains on its own shard, gradients are averaged through the MPI communicator,
// and the parameters stay bit-identical on all ranks after every step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/worker/mpi_test_main.h"
#include "worker/comm.h"
#include "worker/diffusion/train.h"

namespace migvis::worker {
namespace {

Communicator* g_comm = nullptr;

// True on every rank when `t` equals rank 0's copy exactly.
bool same_on_all_ranks(const torch::Tensor& t) {
  std::vector<at::Tensor> root = {t.detach().clone()};
  EXPECT_TRUE(g_comm->broadcast(root, 0).ok());
  std::vector<at::Tensor> eq = {torch::full({1}, torch::equal(root[0], t.detach()) ? 1.0 : 0.0, torch::kFloat64)};
  EXPECT_TRUE(g_comm->all_reduce_mean(eq).ok());
  return eq[0].item<double>() == 1.0;
}

TEST(DiffusionMpiTest, ParametersStayIdenticalAcrossRanksEveryStep) {
  ASSERT_EQ(g_comm->size(), 2);
  torch::manual_seed(7);  // the same 16 images everywhere; each rank keeps its shard
  torch::Tensor all = torch::rand({16, 1, 8, 8}) * 2 - 1;
  Shard s = shard_for(16, g_comm->rank(), g_comm->size());
  diffusion::UNetOptions u;
  u.width = 8;
  u.mults = {1, 2};
  u.image_size = 8;
  u.attn_heads = 1;
  u.attn_dim_head = 8;
  diffusion::ScheduleOptions so;
  so.timesteps = 20;
  auto schedule = diffusion::NoiseSchedule(so);
  diffusion::TrainOptions o;
  o.steps = 4;
  o.batch = 8;  // global: 4 per rank
  o.grad_accum = 1;
  o.ema_every = 1;
  o.seed = 11;
  // Different initial weights per rank would diverge without the broadcast.
  torch::manual_seed(100 + g_comm->rank());
  diffusion::DiffusionTrainer tr(u, schedule, o, all.slice(0, s.begin, s.end), g_comm);
  for (auto& p : tr.model()->parameters()) ASSERT_TRUE(same_on_all_ranks(p)) << "initial weights differ";
  std::vector<double> losses;
  for (int step = 0; step < 4; ++step) {
    auto loss = tr.train_step();
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    losses.push_back(*loss);
    for (auto& p : tr.model()->parameters()) ASSERT_TRUE(same_on_all_ranks(p)) << "ranks diverged at step " << step;
    for (auto& p : tr.ema()->parameters()) ASSERT_TRUE(same_on_all_ranks(p)) << "EMA diverged at step " << step;
  }
  // The reported loss is the mean over ranks: the same number everywhere.
  for (double l : losses) ASSERT_TRUE(same_on_all_ranks(torch::full({1}, l, torch::kFloat64)));
}

}  // namespace
}  // namespace migvis::worker

int main(int argc, char** argv) {
  return migvis::testing::run_tests_under_mpi(argc, argv, &migvis::worker::g_comm);
}
