#include "common/files.h"

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis {
namespace {

TEST(FilesTest, AtomicWriteCreatesParentsAndLeavesNoTemp) {
  testing::TempDir tmp;
  fs::path p = tmp / "a/b/c.txt";
  ASSERT_TRUE(write_file_atomic(p, "hello").ok());
  auto r = read_file(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "hello");
  int n = 0;
  for (auto& e : fs::directory_iterator(p.parent_path())) { (void)e; ++n; }
  EXPECT_EQ(n, 1) << "temporary file left behind";
}

TEST(FilesTest, AtomicWriteReplacesWholeFile) {
  testing::TempDir tmp;
  fs::path p = tmp / "x";
  ASSERT_TRUE(write_file_atomic(p, std::string(10000, 'a')).ok());
  ASSERT_TRUE(write_file_atomic(p, "short").ok());
  EXPECT_EQ(*read_file(p), "short");
}

TEST(FilesTest, ReadMissingIsNotFound) {
  testing::TempDir tmp;
  auto r = read_file(tmp / "nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(FilesTest, AtomicPathRemovesTempUnlessCommitted) {
  testing::TempDir tmp;
  fs::path dest = tmp / "out.bin";
  fs::path t;
  {
    AtomicPath ap(dest);
    t = ap.temp();
    ASSERT_TRUE(write_file_atomic(t, "partial").ok());
  }
  EXPECT_FALSE(fs::exists(t));
  EXPECT_FALSE(fs::exists(dest));
  {
    AtomicPath ap(dest);
    ASSERT_TRUE(write_file_atomic(ap.temp(), "full").ok());
    ASSERT_TRUE(ap.commit().ok());
  }
  EXPECT_EQ(*read_file(dest), "full");
}

TEST(FilesTest, ErrnoClassesAreTemporaryOrPermanentByDesign) {
  // Temporary: a retry may succeed (exit 75, requeued for free).
  for (int e : {EINTR, EAGAIN, ESTALE, EBUSY, ETIMEDOUT})
    EXPECT_EQ(exit_code_for(status_from_errno(e, "x")), 75) << std::strerror(e);
  // Permanent: retrying can never help (not retried; never requeued forever).
  for (int e : {EACCES, EPERM, EROFS}) {
    Status st = status_from_errno(e, "cannot write /r/o.h5");
    EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << std::strerror(e);
    EXPECT_EQ(exit_code_for(st), 73);
    EXPECT_NE(st.message().find("/r/o.h5"), std::string::npos);
  }
  for (int e : {ENOSPC, EDQUOT, EIO}) EXPECT_EQ(exit_code_for(status_from_errno(e, "x")), 74) << std::strerror(e);
  EXPECT_EQ(status_from_errno(ENOENT, "x").code(), StatusCode::kNotFound);
}

TEST(FilesTest, UnwritableDirectoryIsPermanentNotTemporary) {
  testing::TempDir tmp;
  // A regular file where a directory should be: ENOTDIR/EEXIST-class errors
  // are not "temporary" either.
  ASSERT_TRUE(write_file_atomic(tmp / "f", "x").ok());
  Status st = write_file_atomic(tmp / "f" / "sub" / "y", "z");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(exit_code_for(st), 75) << st.to_string();
}

// Fault injection between the durable write and the rename: the destination
// keeps its old content, and no temporary is left behind.
Status fail_before_rename(const fs::path& temp) {
  // The temporary is complete (written and fsynced) when the hook runs.
  auto r = read_file(temp);
  if (!r.ok() || *r != "new version") return Status::Internal("hook saw an incomplete temporary");
  return Status::IoError("injected fault between write and rename");
}

TEST(FilesTest, FaultBetweenWriteAndRenameLeavesTheOldFileIntact) {
  testing::TempDir tmp;
  fs::path dest = tmp / "out.h5";
  ASSERT_TRUE(write_file_atomic(dest, "old version").ok());
  fs::path t;
  AtomicPath::set_before_rename_hook_for_test(&fail_before_rename);
  {
    AtomicPath ap(dest);
    t = ap.temp();
    ASSERT_TRUE(write_file_atomic(t, "new version").ok());
    Status st = ap.commit();
    EXPECT_EQ(st.code(), StatusCode::kIoError) << st.to_string();
  }
  AtomicPath::set_before_rename_hook_for_test(nullptr);
  EXPECT_EQ(*read_file(dest), "old version");
  EXPECT_FALSE(fs::exists(t)) << "temporary removed after the failed commit";
  // Without the fault the same sequence replaces it.
  {
    AtomicPath ap(dest);
    ASSERT_TRUE(write_file_atomic(ap.temp(), "new version").ok());
    ASSERT_TRUE(ap.commit().ok());
  }
  EXPECT_EQ(*read_file(dest), "new version");
}

}  // namespace
}  // namespace migvis
