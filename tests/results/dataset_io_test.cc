#include "results/dataset_io.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis::data {
namespace {

Dataset small_dataset() {
  Dataset d;
  d.source = "test";
  d.images = h5::Array<float>({3, 1, 4, 4});
  for (size_t i = 0; i < d.images.data.size(); ++i) d.images.data[i] = static_cast<float>(i % 16) / 15.f;
  d.stimulus_ids = {"im0", "im1", "im2"};
  Factor cat;
  cat.name = "category";
  cat.kind = FactorKind::kCategorical;
  cat.role = "category";
  cat.classes = {"cars", "faces"};
  cat.values = {0, 1, 1};
  Factor rxy;
  rxy.name = "rxy";
  rxy.role = "pose";
  rxy.units = "deg";
  rxy.values = {-10, 0, 30};
  d.factors = {cat, rxy};
  Session s;
  s.animal = "a1";
  s.name = "s1";
  s.counts = h5::Array<float>({4, 2}, {1, 2, 3, 4, 5, 6, 0, 0});
  s.image_index = {0, 1, 0, 2};
  s.neuron_ids = {"n0", "n1"};
  d.sessions = {s};
  return d;
}

TEST(DatasetIoTest, RoundTrip) {
  migvis::testing::TempDir tmp;
  Dataset d = small_dataset();
  ASSERT_TRUE(write_dataset(d, tmp / "d.h5").ok());
  auto r = read_dataset(tmp / "d.h5");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->images.shape, d.images.shape);
  EXPECT_EQ(r->images.data, d.images.data);
  EXPECT_EQ(r->stimulus_ids, d.stimulus_ids);
  ASSERT_EQ(r->factors.size(), 2u);
  EXPECT_EQ(r->factor("category")->classes, d.factors[0].classes);
  EXPECT_EQ(r->factor("category")->values, d.factors[0].values);
  EXPECT_EQ(r->factor("rxy")->units, "deg");
  const Session* s = r->session("a1", "s1");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->counts.data, d.sessions[0].counts.data);
  EXPECT_EQ(s->image_index, d.sessions[0].image_index);
}

TEST(DatasetIoTest, AverageRepeatsGroupsByImage) {
  Dataset d = small_dataset();
  auto avg = average_repeats(d.sessions[0]);
  EXPECT_EQ(avg.image_index, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(avg.repeats, (std::vector<int32_t>{2, 1, 1}));
  EXPECT_FLOAT_EQ(avg.mean.data[0], 3.f);  // (1 + 5) / 2
  EXPECT_FLOAT_EQ(avg.mean.data[1], 4.f);  // (2 + 6) / 2
}

TEST(DatasetIoTest, ValidationNamesPathAndExpectation) {
  migvis::testing::TempDir tmp;
  Dataset d = small_dataset();
  d.sessions[0].image_index[3] = 9;
  Status st = write_dataset(d, tmp / "bad.h5");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("/animals/a1/sessions/s1/image_index: expected indices in [0, 3), found 9"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(fs::exists(tmp / "bad.h5")) << "invalid dataset was written";

  d = small_dataset();
  d.sessions[0].counts.data[1] = 1.5f;
  st = validate_dataset(d, "x.h5");
  EXPECT_NE(st.message().find("non-negative integer counts"), std::string::npos) << st.message();

  d = small_dataset();
  d.images.data[0] = 2.f;
  EXPECT_FALSE(validate_dataset(d, "x.h5").ok());
}

TEST(DatasetIoTest, ForeignHdf5IsRejectedWithHint) {
  migvis::testing::TempDir tmp;
  {
    auto f = h5::File::create(tmp / "other.h5");
    ASSERT_TRUE(f->write_vector<float>("x", {1}).ok());
  }
  auto r = read_dataset(tmp / "other.h5");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("migvis data import"), std::string::npos) << r.status().message();
}

TEST(DatasetIoTest, PartialReadsAreValidatedToo) {
  // Stages that skip images or responses (critic, synthesis, eval) must still
  // get a validated dataset: a factor with the wrong length is caught whatever
  // was loaded.
  migvis::testing::TempDir tmp;
  ASSERT_TRUE(write_dataset(small_dataset(), tmp / "d.h5").ok());
  {
    auto f = h5::File::open(tmp / "d.h5", h5::Mode::kReadWrite);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    // A second, bad factor added behind the writer's back: 2 values for 3 images.
    ASSERT_TRUE(f->write_vector<float>("/stimuli/factors/bad", {1.f, 2.f}).ok());
    ASSERT_TRUE(f->set_attr<std::string>("/stimuli/factors/bad", "kind", "continuous").ok());
  }
  for (bool images : {true, false})
    for (bool sessions : {true, false}) {
      ReadOptions o;
      o.images = images;
      o.sessions = sessions;
      auto r = read_dataset(tmp / "d.h5", o);
      ASSERT_FALSE(r.ok()) << "images=" << images << " sessions=" << sessions;
      EXPECT_NE(r.status().message().find("factors/bad"), std::string::npos) << r.status().message();
    }
}

}  // namespace
}  // namespace migvis::data
