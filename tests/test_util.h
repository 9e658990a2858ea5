// Helpers shared by the test suites: scratch directories and running programs.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <filesystem>
#include <random>
#include <string>

namespace migvis::testing {

// A fresh directory under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("migvis-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing output; exit_code is the process's.
inline RunResult run_command(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// True when $MIGVIS_REQUIRE (a comma-separated list, e.g. "slurm,python,chromium",
// set by scripts/test.sh, which installs all of them) names `feature`: a test
// that would skip for lack of it must fail instead, so CI cannot pass by skipping.
inline bool required_feature(const std::string& feature) {
  const char* env = std::getenv("MIGVIS_REQUIRE");
  if (!env) return false;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item == feature || item == "all") return true;
  return false;
}

inline std::string migvis_bin() { return std::string(MIGVIS_BINARY_DIR) + "/orchestrator/migvis"; }
inline std::string worker_bin() { return std::string(MIGVIS_BINARY_DIR) + "/worker/migvis-worker"; }

}  // namespace migvis::testing

// Skips the current test for lack of an optional `feature` (slurm, python,
// chromium), or fails it when MIGVIS_REQUIRE names that feature. Use in a test
// body or SetUp() exactly like GTEST_SKIP(), streaming the reason after it.
// (Built like GTEST_SKIP/GTEST_FAIL themselves: one message, its result type
// chosen at run time.)
#define MIGVIS_SKIP_WITHOUT(feature)                                                                 \
  return ::testing::internal::AssertHelper(                                                          \
             ::migvis::testing::required_feature(feature) ? ::testing::TestPartResult::kFatalFailure \
                                                          : ::testing::TestPartResult::kSkip,        \
             __FILE__, __LINE__,                                                                     \
             ::migvis::testing::required_feature(feature)                                           \
                 ? "MIGVIS_REQUIRE names '" feature "', which is unavailable (not a skip)"          \
                 : "Skipped") = ::testing::Message()
