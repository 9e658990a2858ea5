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

}  // namespace
}  // namespace migvis
