// The mpi executor and rank-split synthesis through the real programs (label mpi):
// the tiny sweep with `--executor mpi --ranks 2` trains diffusion and runs the
// synthesis grids on 2 ranks; a synthesis grid split over 2 ranks equals the
// single-rank grid bit for bit.
#include <gtest/gtest.h>

#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

const std::string kTiny = std::string(MIGVIS_SOURCE_DIR) + "/sweeps/tiny.yaml";
std::string env() { return "MIGVIS_WORKER=" + migvis::testing::worker_bin() + " "; }

std::vector<fs::path> job_dirs(const fs::path& root, const std::string& stage) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(root / "jobs" / stage)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(MpiExecutorTest, DataParallelStagesRunOnTwoRanksAndSplitGridsMatchOneRank) {
  migvis::testing::TempDir tmp;
  const fs::path local = tmp / "local", mpi = tmp / "mpi";
  auto a = run_command(env() + migvis::testing::migvis_bin() + " sweep run " + kTiny + " --jobs 1 --root " + local.string());
  ASSERT_EQ(a.exit_code, 0) << a.output;
  auto b = run_command(env() + migvis::testing::migvis_bin() + " sweep run " + kTiny +
                       " --jobs 1 --executor mpi --ranks 2 --root " + mpi.string());
  ASSERT_EQ(b.exit_code, 0) << b.output;
  for (const char* stage : {"diffusion", "synthesis"})
    for (auto& d : job_dirs(mpi, stage)) {
      auto r = schema::read_job_result(d);
      ASSERT_TRUE(r.ok()) << d;
      EXPECT_EQ(r->layout.at("ranks"), "2") << stage;
      EXPECT_EQ(r->layout.at("comm"), "mpi") << stage;
    }
  for (auto& d : job_dirs(mpi, "vae")) EXPECT_EQ(schema::read_job_result(d)->layout.at("ranks"), "1");

  // The same synthesis job (same upstream models) on 1 and on 2 ranks.
  const fs::path one = job_dirs(local, "synthesis").front();
  auto spec = schema::read_job_spec(one);
  ASSERT_TRUE(spec.ok());
  spec->params["chunk"] = 1;  // several chunks, so both ranks get work
  const fs::path split = tmp / "split", single = tmp / "single";
  ASSERT_TRUE(schema::write_job_spec(*spec, split).ok());
  ASSERT_TRUE(schema::write_job_spec(*spec, single).ok());
  auto s1 = run_command(migvis::testing::worker_bin() + " --threads 1 --job " + single.string());
  ASSERT_EQ(s1.exit_code, 0) << s1.output;
  auto s2 = run_command("mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 " +
                        migvis::testing::worker_bin() + " --threads 1 --job " + split.string());
  ASSERT_EQ(s2.exit_code, 0) << s2.output;
  auto f1 = h5::File::open(single / "out.h5");
  auto f2 = h5::File::open(split / "out.h5");
  ASSERT_TRUE(f1.ok() && f2.ok());
  auto x1 = f1->read<float>("images"), x2 = f2->read<float>("images");
  ASSERT_TRUE(x1.ok() && x2.ok());
  EXPECT_EQ(x1->shape, x2->shape);
  EXPECT_EQ(x1->data, x2->data) << "a grid split over 2 ranks differs from the single-rank grid";
  EXPECT_EQ(*f1->read_vector<float>("mi_items"), *f2->read_vector<float>("mi_items"));
}

}  // namespace
}  // namespace migvis
