#include "orchestrator/progress_display.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace migvis::orch {
namespace {

std::string fit(std::string s, int width) {
  size_t max = static_cast<size_t>(std::max(1, width - 1));
  if (s.size() > max) s.resize(max);
  return s;
}

std::string format_rate(double r) {
  if (r <= 0) return "";
  if (r >= 1) return fmt::format("{:.1f} it/s", r);
  return fmt::format("{:.1f} s/it", 1 / r);
}

}  // namespace

std::string format_duration(double s) {
  if (s < 0) return "unknown";
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

void fill_rate(RunningJobView& j, double t0_s, int64_t step0, double now_s) {
  double dt = now_s - t0_s;
  int64_t ds = j.step - step0;
  if (dt <= 0 || ds <= 0) return;
  j.rate_per_s = static_cast<double>(ds) / dt;
  if (j.total_steps > 0) j.eta_s = static_cast<double>(std::max<int64_t>(0, j.total_steps - j.step)) / j.rate_per_s;
}

std::vector<std::string> render_live_block(const HeaderView& h, const std::vector<RunningJobView>& jobs, int width,
                                           bool color) {
  std::vector<std::string> out;
  std::string head = fmt::format("{}  done {}/{}  cached {}  failed {}", h.sweep, h.done + h.cached, h.total, h.cached,
                                 h.failed);
  if (h.blocked) head += fmt::format("  blocked {}", h.blocked);
  head += fmt::format("  running {}  elapsed {}  ETA {}", jobs.size(), format_duration(h.elapsed_s),
                      h.eta_s ? format_duration(*h.eta_s) : "unknown");
  out.push_back(fit(head, width));
  for (auto& j : jobs) {
    std::string left = fmt::format("  {:<9} {:<14} {:<8}", j.stage, j.key, j.phase.empty() ? "starting" : j.phase);
    if (j.total_steps <= 0) {
      out.push_back(fit(left + fmt::format(" elapsed {}", format_duration(j.elapsed_s)), width));
      continue;
    }
    std::string right = fmt::format(" {}/{}", j.step, j.total_steps);
    std::string rate = format_rate(j.rate_per_s);
    if (!rate.empty()) right += "  " + rate;
    right += "  ETA " + format_duration(j.eta_s);
    // The bar takes what is left, between 10 and 30 columns; without room it goes.
    int room = width - 1 - static_cast<int>(left.size() + right.size()) - 3;
    int bar_w = std::min(30, room);
    std::string bar;
    if (bar_w >= 10) {
      double f = std::clamp(static_cast<double>(j.step) / static_cast<double>(j.total_steps), 0.0, 1.0);
      int filled = static_cast<int>(f * bar_w + 0.5);
      std::string a(static_cast<size_t>(filled), '#'), b(static_cast<size_t>(bar_w - filled), '-');
      bar = color ? fmt::format(" [\033[32m{}\033[2m{}\033[0m]", a, b) : fmt::format(" [{}{}]", a, b);
      out.push_back(left + bar + right);  // fits by construction
    } else {
      out.push_back(fit(left + right, width));
    }
  }
  return out;
}

std::string render_progress_line(const RunningJobView& j) {
  std::string s = fmt::format("progress  {} {} {}", j.stage, j.id, j.key);
  if (!j.phase.empty()) s += " " + j.phase;
  if (j.total_steps > 0)
    s += fmt::format(" step {}/{} ({:.0f}%)", j.step, j.total_steps,
                     100.0 * static_cast<double>(j.step) / static_cast<double>(j.total_steps));
  std::string rate = format_rate(j.rate_per_s);
  if (!rate.empty()) s += ", " + rate;
  s += fmt::format(", elapsed {}, ETA {}", format_duration(j.elapsed_s), format_duration(j.eta_s));
  return s;
}

Status watch(double interval_s, std::FILE* out, const std::function<Status()>& draw) {
  const bool tty = ::isatty(fileno(out));
  while (true) {
    if (tty) {
      std::fputs("\033[H\033[2J", out);  // home + clear: one frame per refresh
      std::fflush(out);
    }
    MIGVIS_RETURN_IF_ERROR(draw());
    std::fflush(out);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.2, interval_s)));
  }
}

ProgressDisplay::Options ProgressDisplay::detect(std::FILE* out) {
  Options o;
  o.out = out;
  const char* term = std::getenv("TERM");
  bool dumb = term && std::strcmp(term, "dumb") == 0;
  o.live = ::isatty(fileno(out)) && !dumb;
  const char* no_color = std::getenv("NO_COLOR");
  o.color = o.live && !(no_color && *no_color);
  o.width = terminal_width(out);
  return o;
}

int ProgressDisplay::terminal_width(std::FILE* out) {
  struct winsize ws {};
  if (::ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    int w = std::atoi(c);
    if (w > 0) return w;
  }
  return 80;
}

void ProgressDisplay::erase_block(std::string& buf) {
  // The cursor sits at the start of the line below the block.
  if (drawn_lines_ > 0) buf += fmt::format("\033[{}A", drawn_lines_);
  buf += "\r\033[J";
  drawn_lines_ = 0;
}

void ProgressDisplay::draw(const HeaderView& h, const std::vector<RunningJobView>& jobs) {
  std::string buf;
  // Redraw in place: up to the block's first line, overwrite each line and
  // clear its rest, then clear anything below (the block may have shrunk).
  if (drawn_lines_ > 0) buf += fmt::format("\033[{}A", drawn_lines_);
  auto lines = render_live_block(h, jobs, o_.width, o_.color);
  for (auto& l : lines) buf += "\r" + l + "\033[K\n";
  buf += "\033[J";
  drawn_lines_ = lines.size();
  std::fwrite(buf.data(), 1, buf.size(), o_.out);
  std::fflush(o_.out);
}

void ProgressDisplay::event(const std::string& line, double now_s) {
  if (!o_.live) {
    fmt::print(o_.out, "{}\n", line);
    std::fflush(o_.out);
    return;
  }
  std::string buf;
  erase_block(buf);
  buf += fit(line, o_.width) + "\n";
  std::fwrite(buf.data(), 1, buf.size(), o_.out);
  std::fflush(o_.out);
  dirty_ = true;  // the next tick redraws the block with fresh state
}

void ProgressDisplay::tick(const HeaderView& h, const std::vector<RunningJobView>& jobs, double now_s) {
  if (o_.live) {
    if (dirty_ || now_s - last_draw_s_ >= o_.refresh_s) {
      last_draw_s_ = now_s;
      dirty_ = false;
      draw(h, jobs);
    }
    return;
  }
  std::map<std::string, double> next;
  for (auto& j : jobs) {
    auto it = next_progress_s_.find(j.id);
    // First seen: its first line is due progress_every_s after it started.
    double due = it != next_progress_s_.end() ? it->second : now_s - j.elapsed_s + o_.progress_every_s;
    if (now_s >= due) {
      fmt::print(o_.out, "{}\n", render_progress_line(j));
      std::fflush(o_.out);
      while (due <= now_s) due += o_.progress_every_s;
    }
    next[j.id] = due;
  }
  next_progress_s_ = std::move(next);  // finished jobs drop out
}

void ProgressDisplay::finish(const HeaderView& h) {
  if (!o_.live) return;
  std::string buf;
  erase_block(buf);
  buf += fit(render_live_block(h, {}, o_.width, false).front(), o_.width) + "\n";
  std::fwrite(buf.data(), 1, buf.size(), o_.out);
  std::fflush(o_.out);
}

}  // namespace migvis::orch
