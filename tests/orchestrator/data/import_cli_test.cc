// `migvis data import` and `data run-job` with params.import, run as real processes.
#include <gtest/gtest.h>

#include "orchestrator/data/synth.h"
#include "results/dataset_io.h"
#include "tests/orchestrator/data/fixtures.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

TEST(ImportCliTest, BrainScoreNwbAndHdf5Succeed) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  auto bs = migvis::testing::make_brainscore(tmp / "bs");
  auto r = run_command(bin + " data import --format brainscore " + bs.nc.string() + " --stimuli " + bs.csv.string() +
                       " --out " + (tmp / "bs.h5").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto d = data::read_dataset(tmp / "bs.h5");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->source, "import:brainscore:" + bs.nc.string());
  r = run_command(bin + " data inspect " + (tmp / "bs.h5").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Chabo"), std::string::npos) << r.output;

  auto nwb = migvis::testing::make_nwb(tmp / "nwb");
  r = run_command(bin + " data import --format nwb " + nwb.path.string() + " --t-start-ms 50 --out " +
                  (tmp / "nwb.h5").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  d = data::read_dataset(tmp / "nwb.h5");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sessions[0].t_start_ms, 50);

  r = run_command(bin + " data import --format hdf5 " + (tmp / "nwb.h5").string() + " --out " + (tmp / "copy.h5").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "copy.h5"));
}

TEST(ImportCliTest, BadInputExits65AndWritesNothing) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  auto bs = migvis::testing::make_brainscore(tmp / "bs", migvis::testing::BsVariant::kUnknownId);
  auto r = run_command(bin + " data import --format brainscore " + bs.nc.string() + " --stimuli " + bs.csv.string() +
                       " --out " + (tmp / "out.h5").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("img99"), std::string::npos) << r.output;
  auto nwb = migvis::testing::make_nwb(tmp / "nwb", migvis::testing::NwbVariant::kIndexOutOfRange);
  r = run_command(bin + " data import --format nwb " + nwb.path.string() + " --out " + (tmp / "out.h5").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("/units/spike_times_index"), std::string::npos) << r.output;
  r = run_command(bin + " data import --format hdf5 " + nwb.path.string() + " --out " + (tmp / "out.h5").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "out.h5"));
  for (auto& e : fs::directory_iterator(tmp.path())) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  // Missing input: 66; unknown format: usage 64.
  r = run_command(bin + " data import --format nwb " + (tmp / "none.nwb").string() + " --out " + (tmp / "out.h5").string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
  r = run_command(bin + " data import --format csv " + nwb.path.string() + " --out " + (tmp / "out.h5").string());
  EXPECT_EQ(r.exit_code, 64) << r.output;
}

TEST(ImportCliTest, RunJobImports) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  auto nwb = migvis::testing::make_nwb(tmp / "job");
  auto write_job = [&](const std::string& params) {
    return write_file_atomic(tmp / "job" / "job.yaml", "format: migvis-job/1\njob_id: 0011223344556677\nhash: h\n"
                             "stage: data\nsweep: t\nkey: {dataset: d}\nseed: 1\nparams: " + params + "\ninputs: {}\n");
  };
  ASSERT_TRUE(write_job("{import: {format: nwb, path: session.nwb, t_stop_ms: 150}}").ok());
  auto r = run_command(bin + " data run-job " + (tmp / "job").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto d = data::read_dataset(tmp / "job" / "dataset.h5");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sessions[0].t_stop_ms, 150);
  ASSERT_TRUE(write_job("{import: {format: nwb, path: session.nwb, bin_ms: 10}}").ok());
  r = run_command(bin + " data run-job " + (tmp / "job").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("params.import.bin_ms"), std::string::npos) << r.output;
  ASSERT_TRUE(write_job("{import: {format: nwb, path: nope.nwb}}").ok());
  r = run_command(bin + " data run-job " + (tmp / "job").string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
}

}  // namespace
}  // namespace migvis
