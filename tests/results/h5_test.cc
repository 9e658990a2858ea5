#include "results/h5.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::h5 {
namespace {

TEST(H5Test, WriteReadArraysOfEveryType) {
  migvis::testing::TempDir tmp;
  {
    auto f = File::create(tmp / "a.h5");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write("x/f32", Array<float>({2, 3}, {1, 2, 3, 4, 5, 6})).ok());
    ASSERT_TRUE(f->write_vector<double>("x/f64", {0.5, -1.5}).ok());
    ASSERT_TRUE(f->write_vector<int32_t>("i32", {1, -2}).ok());
    ASSERT_TRUE(f->write_vector<int64_t>("i64", {int64_t{1} << 40}).ok());
    ASSERT_TRUE(f->write_vector<uint8_t>("u8", {255}).ok());
    ASSERT_TRUE(f->write_vector<std::string>("s", {"alpha", "", "gamma"}).ok());
    ASSERT_TRUE(f->write_scalar<double>("scalar", 3.25).ok());
    ASSERT_TRUE(f->close().ok());
  }
  auto f = File::open(tmp / "a.h5");
  ASSERT_TRUE(f.ok());
  auto a = f->read<float>("x/f32");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->shape, (std::vector<hsize_t>{2, 3}));
  EXPECT_EQ(a->data[5], 6.f);
  EXPECT_EQ(*f->read_vector<double>("x/f64"), (std::vector<double>{0.5, -1.5}));
  EXPECT_EQ(*f->read_vector<int32_t>("i32"), (std::vector<int32_t>{1, -2}));
  EXPECT_EQ((*f->read_vector<int64_t>("i64"))[0], int64_t{1} << 40);
  EXPECT_EQ((*f->read_vector<uint8_t>("u8"))[0], 255);
  EXPECT_EQ(*f->read_vector<std::string>("s"), (std::vector<std::string>{"alpha", "", "gamma"}));
  EXPECT_EQ((*f->read_vector<double>("scalar"))[0], 3.25);
  EXPECT_TRUE(f->is_group("x"));
  EXPECT_TRUE(f->is_dataset("x/f32"));
  EXPECT_FALSE(f->exists("x/nope"));
  EXPECT_FALSE(f->exists("nope/deeper"));
}

TEST(H5Test, ReadRowsAndCompression) {
  migvis::testing::TempDir tmp;
  Array<float> big({100, 50});
  for (size_t i = 0; i < big.data.size(); ++i) big.data[i] = static_cast<float>(i % 7);
  {
    auto f = File::create(tmp / "c.h5");
    WriteOptions o;
    o.gzip_level = 6;
    ASSERT_TRUE(f->write("big", big, o).ok());
  }
  auto f = File::open(tmp / "c.h5");
  auto rows = f->read_rows<float>("big", 10, 5);
  ASSERT_TRUE(rows.ok()) << rows.status().to_string();
  EXPECT_EQ(rows->shape, (std::vector<hsize_t>{5, 50}));
  EXPECT_EQ(rows->data[0], big.data[10 * 50]);
  EXPECT_FALSE(f->read_rows<float>("big", 99, 5).ok());
  EXPECT_LT(std::filesystem::file_size(tmp / "c.h5"), 100 * 50 * 4u) << "gzip had no effect";
}

TEST(H5Test, AttributesRoundTrip) {
  migvis::testing::TempDir tmp;
  auto f = File::create(tmp / "t.h5");
  ASSERT_TRUE(f->write_vector<float>("d", {1}).ok());
  ASSERT_TRUE(f->set_attr<std::string>(".", "format", "x").ok());
  ASSERT_TRUE(f->set_attr<int32_t>("d", "n", 3).ok());
  ASSERT_TRUE(f->set_attr_vector<std::string>("d", "classes", {"a", "b"}).ok());
  ASSERT_TRUE(f->set_attr_vector<double>("d", "gammas", {0, 50, 100}).ok());
  EXPECT_EQ(*f->attr<std::string>(".", "format"), "x");
  EXPECT_EQ(*f->attr<int32_t>("d", "n"), 3);
  EXPECT_EQ(*f->attr_vector<std::string>("d", "classes"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*f->attr_vector<double>("d", "gammas"))[2], 100);
  EXPECT_FALSE(f->attr<int32_t>("d", "missing").ok());
  EXPECT_FALSE(f->attr<int32_t>("d", "classes").ok()) << "string attribute read as a number";
}

TEST(H5Test, TypeMismatchIsClearError) {
  migvis::testing::TempDir tmp;
  auto f = File::create(tmp / "t.h5");
  ASSERT_TRUE(f->write_vector<std::string>("names", {"a"}).ok());
  ASSERT_TRUE(f->write_vector<float>("x", {1.5f}).ok());
  auto r = f->read<float>("names");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("expected float32, found string"), std::string::npos) << r.status().message();
  auto r2 = f->read<int32_t>("x");
  ASSERT_FALSE(r2.ok()) << "float read as int silently";
  EXPECT_NE(r2.status().message().find("t.h5:/x"), std::string::npos) << r2.status().message();
}

TEST(H5Test, OpenErrors) {
  migvis::testing::TempDir tmp;
  EXPECT_EQ(File::open(tmp / "missing.h5").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(write_file_atomic(tmp / "junk.h5", "not hdf5 at all").ok());
  EXPECT_EQ(File::open(tmp / "junk.h5").status().code(), StatusCode::kDataLoss);
}

TEST(H5Test, AtomicFileOnlyAppearsOnCommit) {
  migvis::testing::TempDir tmp;
  fs::path dest = tmp / "out.h5";
  {
    auto af = AtomicFile::create(dest);
    ASSERT_TRUE(af.ok());
    ASSERT_TRUE((*af)->file().write_vector<float>("x", {1}).ok());
    EXPECT_FALSE(fs::exists(dest));
  }  // dropped without commit
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "temporary HDF5 file left behind";
  {
    auto af = AtomicFile::create(dest);
    ASSERT_TRUE((*af)->file().write_vector<float>("x", {2}).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  auto f = File::open(dest);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f->read_vector<float>("x"))[0], 2.f);
}

Status inject_fault(const fs::path&) { return Status::IoError("injected fault between write and rename"); }

TEST(H5Test, AtomicFileFaultBeforeRenameKeepsThePreviousFile) {
  migvis::testing::TempDir tmp;
  fs::path dest = tmp / "out.h5";
  {
    auto af = AtomicFile::create(dest);
    ASSERT_TRUE((*af)->file().write_vector<float>("x", {1}).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  AtomicPath::set_before_rename_hook_for_test(&inject_fault);
  {
    auto af = AtomicFile::create(dest);
    ASSERT_TRUE((*af)->file().write_vector<float>("x", {2}).ok());
    EXPECT_EQ((*af)->commit().code(), StatusCode::kIoError);
  }
  AtomicPath::set_before_rename_hook_for_test(nullptr);
  auto f = File::open(dest);
  ASSERT_TRUE(f.ok()) << "the previous file is still a valid HDF5 file";
  EXPECT_EQ((*f->read_vector<float>("x"))[0], 1.f);
  int n = 0;
  for (auto& e : fs::directory_iterator(tmp.path())) { (void)e; ++n; }
  EXPECT_EQ(n, 1) << "temporary HDF5 file left behind";
}

TEST(H5Test, ShapesFromAFileAreCappedBeforeAllocation) {
  migvis::testing::TempDir tmp;
  fs::path p = tmp / "big.h5";
  {
    auto f = File::create(p);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write<float>("x", Array<float>({1000, 300}, std::vector<float>(300000, 1.f))).ok());
  }
  auto f = File::open(p);
  ASSERT_TRUE(f.ok());
  setenv("MIGVIS_MAX_READ_GB", "0.001", 1);  // ~1 MiB < 1.2 MB of floats
  auto r = f->read<float>("x");
  unsetenv("MIGVIS_MAX_READ_GB");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[1000, 300]"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("MIGVIS_MAX_READ_GB"), std::string::npos);
  EXPECT_TRUE(f->read<float>("x").ok()) << "within the default cap";
}

}  // namespace
}  // namespace migvis::h5
