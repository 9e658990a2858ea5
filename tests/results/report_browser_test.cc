// `migvis report` rendered by real headless Chromium (label slow): the
// screenshot must exist, be 1280x2000 and not blank. Skips without chromium.
#include <png.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "results/catalog.h"
#include "tests/results/demo_catalog.h"
#include "tests/test_util.h"

namespace migvis::catalog {
namespace {

using migvis::testing::TempDir;

// Decodes a PNG and returns the fraction of pixels that differ from the first
// pixel (0 = blank image), or -1 if it cannot be decoded.
double non_blank_fraction(const std::string& path, int* w, int* h) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return -1;
  img.format = PNG_FORMAT_RGB;
  std::vector<png_byte> buf(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, buf.data(), 0, nullptr)) return -1;
  *w = img.width;
  *h = img.height;
  size_t differ = 0, n = size_t(img.width) * img.height;
  for (size_t i = 0; i < n; ++i)
    if (buf[3 * i] != buf[0] || buf[3 * i + 1] != buf[1] || buf[3 * i + 2] != buf[2]) ++differ;
  return double(differ) / n;
}

// Renders the report in real headless Chromium and checks the screenshot.
TEST(ReportBrowserTest, RendersInHeadlessChromium) {
  std::string chromium;
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(c)) chromium = c;
  if (chromium.empty()) MIGVIS_SKIP_WITHOUT("chromium") << "chromium is not installed (apt-get install chromium); skipping the browser test";
  TempDir tmp;
  {
    auto c = Catalog::open(tmp / "migvis.db", Catalog::Mode::kReadWrite);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(migvis::testing::fill_demo_catalog(**c, tmp.path()).ok());
  }
  fs::path out = tmp / "report";
  auto gen = migvis::testing::run_command(migvis::testing::migvis_bin() + " report --root " + tmp.path().string() +
                                          " --out " + out.string());
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  fs::path shot = tmp / "shot.png";
  std::string cmd = "timeout 90 " + chromium +
                    " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                    " --disable-background-networking --disable-component-update --disable-sync"
                    " --user-data-dir=" + (tmp / "profile").string() + " --screenshot=" + shot.string() +
                    " --window-size=1280,2000 file://" + (out / "index.html").string();
  auto r = migvis::testing::run_command(cmd);
  ASSERT_TRUE(fs::exists(shot)) << "chromium wrote no screenshot (exit " << r.exit_code << "):\n" << r.output;
  // CI keeps the screenshot as an artifact when asked to.
  if (const char* keep = std::getenv("MIGVIS_SCREENSHOT_OUT")) fs::copy_file(shot, keep, fs::copy_options::overwrite_existing);
  EXPECT_GT(fs::file_size(shot), 20u * 1024) << "screenshot suspiciously small";
  int w = 0, h = 0;
  double frac = non_blank_fraction(shot.string(), &w, &h);
  EXPECT_EQ(w, 1280);
  EXPECT_EQ(h, 2000);
  EXPECT_GT(frac, 0.02) << "screenshot is (nearly) blank";

  // The labelled pair figures: in the page as Chromium built it, with captions
  // and previous / next links that step through the pairs.
  auto dom = migvis::testing::run_command("timeout 90 " + chromium +
                                          " --headless --no-sandbox --disable-gpu --no-first-run"
                                          " --disable-background-networking --disable-component-update --disable-sync"
                                          " --user-data-dir=" + (tmp / "profile2").string() + " --dump-dom file://" +
                                          (out / "index.html").string());
  ASSERT_EQ(dom.exit_code, 0) << dom.output;
  EXPECT_NE(dom.output.find("id=\"pair-a1-1\""), std::string::npos);
  EXPECT_NE(dom.output.find("href=\"#pair-a1-2\""), std::string::npos);
  EXPECT_NE(dom.output.find("pair figure 2 of 2"), std::string::npos);
  EXPECT_NE(dom.output.find("figure_pair0.png"), std::string::npos);
  EXPECT_NE(dom.output.find("figure_pair1.png"), std::string::npos);
  EXPECT_NE(dom.output.find("source stimulus 3"), std::string::npos);
  EXPECT_NE(dom.output.find("columns: guidance strength γ"), std::string::npos);
  EXPECT_NE(dom.output.find("group 2: category"), std::string::npos);
  EXPECT_NE(dom.output.find("next pair"), std::string::npos);
  // The figure files themselves carry their labels (stand-alone PNGs): the
  // title row above the images holds ink.
  fs::path fig;
  for (auto& e : fs::directory_iterator(out / "img"))
    if (e.path().filename().string().find("figure_pair0") != std::string::npos) fig = e.path();
  ASSERT_FALSE(fig.empty());
  int fw = 0, fh = 0;
  EXPECT_GT(non_blank_fraction(fig.string(), &fw, &fh), 0.3);
  EXPECT_GT(fw, 4 * 16 * 4);  // source, target and three gamma columns of 64 px
}

}  // namespace
}  // namespace migvis::catalog
