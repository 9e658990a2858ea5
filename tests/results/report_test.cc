#include "results/report.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "tests/results/demo_catalog.h"
#include "tests/test_util.h"

namespace migvis::catalog {
namespace {

using migvis::testing::TempDir;

TEST(SvgPlotTest, DrawsEverySeriesAndHandlesNoData) {
  std::string svg = svg_line_plot("loss <a&b>", "step", {{"vae", {{0, 1}, {10, 0.5}}}, {"migvis", {{0, 2}, {10, NAN}}}});
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++polylines;
  EXPECT_EQ(polylines, 2u);
  EXPECT_NE(svg.find("loss &lt;a&amp;b&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_NE(svg_line_plot("empty", "step", {}).find("no data"), std::string::npos);
}

TEST(ReportTest, WritesHtmlAndCopiesGrids) {
  TempDir tmp;
  auto c = Catalog::open(tmp / "migvis.db", Catalog::Mode::kReadWrite);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(migvis::testing::fill_demo_catalog(**c, tmp.path()).ok());
  fs::path out = tmp / "report";
  ASSERT_TRUE(write_report(**c, tmp.path(), out).ok());
  auto html = read_file(out / "index.html");
  ASSERT_TRUE(html.ok());
  for (const char* want : {"1. Data and jobs", "2. A neural VAE", "3. What each latent group encodes",
                           "4. Mutual-information guided synthesis", "5. Ablations", "Training curves, a1",
                           "Synthesis grids, a2", "<svg", "a2 / tcvae: no done jobs", "<strong>"})
    EXPECT_NE(html->find(want), std::string::npos) << want;
  EXPECT_EQ(html->find("<script"), std::string::npos);
  EXPECT_EQ(html->find("http://"), html->find("http://www.w3.org/2000/svg")) << "no network references";
  size_t imgs = 0;
  for (auto& e : fs::directory_iterator(out / "img")) {
    EXPECT_EQ(e.path().extension(), ".png");
    EXPECT_NE(html->find("img/" + e.path().filename().string()), std::string::npos);
    ++imgs;
  }
  EXPECT_EQ(imgs, 2u + 2 * 2);  // a synthesis grid and two eval pair figures per animal
  EXPECT_NE(html->find("Guided pairs, a1"), std::string::npos);
  EXPECT_NE(html->find("source stimulus 4"), std::string::npos);
}

}  // namespace
}  // namespace migvis::catalog
