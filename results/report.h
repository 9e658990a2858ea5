// `migvis report`: one static HTML page (no network, no JavaScript) that tells
// the MIG-Vis story from the catalog: data -> VAE (table 1, training curves as
// inline SVG) -> group selectivity (table 2) -> guidance (table 3, the group x
// gamma synthesis grids per animal) -> ablations (table 4), then what is
// missing. Grid PNGs (artifacts of kind `grid`) are copied into <out>/img/.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/status.h"
#include "results/catalog.h"

namespace migvis::catalog {

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

// An SVG line plot (width x height px) with axes, min/max tick labels and a
// legend. Non-finite points are skipped; an empty plot says "no data".
std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                          int width_px = 480, int height_px = 260);

// Writes <out_dir>/index.html and <out_dir>/img/*.png (atomically, each file).
// `root` resolves job directories stored relative to it. Everything is read
// and rendered before the first write, so a failure leaves out_dir untouched.
Status write_report(const Catalog& cat, const fs::path& root, const fs::path& out_dir);

}  // namespace migvis::catalog
