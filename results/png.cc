#include "results/png.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "results/font.h"

namespace migvis::png {
namespace {

uint8_t to_byte(float v) {
  if (!(v > 0.f)) return 0;  // also maps NaN to 0
  if (v >= 1.f) return 255;
  return static_cast<uint8_t>(std::lround(v * 255.f));
}

// Encodes 8-bit pixels with libpng's simplified API (no setjmp needed) into
// memory, then writes the bytes atomically.
Status encode_and_write(const fs::path& path, const std::vector<uint8_t>& pixels, int height, int width,
                        int channels) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, nullptr, &size, 0, pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    return Status::Internal(path.string() + ": PNG encoding failed: " + msg);
  }
  std::vector<uint8_t> buf(size);
  if (!png_image_write_to_memory(&img, buf.data(), &size, 0, pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    return Status::Internal(path.string() + ": PNG encoding failed: " + msg);
  }
  png_image_free(&img);
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(buf.data()), size));
}

}  // namespace

Status write_png_gray(const fs::path& path, const float* pixels, int height, int width) {
  if (height < 1 || width < 1)
    return Status::InvalidArgument(fmt::format("{}: image size must be positive, got {} x {}", path.string(), height,
                                               width));
  std::vector<uint8_t> px(static_cast<size_t>(height) * width);
  for (size_t i = 0; i < px.size(); ++i) px[i] = to_byte(pixels[i]);
  return encode_and_write(path, px, height, width, 1);
}

Status write_png_grid(const fs::path& path, const h5::Array<float>& images, int rows, int cols, int pad_px,
                      int scale) {
  const std::string where = path.string();
  if (images.rank() != 4)
    return Status::InvalidArgument(fmt::format("{}: expected images of rank 4 [N, C, H, W], found rank {}", where,
                                               images.rank()));
  const int n = static_cast<int>(images.dim(0)), c = static_cast<int>(images.dim(1));
  const int h = static_cast<int>(images.dim(2)), w = static_cast<int>(images.dim(3));
  if (c != 1 && c != 3)
    return Status::InvalidArgument(fmt::format("{}: expected 1 (gray) or 3 (RGB) channels, found {}", where, c));
  if (rows < 1 || cols < 1 || scale < 1 || pad_px < 0)
    return Status::InvalidArgument(fmt::format("{}: bad grid rows={} cols={} scale={} pad={} (need >= 1, pad >= 0)",
                                               where, rows, cols, scale, pad_px));
  if (static_cast<int64_t>(rows) * cols < n)
    return Status::InvalidArgument(fmt::format("{}: grid {} x {} has {} cells but there are {} images", where, rows,
                                               cols, rows * cols, n));
  if (h < 1 || w < 1) return Status::InvalidArgument(fmt::format("{}: empty images ({} x {})", where, h, w));
  if (images.data.size() != images.numel())
    return Status::InvalidArgument(fmt::format("{}: shape holds {} values but data has {}", where, images.numel(),
                                               images.data.size()));
  const int cell_h = h * scale, cell_w = w * scale;
  const int out_h = rows * (cell_h + pad_px) + pad_px;
  const int out_w = cols * (cell_w + pad_px) + pad_px;
  std::vector<uint8_t> px(static_cast<size_t>(out_h) * out_w * c, 255);
  const size_t plane = static_cast<size_t>(h) * w;
  for (int i = 0; i < n; ++i) {
    const int y0 = pad_px + (i / cols) * (cell_h + pad_px);
    const int x0 = pad_px + (i % cols) * (cell_w + pad_px);
    const float* img = images.data.data() + static_cast<size_t>(i) * c * plane;
    for (int y = 0; y < cell_h; ++y) {
      uint8_t* row = px.data() + (static_cast<size_t>(y0 + y) * out_w + x0) * c;
      const size_t sy = static_cast<size_t>(y / scale) * w;
      for (int x = 0; x < cell_w; ++x)
        for (int ch = 0; ch < c; ++ch)
          row[static_cast<size_t>(x) * c + ch] = to_byte(img[ch * plane + sy + x / scale]);
    }
  }
  return encode_and_write(path, px, out_h, out_w, c);
}

Status write_pair_figure(const fs::path& path, const PairFigure& fig, int scale) {
  const std::string where = path.string();
  const int c = fig.channels, n = fig.cell_px, R = static_cast<int>(fig.rows.size()), K = static_cast<int>(fig.columns.size());
  if (c != 1 && c != 3) return Status::InvalidArgument(fmt::format("{}: expected 1 or 3 channels, got {}", where, c));
  if (n < 1 || scale < 1) return Status::InvalidArgument(fmt::format("{}: cell_px {} and scale {} must be >= 1", where, n, scale));
  const size_t img = static_cast<size_t>(c) * n * n;
  if (fig.source.size() != img || fig.target.size() != img || fig.cells.size() != img * R * K)
    return Status::InvalidArgument(fmt::format("{}: expected source and target of {} values and {} x {} cells of {}, got "
                                               "{}, {} and {} values", where, img, R, K, img, fig.source.size(),
                                               fig.target.size(), fig.cells.size()));
  const int cell = n * scale, pad = 2, m = 4, fs = cell >= 96 ? 2 : 1;
  const int text_h = font::kGlyphHeight * fs;
  int label_w = 0;
  for (auto& r : fig.rows) label_w = std::max(label_w, font::text_width(r, fs));
  const int header_y = m + text_h + 4, images_y = header_y + text_h + 3;
  const int target_x = m + cell + pad, label_x = target_x + cell + 10, grid_x = label_x + label_w + 4;
  int out_w = grid_x + K * (cell + pad) + m;
  out_w = std::max({out_w, m + font::text_width(fig.title, fs) + m, m + 2 * cell + pad + m});
  const int out_h = images_y + std::max(1, R) * (cell + pad) + m;
  std::vector<uint8_t> px(static_cast<size_t>(out_h) * out_w * c, 255);
  auto blit = [&](const float* im, int x0, int y0) {
    const size_t plane = static_cast<size_t>(n) * n;
    for (int y = 0; y < cell; ++y)
      for (int x = 0; x < cell; ++x)
        for (int ch = 0; ch < c; ++ch)
          px[(static_cast<size_t>(y0 + y) * out_w + x0 + x) * c + ch] =
              to_byte(im[ch * plane + static_cast<size_t>(y / scale) * n + x / scale]);
  };
  font::draw_text(px, out_w, out_h, c, m, m, fig.title, fs);
  font::draw_text(px, out_w, out_h, c, m, header_y, "source", fs);
  font::draw_text(px, out_w, out_h, c, target_x, header_y, "target", fs);
  blit(fig.source.data(), m, images_y);
  blit(fig.target.data(), target_x, images_y);
  for (int k = 0; k < K; ++k) font::draw_text(px, out_w, out_h, c, grid_x + k * (cell + pad), header_y, fig.columns[k], fs);
  for (int r = 0; r < R; ++r) {
    const int y0 = images_y + r * (cell + pad);
    font::draw_text(px, out_w, out_h, c, label_x, y0 + (cell - text_h) / 2, fig.rows[r], fs);
    for (int k = 0; k < K; ++k) blit(fig.cells.data() + (static_cast<size_t>(r) * K + k) * img, grid_x + k * (cell + pad), y0);
  }
  return encode_and_write(path, px, out_h, out_w, c);
}

Result<h5::Array<float>> read_png(const fs::path& path) {
  const std::string where = path.string();
  if (!fs::exists(path)) return Status::NotFound(where + ": no such file");
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    std::string msg = img.message;
    png_image_free(&img);
    return Status::InvalidArgument(where + ": not a readable PNG file: " + msg);
  }
  const int c = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  img.format = c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;  // alpha is composited away, 16-bit reduced
  const int h = static_cast<int>(img.height), w = static_cast<int>(img.width);
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  // Transparent pixels are composited onto white (what a viewer shows).
  png_color white{255, 255, 255};
  if (!png_image_finish_read(&img, &white, px.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    return Status::InvalidArgument(where + ": cannot decode PNG: " + msg);
  }
  png_image_free(&img);
  h5::Array<float> out({1, static_cast<hsize_t>(c), static_cast<hsize_t>(h), static_cast<hsize_t>(w)});
  const size_t plane = static_cast<size_t>(h) * w;
  for (size_t p = 0; p < plane; ++p)
    for (int ch = 0; ch < c; ++ch) out.data[ch * plane + p] = px[p * c + ch] / 255.f;
  return out;
}

}  // namespace migvis::png
