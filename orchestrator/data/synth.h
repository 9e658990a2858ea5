// The seeded synthetic IT experiment: procedurally rendered object images and
// Poisson spike counts of two animals' neurons driven by PLANTED latent groups,
// with the planted structure stored under /truth (schemas/dataset.md).
//
// What is planted (docs: schemas/synth.md):
//   - stimuli: `categories` shape families (disc, box, triangle, star, cross,
//     crescent, lshape, bowtie) x `objects_per_category` variants each (bit 0 of
//     the variant index: elongated, bit 1: central hole, bit 2: stripes, higher
//     bits: family parameter + brightness), each shown in `poses_per_object`
//     random views: in-plane rotation rxy in [-180, 180) deg, out-of-plane ryz in
//     [-60, 60] deg (foreshortening + a shading gradient), position tx, ty in
//     [-0.15, 0.15] (fraction of image), size (diameter) in [0.35, 0.6] of the
//     image; textured noisy background; 4x4 (2x2 above 64 px) supersampling.
//   - latents: 4 groups, 14 dims: pose (sqrt2 cos rxy, sqrt2 sin rxy, ryz scaled
//     to unit variance), category (4-d embedding per category), identity (4-d
//     embedding per object), position (tx, ty, size standardised).
//   - neurons: each loads mostly on one group (primary), 40% also weakly on a
//     second; expected count = base * exp(l . z - |l|^2 / 2); Poisson counts,
//     `repeats` presentations per image in a shuffled order per session.
//   - animals `a1`, `a2`, ... each with its own population; sessions `s1`, `s2`,
//     ... record different numbers of neurons (distinct, within the range),
//     sampled from the animal's population (sessions overlap).
// Determinism: the output depends only on the options (seed included), not on
// the standard library's distributions (own uniform / Box-Muller / Poisson on
// std::mt19937_64) and not on the thread count (single threaded).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "results/dataset_io.h"

namespace migvis::data {

// Zero (or negative) in an override means "use the preset's value".
struct SynthOptions {
  std::string preset = "default";  // tiny | default | paper
  uint64_t seed = 0;
  int image_size_px = 0;
  int categories = 0;             // 2..8
  int objects_per_category = 0;   // 1..16
  int poses_per_object = 0;
  int animals = 0;                // 1..9
  int sessions_per_animal = 0;
  int min_neurons = 0;            // per session
  int max_neurons = 0;
  int repeats = 0;                // presentations of each image per session
  // Shape families by name (shape_family_names(); empty: the first `categories`
  // of the classic eight). Sets `categories` to its length.
  std::vector<std::string> families;
  // Image statistics (defaults: the presets'). Background grey level drawn per
  // image from U[background_min, background_max]; background_texture scales the
  // two octaves of value noise (1 = sd-ish 0.12 + 0.06); pixel_noise is the sd
  // of the per-pixel Gaussian noise. Negative: the default.
  double background_min = -1, background_max = -1, background_texture = -1, pixel_noise = -1;
};

// The options with the preset applied and every override resolved.
// InvalidArgument naming the option for an unknown preset or an out-of-range value.
Result<SynthOptions> resolve_synth_options(const SynthOptions& o);

// Generates the dataset. Same options -> identical arrays. Errors as
// resolve_synth_options.
Result<Dataset> synthesize(const SynthOptions& o);

// Names of every shape family the generator can draw (12): the classic eight
// the presets use (disc .. bowtie, in category-index order) and four more
// (ring, arrow, chevron, teardrop) that only an explicit `families` selects.
const std::vector<std::string>& shape_family_names();

}  // namespace migvis::data
