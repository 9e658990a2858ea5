// Single-process parts of the communicator layer: sharding and bucket packing.
#include "worker/comm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace migvis::worker {
namespace {

TEST(CommTest, ShardsCoverRangeExactlyOnce) {
  for (int64_t n : {0, 1, 7, 64, 65}) {
    for (int size : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        Shard s = shard_for(n, r, size);
        EXPECT_EQ(s.begin, next);
        EXPECT_GE(s.size(), n / size);
        EXPECT_LE(s.size(), n / size + 1);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(CommTest, BucketsRoundTripAndRespectSize) {
  std::vector<at::Tensor> ts = {torch::randn({10, 3}), torch::randn({5}), torch::randn({2, 2}, torch::kFloat64),
                                torch::randn({100})};
  std::vector<at::Tensor> orig;
  for (auto& t : ts) orig.push_back(t.clone());
  auto buckets = make_buckets(ts, /*bucket_bytes=*/200);
  size_t covered = 0;
  for (auto& b : buckets) {
    covered += b.index.size();
    for (size_t i : b.index) EXPECT_EQ(ts[i].scalar_type(), b.flat.scalar_type());
  }
  EXPECT_EQ(covered, ts.size());
  EXPECT_GE(buckets.size(), 3u) << "200-byte buckets must split the float32 tensors";
  for (auto& t : ts) t.zero_();
  for (auto& b : buckets) unpack_bucket(b, ts);
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_TRUE(torch::equal(ts[i], orig[i]));
}

TEST(CommTest, SingleProcessIsIdentity) {
  SingleProcessCommunicator c;
  std::vector<at::Tensor> ts = {torch::ones({3})};
  ASSERT_TRUE(c.all_reduce_mean(ts).ok());
  EXPECT_TRUE(torch::equal(ts[0], torch::ones({3})));
  auto g = c.gather_rows(torch::ones({2, 4}), 0);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->size(0), 2);
}

}  // namespace
}  // namespace migvis::worker
