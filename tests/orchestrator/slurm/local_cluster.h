// The fixture of the slurm-labelled tests: a private single-node SLURM cluster
// (scripts/slurm_local.sh: munged, MariaDB + slurmdbd, slurmctld, slurmd),
// started once per test process and stopped, by PID, when it ends. Tests skip
// with the start log when the daemons cannot start.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "orchestrator/slurm/slurm.h"
#include "orchestrator/slurm/submit.h"
#include "tests/test_util.h"

namespace migvis::slurm {

// A file's text, or a note that it is missing (for failure messages).
inline std::string file_text(const fs::path& p) {
  auto t = read_file(p);
  return t.ok() ? *t : "(no " + p.string() + ")";
}

class SlurmClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    started_ = std::chrono::steady_clock::now();
    dir_ = new migvis::testing::TempDir();
    std::string env = "SLURM_DIR=" + shell_quote(dir_->path().string()) + " ACCT=dbd ";
    auto r = migvis::testing::run_command(env + shell_quote(std::string(MIGVIS_SOURCE_DIR) + "/scripts/slurm_local.sh") +
                                          " start");
    up_ = r.exit_code == 0;
    start_log_ = r.output;
    setenv("SLURM_CONF", (dir_->path() / "slurm.conf").c_str(), 1);
  }
  static void TearDownTestSuite() {
    std::string env = "SLURM_DIR=" + shell_quote(dir_->path().string()) + " ";
    migvis::testing::run_command(env + shell_quote(std::string(MIGVIS_SOURCE_DIR) + "/scripts/slurm_local.sh") + " stop");
    delete dir_;
  }
  void SetUp() override {
    if (!up_) MIGVIS_SKIP_WITHOUT("slurm") << "the local SLURM cluster could not start:\n" << start_log_;
  }

  // Waits until none of `ids` is in squeue (or the timeout passes).
  static bool wait_gone(CommandRunner* r, const std::vector<std::string>& ids, double timeout_s) {
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
      auto q = query_queue(r, ids);
      if (q.ok() && q->empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return false;
  }

  // `sweep status` output once it no longer lists queued tasks (sacct, through
  // slurmdbd, lags squeue by a few seconds), or the last output at the timeout.
  static std::string wait_status_settled(const fs::path& root, double timeout_s) {
    auto t0 = std::chrono::steady_clock::now();
    std::string last;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
      auto r = migvis::testing::run_command(migvis::testing::migvis_bin() + " sweep status --root " + root.string());
      last = r.output;
      if (r.exit_code == 0 && last.find(" queued") == std::string::npos && last.find("  slurm (") != std::string::npos)
        return last;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    return last;
  }

  // Seconds left of a test process limit of `limit_s` (ctest's TIMEOUT) minus
  // `margin_s` for the checks and the teardown: waits must end before ctest
  // kills the process, or the teardown never stops the daemons.
  static double seconds_left(double limit_s, double margin_s) {
    double used = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return std::max(1.0, limit_s - margin_s - used);
  }

  static inline std::chrono::steady_clock::time_point started_;
  static inline migvis::testing::TempDir* dir_ = nullptr;
  static inline bool up_ = false;
  static inline std::string start_log_;
};

}  // namespace migvis::slurm
