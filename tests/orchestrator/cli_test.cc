// Exit codes and messages of the migvis CLI, run as a real process.
#include <gtest/gtest.h>

#include "results/dataset_io.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

TEST(CliTest, HelpAndVersion) {
  auto r = run_command(migvis::testing::migvis_bin() + " --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("data"), std::string::npos);
  r = run_command(migvis::testing::migvis_bin() + " data inspect --help");
  EXPECT_EQ(r.exit_code, 0);
  r = run_command(migvis::testing::migvis_bin() + " --version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("migvis"), std::string::npos);
}

TEST(CliTest, UsageErrorsExit64) {
  EXPECT_EQ(run_command(migvis::testing::migvis_bin()).exit_code, 64);
  EXPECT_EQ(run_command(migvis::testing::migvis_bin() + " no-such-command").exit_code, 64);
  EXPECT_EQ(run_command(migvis::testing::migvis_bin() + " data inspect").exit_code, 64);
}

TEST(CliTest, InspectMissingAndCorruptFiles) {
  migvis::testing::TempDir tmp;
  auto r = run_command(migvis::testing::migvis_bin() + " data inspect " + (tmp / "missing.h5").string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
  EXPECT_NE(r.output.find("missing.h5"), std::string::npos);
  ASSERT_TRUE(write_file_atomic(tmp / "junk.h5", "junk").ok());
  r = run_command(migvis::testing::migvis_bin() + " data inspect " + (tmp / "junk.h5").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("not an HDF5 file"), std::string::npos) << r.output;
}

TEST(CliTest, SynthWritesAValidDatasetAndIsDeterministic) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  auto r = run_command(bin + " data synth --preset tiny --seed 5 --out " + (tmp / "a.h5").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(bin + " data synth --preset tiny --seed 5 --out " + (tmp / "b.h5").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto a = data::read_dataset(tmp / "a.h5"), b = data::read_dataset(tmp / "b.h5");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->images.data, b->images.data);
  EXPECT_EQ(a->sessions[0].counts.data, b->sessions[0].counts.data);
  r = run_command(bin + " data inspect " + (tmp / "a.h5").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("truth"), std::string::npos) << r.output;
}

TEST(CliTest, InspectReportsSessionsTruthAndLayoutErrors) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  const std::string file = (tmp / "d.h5").string();
  ASSERT_EQ(run_command(bin + " data synth --preset tiny --sessions 2 --min-neurons 70 --max-neurons 71 --out " + file)
                .exit_code, 0);
  auto d = data::read_dataset(file);
  ASSERT_TRUE(d.ok());
  auto r = run_command(bin + " data inspect " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (auto& s : d->sessions)
    EXPECT_NE(r.output.find(s.name + "  "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("group 1 pose"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("by strongest group"), std::string::npos) << r.output;
  // Break the layout: an image index past the end.
  {
    auto f = h5::File::open(file, h5::Mode::kReadWrite);
    ASSERT_TRUE(f.ok());
    std::vector<int32_t> idx = d->sessions[0].image_index;
    idx[5] = 64;
    ASSERT_TRUE(f->write_vector("/animals/a1/sessions/s1/image_index", idx).ok());
    ASSERT_TRUE(f->close().ok());
  }
  r = run_command(bin + " data inspect " + file);
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("/animals/a1/sessions/s1/image_index: expected indices in [0, 64), found 64 at row 5"),
            std::string::npos) << r.output;
}

TEST(CliTest, SynthBadArgumentsExit64Or65) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  EXPECT_EQ(run_command(bin + " data synth --preset huge --out " + (tmp / "x.h5").string()).exit_code, 64);
  EXPECT_EQ(run_command(bin + " data synth").exit_code, 64);  // --out is required
  auto r = run_command(bin + " data synth --preset tiny --categories 30 --out " + (tmp / "x.h5").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("categories"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "x.h5"));
}

TEST(CliTest, RunJobExitCodes) {
  migvis::testing::TempDir tmp;
  const std::string bin = migvis::testing::migvis_bin();
  auto job = [&](const std::string& name, const std::string& params) {
    fs::path dir = tmp / name;
    EXPECT_TRUE(write_file_atomic(dir / "job.yaml", "format: migvis-job/1\njob_id: 0011223344556677\nhash: h\n"
                                  "stage: data\nsweep: t\nkey: {dataset: d}\nseed: 1\nparams: " + params +
                                  "\ninputs: {}\n").ok());
    return dir.string();
  };
  auto r = run_command(bin + " data run-job " + job("ok", "{preset: tiny}"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "ok" / "dataset.h5"));
  EXPECT_TRUE(fs::exists(tmp / "ok" / "result.yaml"));
  r = run_command(bin + " data run-job " + job("bad", "{preset: tiny, colour: red}"));
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("colour"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "bad" / "result.yaml"));
  EXPECT_FALSE(fs::exists(tmp / "bad" / "dataset.h5"));
  r = run_command(bin + " data run-job " + (tmp / "nojob").string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
}

TEST(CliTest, PlanRefusesAnImportedFileThatIsNotAMigvisDataset) {
  migvis::testing::TempDir tmp;
  {
    auto f = h5::File::create(tmp / "other.h5");  // HDF5, but not a migvis dataset
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_vector<float>("x", {1}).ok());
  }
  const std::string sweep = "sweep: imp\nanimals: [a1]\nsessions: [s1]\n"
                            "data: {params: {import: {format: hdf5, path: " + (tmp / "other.h5").string() + "}}}\n";
  ASSERT_TRUE(write_file_atomic(tmp / "s.yaml", sweep).ok());
  auto r = run_command(migvis::testing::migvis_bin() + " sweep plan " + (tmp / "s.yaml").string() + " --root " +
                       (tmp / "runs").string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("data.params.import.path: not a valid migvis dataset"), std::string::npos) << r.output;
  // A file that does not exist is refused at plan time too.
  ASSERT_TRUE(write_file_atomic(tmp / "s2.yaml", "sweep: imp\nanimals: [a1]\nsessions: [s1]\n"
                                                   "data: {params: {import: {format: hdf5, path: " +
                                                       (tmp / "gone.h5").string() + "}}}\n")
                  .ok());
  r = run_command(migvis::testing::migvis_bin() + " sweep plan " + (tmp / "s2.yaml").string() + " --root " +
                  (tmp / "runs").string());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gone.h5"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "runs" / "migvis.db")) << "nothing written";
}

}  // namespace
}  // namespace migvis
