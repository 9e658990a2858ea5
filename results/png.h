// PNG output (and input, for importers) of stimulus and synthesized images.
//
// Images cross this boundary as floats in [0, 1] (values outside are clamped on
// write); they are stored as 8-bit grayscale or RGB. Every write is atomic
// (`<path>.tmp.<pid>` then rename), so a reader never sees half a PNG.
// Thread-compatible: no shared state.
#pragma once

#include <string>
#include <vector>

#include "common/files.h"
#include "common/status.h"
#include "results/h5.h"

namespace migvis::png {

// Writes one grayscale image, `pixels` row-major [height, width] in [0, 1].
// InvalidArgument for non-positive sizes; Unavailable if the file cannot be written.
Status write_png_gray(const fs::path& path, const float* pixels, int height, int width);

// Writes `images` [N, C, H, W] (C = 1 grayscale or C = 3 RGB, values in [0, 1])
// as one grid of `rows` x `cols` cells, image i at row i / cols, column i % cols;
// cells past N stay background (white). `pad_px` pixels of white separate cells
// and surround the grid; each image pixel becomes a `scale` x `scale` block.
// Output size: height = rows * (H * scale + pad) + pad, width likewise.
// InvalidArgument when rank != 4, C not in {1, 3}, rows * cols < N, or
// rows/cols/scale < 1 or pad_px < 0.
Status write_png_grid(const fs::path& path, const h5::Array<float>& images, int rows, int cols, int pad_px = 1,
                      int scale = 1);

// One synthesis pair as a figure that stands alone (labels drawn with
// results/font.h): a title line; the source and the target image side by side,
// captioned SOURCE and TARGET; then the guided images, one row per latent
// group (labelled with `rows`, e.g. "group 2: category") and one column per
// guidance strength (headed with `columns`, e.g. "g=30").
struct PairFigure {
  int cell_px = 0;                     // H = W of every image
  int channels = 1;                    // 1 or 3
  std::vector<float> source, target;   // [C, H, W] in [0, 1]
  std::vector<float> cells;            // [rows, columns, C, H, W] in [0, 1]
  std::vector<std::string> rows, columns;
  std::string title;
};
// Writes `fig` as one PNG, every image pixel a scale x scale block, labels at
// font scale 1 (2 when cells are 96 px or more). InvalidArgument when sizes
// disagree (source/target/cells vs cell_px, channels, rows x columns) or
// channels is not 1 or 3. The layout's size: see png.cc (figure_layout).
Status write_pair_figure(const fs::path& path, const PairFigure& fig, int scale = 1);

// Reads a PNG (any bit depth / colour type; palette is expanded, alpha is
// dropped, 16-bit is reduced to 8) as [1, C, H, W] in [0, 1] with C = 1 for
// gray files and C = 3 for colour ones. NotFound if missing, InvalidArgument if
// the file is not a readable PNG.
Result<h5::Array<float>> read_png(const fs::path& path);

}  // namespace migvis::png
