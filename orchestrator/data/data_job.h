// The `data` stage: one job directory (schemas/job.md) whose job.yaml asks for
// a synthetic dataset or an import, producing `dataset.h5` (atomically), a
// `stimuli.png` grid of 64 evenly spaced images, and finally result.yaml. Run by
// `migvis data run-job DIR` (torch-free, so it runs on a login node).
//
// params (job.yaml), all optional; unknown keys are an error naming the key:
//   preset: tiny | default | paper      seed: N (default: job.yaml seed)
//   image_size, categories, objects_per_category, poses_per_object, animals,
//   sessions_per_animal, min_neurons, max_neurons, repeats   (synth overrides)
//   import: {format: brainscore|nwb|hdf5, path: FILE, stimuli: CSV, images: DIR,
//            variable: NAME, region: IT, time_bin: -1, image_size: 0,
//            t_start_ms: 70, t_stop_ms: 170, intervals: NAME, stimulus: NAME,
//            stimulus_column: NAME, animal: NAME, session: NAME}
//            (see data/import.h and schemas/import.md)
//            (relative paths are relative to the job directory)
// `import` excludes the synth keys.
#pragma once

#include <map>
#include <string>

#include "common/files.h"
#include "common/status.h"

namespace migvis::data {

inline constexpr const char* kDatasetFile = "dataset.h5";
inline constexpr const char* kStimuliGridFile = "stimuli.png";

// Runs the job in `dir`. Returns the job's status; result.yaml records it
// (status ok/failed, exit code, metrics num_images, num_animals, num_sessions,
// num_neurons_total, num_presentations, image_size_px) unless the status is
// Cancelled/Unavailable (then the job stays incomplete and may be rerun) or
// job.yaml itself cannot be read. `versions` goes into result.yaml as is.
Status run_data_job(const fs::path& dir, const std::map<std::string, std::string>& versions);

}  // namespace migvis::data
