// The error boundary of both mains: exceptions become one line and an exit code.
#include "common/error_boundary.h"

#include <cerrno>
#include <filesystem>
#include <new>
#include <stdexcept>
#include <system_error>

#include <gtest/gtest.h>

namespace migvis {
namespace {

int throws_fs(int err) {
  throw std::filesystem::filesystem_error("cannot create directory", std::filesystem::path("/runs/x"),
                                          std::error_code(err, std::generic_category()));
}

TEST(ErrorBoundaryTest, NormalExitCodesPassThrough) {
  EXPECT_EQ(run_with_error_boundary("t", [] { return 0; }), 0);
  EXPECT_EQ(run_with_error_boundary("t", [] { return 65; }), 65);
}

TEST(ErrorBoundaryTest, FilesystemErrorsAreClassifiedByErrno) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_with_error_boundary("migvis", [] { return throws_fs(EACCES); }), 73);
  EXPECT_EQ(run_with_error_boundary("migvis", [] { return throws_fs(ENOSPC); }), 74);
  EXPECT_EQ(run_with_error_boundary("migvis", [] { return throws_fs(ESTALE); }), 75);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("migvis: error: "), std::string::npos) << err;
  EXPECT_NE(err.find("/runs/x"), std::string::npos) << "names the path: " << err;
}

TEST(ErrorBoundaryTest, AnyOtherExceptionIsOneLineAndExit70) {
  ::testing::internal::CaptureStderr();
  int rc = run_with_error_boundary("migvis-worker", []() -> int { throw std::runtime_error("type must be number,\nbut is string"); });
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 70);
  EXPECT_EQ(err.find('\n'), err.size() - 1) << "exactly one line: " << err;
  EXPECT_NE(err.find("type must be number"), std::string::npos);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_with_error_boundary("t", []() -> int { throw std::bad_alloc(); }), 70);
  EXPECT_EQ(run_with_error_boundary("t", []() -> int { throw 42; }), 70);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("out of memory"), std::string::npos) << err;
}

}  // namespace
}  // namespace migvis
