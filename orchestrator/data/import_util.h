// Pieces shared by the importers (internal to migvis_data).
#pragma once

#include <string>
#include <vector>

#include "results/dataset_io.h"
#include "results/h5.h"

namespace migvis::data::detail {

// A 1-D coordinate / table column: strings or numbers.
struct Column {
  std::string name;
  bool is_string = false;
  std::vector<std::string> s;
  std::vector<double> d;
  size_t size() const { return is_string ? s.size() : d.size(); }
  std::string text(size_t i) const;  // numbers without trailing zeros ("3", "0.5")
};

// Reads a 1-D dataset (numbers, variable/fixed-length strings, or a netCDF
// char array [n, len]) as a column. `expect_dim` names the dimension in errors.
Result<Column> read_column(const h5::Location& loc, const std::string& path, const std::string& expect_dim);

// Per-image factors from per-presentation columns: the value at the first
// presentation of each image. Standard names are mapped (schemas/import.md):
// category_name -> category, object_name -> object, s -> size, rxy/ryz/rxz,
// tx/ty (or HvM ty/tz -> tx/ty). Others: strings categorical, numbers
// continuous, role other. `first_presentation[i]` = a row showing image i, or -1.
std::vector<Factor> factors_from_columns(const std::vector<Column>& cols, const std::vector<int64_t>& first_presentation);

// Converts [1, C, H, W] (C = 1 or 3) to gray [H, W] and resamples it to
// `size_px` x `size_px` when size_px > 0 (box filter for integer factors,
// bilinear otherwise).
std::vector<float> to_gray(const h5::Array<float>& img, int* h, int* w);
std::vector<float> resample(const std::vector<float>& src, int h, int w, int out_h, int out_w);

}  // namespace migvis::data::detail
