// Small input files in the exact layouts the importers read, built in the
// tests: a Brain-Score netCDF-4 assembly (HDF5 + dimension scales, as netCDF
// writes them) with its stimulus-set CSV and PNGs, and an NWB file.
// Variants produce the malformed inputs the error tests need.
#pragma once

#include <hdf5.h>
#include <hdf5_hl.h>

#include <string>
#include <vector>

#include "common/files.h"
#include "results/h5.h"
#include "results/png.h"

namespace migvis::testing {

struct BrainScoreFixture {
  fs::path nc, csv, image_dir;
  // Presentation p shows stimulus kPresOrder[p]; value[p, j, t] = 10 * img + j + 0.5 * t
  // where img is the number in the stimulus id "img<k>". Stimulus k's PNG is filled with (k + 1) / 10.
  static std::vector<int> presentation_images() { return {3, 0, 5, 1, 2, 4, 0, 4, 2, 5, 3, 1}; }
  static constexpr int kStimuli = 6, kNeuroids = 5, kTimeBins = 2;
};

enum class BsVariant { kGood, kMissingStimulusId, kUnknownId, kStimulusIdRank2, kNoDimensionScales };

// netCDF marks a dimension without a coordinate variable like this.
inline void make_phony_dim(hid_t file, const char* name, hsize_t len) {
  hid_t sp = H5Screate_simple(1, &len, nullptr);
  hid_t ds = H5Dcreate2(file, name, H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5DSset_scale(ds, ("This is a netCDF dimension but not a netCDF variable. " + std::to_string(len)).c_str());
  H5Dclose(ds);
  H5Sclose(sp);
}

inline void attach(hid_t file, const char* var, const char* dim, unsigned idx) {
  hid_t v = H5Dopen2(file, var, H5P_DEFAULT), d = H5Dopen2(file, dim, H5P_DEFAULT);
  H5DSattach_scale(v, d, idx);
  H5Dclose(v);
  H5Dclose(d);
}

inline BrainScoreFixture make_brainscore(const fs::path& dir, BsVariant variant = BsVariant::kGood) {
  BrainScoreFixture fx;
  fx.nc = dir / "assembly.nc";
  fx.csv = dir / "stimuli" / "stimulus_set.csv";
  fx.image_dir = dir / "stimuli";
  const auto order = BrainScoreFixture::presentation_images();
  const size_t np = order.size(), nn = BrainScoreFixture::kNeuroids, nt = BrainScoreFixture::kTimeBins;
  // Stimulus set: rows in a different order from the presentations.
  std::string csv = "stimulus_id,filename,background_id\n";
  for (int k : {5, 2, 0, 4, 1, 3}) {
    csv += "img" + std::to_string(k) + ",img" + std::to_string(k) + ".png," + std::to_string(10 + k) + "\n";
    std::vector<float> px(8 * 8, (k + 1) / 10.f);
    (void)png::write_png_gray(fx.image_dir / ("img" + std::to_string(k) + ".png"), px.data(), 8, 8);
  }
  (void)write_file_atomic(fx.csv, csv);

  auto f = h5::File::create(fx.nc);
  const hid_t fid = f->id();
  make_phony_dim(fid, "presentation", np);
  make_phony_dim(fid, "neuroid", nn);
  // time_bin has coordinate variables time_bin_start/end (non-dimension coords).
  make_phony_dim(fid, "time_bin", nt);
  std::vector<std::string> ids, objects, cats;
  std::vector<double> rxy, ryz, rxz, s, ty, tz;
  std::vector<int64_t> rep;
  std::vector<int> seen(6, 0);
  const char* cat_of[6] = {"Animals", "Animals", "Cars", "Cars", "Faces", "Faces"};
  for (int k : order) {
    ids.push_back(variant == BsVariant::kUnknownId && k == 4 ? "img99" : "img" + std::to_string(k));
    objects.push_back("obj" + std::to_string(k));
    cats.push_back(cat_of[k]);
    rxy.push_back(10.0 * k);
    ryz.push_back(-5.0 * k);
    rxz.push_back(1.0 * k);
    s.push_back(1.0 + 0.1 * k);
    ty.push_back(0.01 * k);
    tz.push_back(-0.02 * k);
    rep.push_back(seen[k]++);
  }
  if (variant == BsVariant::kStimulusIdRank2) {
    (void)f->write("stimulus_id", h5::Array<double>({np, 2}));
  } else if (variant != BsVariant::kMissingStimulusId) {
    (void)f->write_vector("stimulus_id", ids);
  }
  (void)f->write_vector("object_name", objects);
  (void)f->write_vector("category_name", cats);
  (void)f->write_vector("rxy", rxy);
  (void)f->write_vector("ryz", ryz);
  (void)f->write_vector("rxz", rxz);
  (void)f->write_vector("s", s);
  (void)f->write_vector("ty", ty);
  (void)f->write_vector("tz", tz);
  (void)f->write_vector("repetition", rep);
  (void)f->write_vector<std::string>("neuroid_id", {"Chabo_L_M_5_9", "Chabo_L_M_6_9", "Chabo_V4_1", "Tito_L_P_1_1",
                                                    "Tito_L_P_2_1"});
  (void)f->write_vector<std::string>("animal", {"Chabo", "Chabo", "Chabo", "Tito", "Tito"});
  (void)f->write_vector<std::string>("region", {"IT", "IT", "V4", "IT", "IT"});
  (void)f->write_vector<int64_t>("time_bin_start", {70, 120});
  (void)f->write_vector<int64_t>("time_bin_end", {120, 170});
  h5::Array<float> vals({np, nn, nt});
  for (size_t p = 0; p < np; ++p)
    for (size_t j = 0; j < nn; ++j)
      for (size_t t = 0; t < nt; ++t) vals.data[(p * nn + j) * nt + t] = 10.f * order[p] + j + 0.5f * t;
  (void)f->write("__xarray_dataarray_variable__", vals);
  if (variant != BsVariant::kNoDimensionScales) {
    for (const char* c : {"object_name", "category_name", "rxy", "ryz", "rxz", "s", "ty", "tz", "repetition"})
      attach(fid, c, "presentation", 0);
    if (variant != BsVariant::kMissingStimulusId) attach(fid, "stimulus_id", "presentation", 0);
    for (const char* c : {"neuroid_id", "animal", "region"}) attach(fid, c, "neuroid", 0);
    for (const char* c : {"time_bin_start", "time_bin_end"}) attach(fid, c, "time_bin", 0);
    attach(fid, "__xarray_dataarray_variable__", "presentation", 0);
    attach(fid, "__xarray_dataarray_variable__", "neuroid", 1);
    attach(fid, "__xarray_dataarray_variable__", "time_bin", 2);
  }
  (void)f->close();
  return fx;
}

struct NwbFixture {
  fs::path path;
  // Presentation p starts at 1 + 0.5 p s and shows image (p * 2) % 5; unit u
  // fires (p + u) % 4 spikes inside [70, 170) ms after onset, plus one at 20 ms
  // and one at 300 ms (outside the window).
  static constexpr int kPresentations = 10, kUnits = 3, kImages = 5;
  static int image_of(int p) { return (p * 2) % 5; }
  static int count(int p, int u) { return (p + u) % 4; }
};

enum class NwbVariant { kGood, kIndexOutOfRange, kImageIndexOutOfRange, kMissingSpikeTimes };

inline NwbFixture make_nwb(const fs::path& dir, NwbVariant variant = NwbVariant::kGood) {
  NwbFixture fx;
  fx.path = dir / "session.nwb";
  auto f = h5::File::create(fx.path);
  std::vector<std::vector<double>> per_unit(NwbFixture::kUnits);
  std::vector<double> start, stop, rxy;
  std::vector<int64_t> img;
  std::vector<std::string> cat;
  for (int p = 0; p < NwbFixture::kPresentations; ++p) {
    double on = 1.0 + 0.5 * p;
    start.push_back(on);
    stop.push_back(on + 0.2);
    img.push_back(variant == NwbVariant::kImageIndexOutOfRange && p == 3 ? 7 : NwbFixture::image_of(p));
    cat.push_back(NwbFixture::image_of(p) < 3 ? "faces" : "cars");
    rxy.push_back(15.0 * NwbFixture::image_of(p));
    for (int u = 0; u < NwbFixture::kUnits; ++u) {
      per_unit[u].push_back(on + 0.020);
      for (int k = 0; k < NwbFixture::count(p, u); ++k) per_unit[u].push_back(on + 0.075 + 0.02 * k);
      per_unit[u].push_back(on + 0.300);
    }
  }
  std::vector<double> spikes;
  std::vector<int64_t> index;
  for (auto& u : per_unit) {
    spikes.insert(spikes.end(), u.rbegin(), u.rend());  // unsorted within a unit: the importer sorts
    index.push_back(static_cast<int64_t>(spikes.size()));
  }
  if (variant == NwbVariant::kIndexOutOfRange) index.back() += 5;
  if (variant != NwbVariant::kMissingSpikeTimes) (void)f->write_vector("units/spike_times", spikes);
  (void)f->write_vector("units/spike_times_index", index);
  (void)f->write_vector<int64_t>("units/id", {101, 102, 103});
  (void)f->write_vector("intervals/presentations/start_time", start);
  (void)f->write_vector("intervals/presentations/stop_time", stop);
  (void)f->write_vector("intervals/presentations/image_index", img);
  (void)f->write_vector("intervals/presentations/category_name", cat);
  (void)f->write_vector("intervals/presentations/rxy", rxy);
  h5::Array<uint8_t> stack({NwbFixture::kImages, 4, 6});
  for (size_t i = 0; i < stack.data.size(); ++i) stack.data[i] = static_cast<uint8_t>(50 * (i / 24));
  (void)f->write("stimulus/presentation/objects/data", stack);
  (void)f->write_scalar<std::string>("general/subject/subject_id", "monkey M");
  (void)f->write_scalar<std::string>("session_description", "day 3");
  (void)f->write_scalar<std::string>("identifier", "abc-123");
  (void)f->close();
  return fx;
}

}  // namespace migvis::testing
