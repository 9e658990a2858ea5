// bench_synth: wall time of the synthetic generator (and of writing its
// dataset file) per preset. Prints a table and writes JSON. Reports the best
// wall time and the process CPU time of that repetition: on a shared machine
// the CPU time is the steadier figure (both single-threaded).
//   bench_synth [--presets tiny,default,paper] [--reps N] [--json FILE] [--no-write]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "migvis_build_info.h"
#include "orchestrator/data/synth.h"

namespace {
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace migvis;
  CLI::App app{"bench_synth: time `migvis data synth` per preset"};
  std::string presets = "tiny,default,paper", json_path = "bench_synth.json", tmp_dir = fs::temp_directory_path().string();
  int reps = 3;
  bool no_write = false;
  app.add_option("--presets", presets, "comma-separated presets");
  app.add_option("--reps", reps, "repetitions for presets other than paper (paper runs once)");
  app.add_option("--json", json_path, "JSON output file");
  app.add_option("--tmp", tmp_dir, "where the dataset files are written (and removed)");
  app.add_flag("--no-write", no_write, "time generation only");
  CLI11_PARSE(app, argc, argv);

  nlohmann::json out;
  out["bench"] = "synth";
  out["git"] = MIGVIS_GIT_COMMIT;
  out["results"] = nlohmann::json::array();
  fmt::print("{:<8} {:>7} {:>5} {:>8} {:>13} {:>8} {:>10} {:>8} {:>10} {:>8}\n", "preset", "images", "px", "neurons",
             "presentations", "synth_s", "synth_cpu", "write_s", "write_cpu", "file_MB");
  std::stringstream ss(presets);
  std::string preset;
  while (std::getline(ss, preset, ',')) {
    data::SynthOptions o;
    o.preset = preset;
    o.seed = 1;
    const int n = preset == "paper" ? 1 : reps;
    double best_synth = 1e30, best_write = 1e30, mb = 0, synth_cpu = 0, write_cpu = 0;
    size_t images = 0, neurons = 0, pres = 0, px = 0;
    for (int r = 0; r < n; ++r) {
      double c0 = cpu_s();
      auto t0 = std::chrono::steady_clock::now();
      auto d = data::synthesize(o);
      auto t1 = std::chrono::steady_clock::now();
      double c1 = cpu_s();
      if (!d.ok()) {
        fmt::print(stderr, "bench_synth: {}\n", d.status().to_string());
        return 1;
      }
      double wall = std::chrono::duration<double>(t1 - t0).count();
      if (wall < best_synth) { best_synth = wall; synth_cpu = c1 - c0; }
      images = d->num_images();
      px = d->images.dim(3);
      neurons = pres = 0;
      for (auto& s : d->sessions) {
        neurons += s.num_neurons();
        pres += s.num_presentations();
      }
      if (!no_write) {
        fs::path file = fs::path(tmp_dir) / fmt::format("bench_synth_{}.h5", preset);
        double c2 = cpu_s();
        auto w0 = std::chrono::steady_clock::now();
        Status st = data::write_dataset(*d, file);
        auto w1 = std::chrono::steady_clock::now();
        double c3 = cpu_s();
        if (!st.ok()) {
          fmt::print(stderr, "bench_synth: {}\n", st.to_string());
          return 1;
        }
        double wwall = std::chrono::duration<double>(w1 - w0).count();
        if (wwall < best_write) { best_write = wwall; write_cpu = c3 - c2; }
        mb = static_cast<double>(fs::file_size(file)) / 1e6;
        fs::remove(file);
      }
    }
    if (no_write) best_write = 0;
    fmt::print("{:<8} {:>7} {:>5} {:>8} {:>13} {:>8.3f} {:>10.3f} {:>8.3f} {:>10.3f} {:>8.1f}\n", preset, images, px,
               neurons, pres, best_synth, synth_cpu, best_write, write_cpu, mb);
    out["results"].push_back({{"preset", preset}, {"images", images}, {"image_size_px", px},
                              {"neuron_recordings", neurons}, {"presentations", pres}, {"reps", n},
                              {"synth_s_best", best_synth}, {"synth_cpu_s", synth_cpu}, {"write_s_best", best_write},
                              {"write_cpu_s", write_cpu}, {"file_mb", mb}});
  }
  std::FILE* f = std::fopen(json_path.c_str(), "w");
  if (!f) {
    fmt::print(stderr, "bench_synth: cannot write {}\n", json_path);
    return 1;
  }
  std::fputs(out.dump(2).c_str(), f);
  std::fputs("\n", f);
  std::fclose(f);
  fmt::print("wrote {}\n", json_path);
  return 0;
}
