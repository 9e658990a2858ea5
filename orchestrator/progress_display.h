// What a person sees while `migvis sweep run|resume` works.
//
// On a terminal (a TTY whose TERM is not "dumb"): finished/failed jobs scroll
// by as one line each, and below them a live block is redrawn about once a
// second in place (cursor up + clear line, one write per frame: no flicker):
//   quickstart  done 13/20  cached 0  failed 0  elapsed 4m10s  ETA 6m30s
//     diffusion a1/s1      train  [#########-----------]  2100/5000  8.1 it/s  ETA 5m58s
// Every line fits the terminal width; colour only without NO_COLOR.
// Elsewhere (logs, CI, SLURM): one line per state change, plus one progress
// line per running job every `progress_every_s` seconds.
//
// Not thread-safe; driven from the scheduler's thread. Times come in as
// arguments (tests pass a fake clock's).
#pragma once

#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace migvis::orch {

struct RunningJobView {
  std::string id;          // job id (identifies the job across frames)
  std::string stage;
  std::string key;         // "a1/s1/migvis": the job's key values
  std::string phase;       // from progress.yaml; empty before the first write
  int64_t step = 0, total_steps = 0;
  double elapsed_s = 0;    // since the job started
  double rate_per_s = -1;  // steps per second; <0 unknown
  double eta_s = -1;       // the job's own remaining seconds; <0 unknown
};

struct HeaderView {
  std::string sweep;
  size_t done = 0, cached = 0, failed = 0, blocked = 0, total = 0;
  double elapsed_s = 0;
  std::optional<double> eta_s;  // nullopt: unknown
};

// "42s", "3m07s", "2h05m"; "unknown" for a negative value.
std::string format_duration(double s);

// The live block's lines, each at most `width` - 1 visible columns (the last
// column is left free: some terminals wrap when it is written). `color` adds
// ANSI colours to the bar only (they take no columns).
std::vector<std::string> render_live_block(const HeaderView& h, const std::vector<RunningJobView>& jobs, int width,
                                           bool color);

// The non-TTY progress line of one running job.
std::string render_progress_line(const RunningJobView& j);

// Rate and ETA of a job from two progress samples: steps since (t0, step0).
// Updates `j.rate_per_s` / `j.eta_s` (left <0 when the samples do not tell).
void fill_rate(RunningJobView& j, double t0_s, int64_t step0, double now_s);

// `sweep status --watch`: calls `draw` every `interval_s` seconds until it fails
// or the process is interrupted; on a terminal the screen is cleared first.
Status watch(double interval_s, std::FILE* out, const std::function<Status()>& draw);

class ProgressDisplay {
 public:
  struct Options {
    bool live = false;             // TTY with cursor control: the live block
    bool color = false;
    double refresh_s = 1.0;        // live block redraw interval
    double progress_every_s = 30;  // non-live: a progress line per running job this often
    int width = 80;                // terminal columns (refreshed by the caller if it changes)
    std::FILE* out = stdout;
  };
  // Live mode when `out` is a TTY and TERM is not dumb; colour unless NO_COLOR is set or TERM is dumb.
  static Options detect(std::FILE* out);
  // Columns of the terminal behind `out`, else $COLUMNS, else 80.
  static int terminal_width(std::FILE* out);

  explicit ProgressDisplay(Options o) : o_(o) {}

  // A state change: one permanent line (scrolls above the live block).
  void event(const std::string& line, double now_s);
  // Called often; redraws (after an event, or when refresh_s passed) or prints
  // progress lines (each job's every progress_every_s, counted from its start).
  void tick(const HeaderView& h, const std::vector<RunningJobView>& jobs, double now_s);
  bool dirty() const { return dirty_; }
  // Leaves the last frame's header on screen and moves below it.
  void finish(const HeaderView& h);

  void set_width(int w) { o_.width = w; }
  const Options& options() const { return o_; }

 private:
  void draw(const HeaderView& h, const std::vector<RunningJobView>& jobs);
  void erase_block(std::string& buf);

  Options o_;
  bool dirty_ = false;      // an event erased the block: redraw at the next tick
  size_t drawn_lines_ = 0;  // lines of the live block currently on screen
  double last_draw_s_ = -1e300;
  std::map<std::string, double> next_progress_s_;  // non-live: job id -> when its next line is due
};

}  // namespace migvis::orch
