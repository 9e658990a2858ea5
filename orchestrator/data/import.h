// Importers: the formats neuroscientists have -> the migvis dataset layout
// (schemas/dataset.md). Mappings are documented in schemas/import.md.
//   brainscore  a Brain-Score/BrainIO netCDF-4 assembly (presentation x neuroid
//               [x time_bin]) plus its stimulus set (CSV + image files)
//   nwb         an NWB 2 file: units table spike times binned per stimulus
//               presentation of an intervals table, images from /stimulus
//   hdf5        a migvis dataset file: validated, then copied
// All read through results/h5.h (HDF5 C API). Errors name the file, the HDF5
// path (or CSV line) and expected vs found: InvalidArgument for malformed input
// (exit 65), NotFound for a missing file (exit 66). Nothing is written here;
// callers write the result with write_dataset (atomic).
#pragma once

#include <string>

#include "common/files.h"
#include "common/status.h"
#include "results/dataset_io.h"

namespace migvis::data {

struct ImportOptions {
  std::string format;        // brainscore | nwb | hdf5
  fs::path input;
  // brainscore
  fs::path stimuli_csv;      // required: stimulus set CSV (stimulus_id|image_id, filename, metadata)
  fs::path images_dir;       // image files (default: the CSV's directory)
  std::string variable;      // data variable (default: the only rank-2/3 numeric non-coordinate dataset)
  std::string region = "IT"; // keep neuroids whose `region` coordinate equals this ("" = all)
  int time_bin = -1;         // -1 = average all time bins, else that bin's index
  int image_size_px = 0;     // resample images to this side (0 = keep)
  // nwb
  double t_start_ms = 70;    // counting window relative to each presentation's start_time
  double t_stop_ms = 170;
  std::string intervals;     // /intervals/<name> (default: the only table, or `presentations`)
  std::string stimulus;      // /stimulus/presentation|templates/<name> (default: the only one)
  std::string stimulus_column;  // intervals column naming the image (default: first of image_index,
                                // stimulus_index, image_id, stimulus_id, frame, image, stimulus)
  // both: override the animal / session names found in the file
  std::string animal;
  std::string session;
};

// Reads `o.input` in `o.format` into a validated Dataset.
Result<Dataset> import_dataset(const ImportOptions& o);

// Internal pieces, exposed for the tests.
Result<Dataset> import_brainscore(const ImportOptions& o);
Result<Dataset> import_nwb(const ImportOptions& o);

// Turns any string into a name matching [A-Za-z0-9_.-]+ (others become '_',
// at most 64 characters; "" becomes "x").
std::string sanitize_name(const std::string& s);

}  // namespace migvis::data
