#include "common/files.h"

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

}  // namespace
}  // namespace migvis
