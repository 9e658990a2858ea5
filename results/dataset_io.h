// In-memory form of a migvis neural dataset (schemas/dataset.md) and its HDF5
// reader, writer and validator. Used by the data commands (orchestrator) and by
// every worker stage. Plain data, no LibTorch.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "results/h5.h"

namespace migvis::data {

enum class FactorKind { kCategorical, kContinuous };

struct Factor {
  std::string name;                  // "category", "rxy", ...
  FactorKind kind = FactorKind::kContinuous;
  std::string role = "other";        // category | identity | pose | position | size | other
  std::vector<std::string> classes;  // categorical only
  std::string units;                 // continuous only
  std::vector<float> values;         // [N]; categorical values are class indices
};

struct Session {
  std::string animal;
  std::string name;
  h5::Array<float> counts;           // [P, M]
  std::vector<int32_t> image_index;  // [P]
  std::vector<std::string> neuron_ids;  // [M]
  std::string value_kind = "counts"; // counts | rates
  double t_start_ms = 70.0;
  double t_stop_ms = 170.0;
  std::string region = "IT";

  size_t num_presentations() const { return image_index.size(); }
  size_t num_neurons() const { return neuron_ids.size(); }
};

struct Truth {
  h5::Array<float> latents;                 // [N, D_true]
  std::vector<std::string> group_names;     // [G_true]
  std::vector<std::string> group_factor;    // [G_true]
  std::vector<int32_t> group_of_dim;        // [D_true]
  struct AnimalTruth {
    std::vector<std::string> neuron_ids;    // [M_animal]
    h5::Array<float> loadings;              // [M_animal, D_true]
  };
  std::map<std::string, AnimalTruth> animals;
};

struct Dataset {
  std::string source;
  std::string description;
  h5::Array<float> images;                 // [N, C, H, W] in [0, 1]
  std::vector<std::string> stimulus_ids;   // [N]
  std::vector<Factor> factors;             // sorted by name on read
  std::vector<Session> sessions;           // sorted by (animal, session) on read
  std::optional<Truth> truth;

  size_t num_images() const { return stimulus_ids.size(); }
  std::vector<std::string> animals() const;  // sorted, unique
  const Factor* factor(const std::string& name) const;
  const Session* session(const std::string& animal, const std::string& name) const;
};

struct ReadOptions {
  bool images = true;     // false: skip the (large) image array
  bool sessions = true;   // false: skip responses
};

// Writes `d` atomically to `path` (temp + rename). Validates first; nothing is
// written if validation fails.
Status write_dataset(const Dataset& d, const fs::path& path);

// Reads and validates a dataset file. Errors name the file, HDF5 path and what
// was expected vs found: InvalidArgument for layout errors, NotFound for a
// missing file, DataLoss for a file that is not HDF5.
Result<Dataset> read_dataset(const fs::path& path, const ReadOptions& opts = {});

// Checks the in-memory dataset against schemas/dataset.md. `where` prefixes the
// messages (usually the file name).
Status validate_dataset(const Dataset& d, const std::string& where);

// Trial-averages one session: returns [N_seen, M] mean responses and the image
// indices (sorted, unique) they belong to.
struct AveragedSession {
  std::vector<int32_t> image_index;  // [N_seen]
  h5::Array<float> mean;             // [N_seen, M]
  std::vector<int32_t> repeats;      // [N_seen]
};
AveragedSession average_repeats(const Session& s);

}  // namespace migvis::data
