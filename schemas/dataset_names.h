// On-disk names of the migvis dataset format (schemas/dataset.md). These are a
// format: add new names, never rename in place.
#pragma once

namespace migvis::schema::dataset {

inline constexpr const char* kFormat = "migvis-dataset";
inline constexpr int kFormatVersion = 1;

inline constexpr const char* kImages = "/stimuli/images";
inline constexpr const char* kStimulusIds = "/stimuli/ids";
inline constexpr const char* kFactors = "/stimuli/factors";
inline constexpr const char* kAnimals = "/animals";
inline constexpr const char* kSessions = "sessions";
inline constexpr const char* kCounts = "counts";
inline constexpr const char* kImageIndex = "image_index";
inline constexpr const char* kNeuronIds = "neuron_ids";
inline constexpr const char* kTruth = "/truth";

// Factor roles (attribute `role`).
inline constexpr const char* kRoleCategory = "category";
inline constexpr const char* kRoleIdentity = "identity";
inline constexpr const char* kRolePose = "pose";
inline constexpr const char* kRolePosition = "position";
inline constexpr const char* kRoleSize = "size";
inline constexpr const char* kRoleOther = "other";

}  // namespace migvis::schema::dataset
