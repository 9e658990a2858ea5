// PNG writing/reading: round trips, grid geometry and error paths.
#include "results/png.h"

#include <gtest/gtest.h>

#include <cmath>

#include "results/font.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::TempDir;

int font_width_of(const std::string& s) { return font::text_width(s, 1); }

TEST(PngTest, GrayRoundTripWithin8BitQuantisation) {
  TempDir tmp;
  const int h = 5, w = 7;
  std::vector<float> px(h * w);
  for (int i = 0; i < h * w; ++i) px[i] = static_cast<float>(i) / (h * w - 1);
  ASSERT_TRUE(png::write_png_gray(tmp / "a.png", px.data(), h, w).ok());
  EXPECT_FALSE(fs::exists(temp_path_for(tmp / "a.png")));
  auto r = png::read_png(tmp / "a.png");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->shape, (std::vector<hsize_t>{1, 1, h, w}));
  for (int i = 0; i < h * w; ++i) EXPECT_NEAR(r->data[i], px[i], 0.5f / 255.f + 1e-6f) << i;
}

TEST(PngTest, ValuesOutsideUnitRangeAreClamped) {
  TempDir tmp;
  std::vector<float> px = {-3.f, 2.f, NAN, 0.5f};
  ASSERT_TRUE(png::write_png_gray(tmp / "c.png", px.data(), 2, 2).ok());
  auto r = png::read_png(tmp / "c.png");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data[0], 0.f);
  EXPECT_EQ(r->data[1], 1.f);
  EXPECT_EQ(r->data[2], 0.f);
  EXPECT_NEAR(r->data[3], 0.5f, 1.f / 255.f);
}

TEST(PngTest, GridGeometryPlacesEachImageInItsCell) {
  TempDir tmp;
  // 5 gray images 3x2, image i filled with value (i + 1) / 10; grid 2 x 3, pad 2, scale 2.
  const int n = 5, h = 3, w = 2, rows = 2, cols = 3, pad = 2, scale = 2;
  h5::Array<float> imgs({n, 1, h, w});
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < h * w; ++p) imgs.data[i * h * w + p] = (i + 1) / 10.f;
  ASSERT_TRUE(png::write_png_grid(tmp / "g.png", imgs, rows, cols, pad, scale).ok());
  auto r = png::read_png(tmp / "g.png");
  ASSERT_TRUE(r.ok());
  const int out_h = rows * (h * scale + pad) + pad, out_w = cols * (w * scale + pad) + pad;
  ASSERT_EQ(r->shape, (std::vector<hsize_t>{1, 1, static_cast<hsize_t>(out_h), static_cast<hsize_t>(out_w)}));
  auto at = [&](int y, int x) { return r->data[y * out_w + x]; };
  for (int i = 0; i < rows * cols; ++i) {
    int y0 = pad + (i / cols) * (h * scale + pad), x0 = pad + (i % cols) * (w * scale + pad);
    float want = i < n ? (i + 1) / 10.f : 1.f;  // empty cells stay white
    EXPECT_NEAR(at(y0, x0), want, 1.f / 255.f) << "cell " << i;
    EXPECT_NEAR(at(y0 + h * scale - 1, x0 + w * scale - 1), want, 1.f / 255.f) << "cell " << i;
    EXPECT_EQ(at(y0 - 1, x0), 1.f) << "padding above cell " << i;
  }
  EXPECT_EQ(at(0, 0), 1.f);
}

TEST(PngTest, RgbGridRoundTripKeepsChannels) {
  TempDir tmp;
  h5::Array<float> imgs({1, 3, 2, 2});
  for (int p = 0; p < 4; ++p) {
    imgs.data[p] = 1.f;       // red
    imgs.data[4 + p] = 0.f;   // green
    imgs.data[8 + p] = 0.4f;  // blue
  }
  ASSERT_TRUE(png::write_png_grid(tmp / "rgb.png", imgs, 1, 1, 0, 1).ok());
  auto r = png::read_png(tmp / "rgb.png");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->shape, (std::vector<hsize_t>{1, 3, 2, 2}));
  for (size_t i = 0; i < imgs.data.size(); ++i) EXPECT_NEAR(r->data[i], imgs.data[i], 1.f / 255.f) << i;
}

TEST(PngTest, ErrorsNameTheProblem) {
  TempDir tmp;
  h5::Array<float> imgs({4, 1, 2, 2});
  auto st = png::write_png_grid(tmp / "x.png", imgs, 1, 3, 1, 1);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4 images"), std::string::npos) << st.message();
  h5::Array<float> two({4, 2, 2, 2});
  st = png::write_png_grid(tmp / "x.png", two, 2, 2, 1, 1);
  EXPECT_NE(st.message().find("channels"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(tmp / "x.png"));

  std::vector<float> px(4, 0.5f);
  st = png::write_png_gray("/proc/no-such-dir/a.png", px.data(), 2, 2);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/proc/no-such-dir"), std::string::npos) << st.message();

  auto r = png::read_png(tmp / "missing.png");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(write_file_atomic(tmp / "junk.png", "not a png").ok());
  r = png::read_png(tmp / "junk.png");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("junk.png"), std::string::npos);
}

// A pair figure stands alone: the labels are drawn into it (ink in the title,
// header and row-label areas, which carry no image), and the images sit where
// the layout puts them.
TEST(PngTest, PairFigureCarriesItsLabels) {
  TempDir tmp;
  const int n = 8, rows = 2, cols = 3;
  png::PairFigure fig;
  fig.cell_px = n;
  fig.source.assign(n * n, 0.5f);
  fig.target.assign(n * n, 0.25f);
  fig.cells.assign(rows * cols * n * n, 1.f);  // white cells: any dark pixel right of the images is a label
  fig.rows = {"group 1: pose", "group 2: category"};
  fig.columns = {"g=0", "g=10", "g=30"};
  fig.title = "pair 0: source 12 target 7";
  ASSERT_TRUE(png::write_pair_figure(tmp / "f.png", fig, 2).ok());
  auto r = png::read_png(tmp / "f.png");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const int h = static_cast<int>(r->dim(2)), w = static_cast<int>(r->dim(3));
  auto dark_in = [&](int y0, int y1, int x0, int x1) {
    int k = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) k += r->data[static_cast<size_t>(y) * w + x] < 0.1f;
    return k;
  };
  EXPECT_GT(dark_in(0, 11, 0, w), 30);    // title line (7 px glyphs from y = 4)
  EXPECT_GT(dark_in(15, 22, 0, 40), 10);  // "source" header
  // Row labels between the target image and the grid.
  const int cell = 2 * n, label_x = 4 + 2 * cell + 2 + 10;
  EXPECT_GT(dark_in(25, 25 + cell, label_x, label_x + 40), 10);
  // Source and target pixels where the layout puts them.
  EXPECT_NEAR(r->data[static_cast<size_t>(25 + 4) * w + 4 + 4], 0.5f, 1.f / 255);
  EXPECT_NEAR(r->data[static_cast<size_t>(25 + 4) * w + 4 + cell + 2 + 4], 0.25f, 1.f / 255);
  EXPECT_GT(w, label_x + font_width_of("group 2: category") + cols * cell);
  EXPECT_EQ(h, 25 + rows * (cell + 2) + 4);
  // Sizes that disagree are rejected.
  fig.cells.pop_back();
  EXPECT_FALSE(png::write_pair_figure(tmp / "g.png", fig, 2).ok());
}

}  // namespace
}  // namespace migvis
