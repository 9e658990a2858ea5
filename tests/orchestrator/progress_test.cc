// The ETA estimator on recorded histories (times passed in, as from a fake
// clock) and the progress display's rendering and intervals, with the output
// captured in memory: no terminal, no sleeps.
#include <cstdio>
#include <cstdlib>
#include <regex>

#include <gtest/gtest.h>

#include "orchestrator/eta.h"
#include "orchestrator/progress_display.h"

namespace migvis::orch {
namespace {

EtaJob ej(const std::string& stage, std::vector<size_t> deps = {}, JobState st = JobState::kPending) {
  EtaJob j;
  j.stage = stage;
  j.deps = std::move(deps);
  j.state = st;
  return j;
}

StageHistory history(std::map<std::string, std::vector<double>> h) {
  StageHistory s;
  for (auto& [stage, v] : h)
    for (double w : v) s.add(stage, w);
  return s;
}

TEST(EtaTest, UnknownWithoutHistoryRatherThanAGuess) {
  std::vector<EtaJob> jobs = {ej("a"), ej("b", {0})};
  EXPECT_FALSE(estimate_remaining_s(jobs, StageHistory{}, 2, 2));
  // History for a only: b is still unknown.
  EXPECT_FALSE(estimate_remaining_s(jobs, history({{"a", {10}}}), 2, 2));
  // Nothing left: zero.
  std::vector<EtaJob> done = {ej("a", {}, JobState::kDone), ej("b", {0}, JobState::kCached)};
  EXPECT_EQ(estimate_remaining_s(done, StageHistory{}, 2, 2), 0.0);
}

TEST(EtaTest, MedianOfTheStagesRecordedTimes) {
  auto h = history({{"vae", {3, 4, 300}}, {"eval", {10, 20}}});
  EXPECT_EQ(h.typical_s("vae"), 4.0) << "one slow outlier does not move it";
  EXPECT_EQ(h.typical_s("eval"), 15.0);
  EXPECT_FALSE(h.typical_s("diffusion"));
}

TEST(EtaTest, AlongTheCriticalPathWithTheSchedulersParallelism) {
  // a0 -> b0, a1 -> b1; a takes 10 s, b 20 s.
  std::vector<EtaJob> jobs = {ej("a"), ej("b", {0}), ej("a"), ej("b", {2})};
  auto h = history({{"a", {10}}, {"b", {20}}});
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 2, 2), 30.0) << "two chains side by side";
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 1, 2), 60.0) << "one process at a time";
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 4, 1), 60.0) << "one core";
  for (auto& j : jobs) j.cost = 2;
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 4, 3), 60.0) << "2-thread jobs on 3 cores: one at a time";
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 4, 4), 30.0);
}

TEST(EtaTest, RunningJobsCountDownWithTheirProgressOnAFakeClock) {
  // a0 running (started at t = 0, 4 steps), then b0; a1 cached, b1 pending.
  auto h = history({{"a", {100}}, {"b", {20}}});
  std::vector<EtaJob> jobs = {ej("a", {}, JobState::kRunning), ej("b", {0}), ej("a", {}, JobState::kCached),
                              ej("b", {2})};
  // Before its first step the stage's history stands in: 100 - 5 elapsed + 20 for b0.
  jobs[0].elapsed_s = 5;
  jobs[0].total_steps = 4;
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, h, 2, 2), 95.0 + 20.0);
  // The clock advances; the job reports a step every 10 s (faster than history says).
  double previous = 1e9;
  for (int step = 1; step <= 4; ++step) {
    jobs[0].elapsed_s = 10.0 * step;
    jobs[0].step = step;
    double eta = *estimate_remaining_s(jobs, h, 2, 2);
    EXPECT_DOUBLE_EQ(eta, 10.0 * (4 - step) + 20.0) << "step " << step;
    EXPECT_LT(eta, previous);
    previous = eta;
  }
}

TEST(EtaTest, StageWithoutHistoryBorrowsItsRunningJobsProjection) {
  // b0 running: 10 s for 1 of 4 steps -> 40 s in all, 30 left; b1 pending: 40 s.
  std::vector<EtaJob> jobs = {ej("a", {}, JobState::kDone), ej("b", {0}, JobState::kRunning), ej("b", {0})};
  jobs[1].elapsed_s = 10;
  jobs[1].step = 1;
  jobs[1].total_steps = 4;
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, StageHistory{}, 2, 2), 40.0);
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, StageHistory{}, 1, 2), 70.0);
  EXPECT_DOUBLE_EQ(*remaining_from_progress(jobs[1]), 30.0);
  // A rate measured by the caller takes precedence over elapsed / fraction.
  jobs[1].remaining_s = 12;
  EXPECT_DOUBLE_EQ(*remaining_from_progress(jobs[1]), 12.0);
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, StageHistory{}, 2, 2), 22.0) << "b1 borrows 10 + 12";
}

TEST(EtaTest, FailedJobsDependentsAreNotWaitedFor) {
  std::vector<EtaJob> jobs = {ej("a", {}, JobState::kFailed), ej("b", {0}, JobState::kBlocked), ej("a")};
  EXPECT_DOUBLE_EQ(*estimate_remaining_s(jobs, history({{"a", {7}}}), 2, 2), 7.0);
}

// ------------------------------------------------------------------ display

std::string strip_ansi(const std::string& s) { return std::regex_replace(s, std::regex("\033\\[[0-9;]*[A-Za-z]"), ""); }

RunningJobView view(const std::string& id, int64_t step, int64_t total, double elapsed) {
  RunningJobView v;
  v.id = id;
  v.stage = "diffusion";
  v.key = "a1/s1";
  v.phase = "train";
  v.step = step;
  v.total_steps = total;
  v.elapsed_s = elapsed;
  return v;
}

TEST(ProgressDisplayTest, LiveBlockFitsTheWidthAndShowsEachJobsStep) {
  HeaderView h;
  h.sweep = "quickstart";
  h.done = 13;
  h.total = 20;
  h.elapsed_s = 250;
  h.eta_s = 390;
  auto j = view("d1", 2100, 5000, 260);
  fill_rate(j, 0, 0, 260);
  std::vector<RunningJobView> jobs = {j, view("s1", 0, 0, 3)};
  for (int width : {30, 60, 80, 132, 300}) {
    for (bool color : {false, true}) {
      auto lines = render_live_block(h, jobs, width, color);
      ASSERT_EQ(lines.size(), 3u);
      for (auto& l : lines) EXPECT_LE(strip_ansi(l).size(), static_cast<size_t>(width - 1)) << width << ": " << l;
      EXPECT_EQ(lines[0].find("\033"), std::string::npos);
      if (!color) {
        for (auto& l : lines) EXPECT_EQ(l.find("\033"), std::string::npos) << l;
      }
    }
  }
  auto lines = render_live_block(h, jobs, 132, false);
  EXPECT_NE(lines[0].find("done 13/20"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("ETA 6m30s"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("2100/5000"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("8.1 it/s"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("ETA 5m59s"), std::string::npos) << lines[1];  // 2900 steps at 2100/260 per s
  EXPECT_NE(lines[1].find("[##########"), std::string::npos) << "a 42% bar: " << lines[1];
  EXPECT_NE(lines[2].find("elapsed 3s"), std::string::npos) << "no progress yet: " << lines[2];
  h.eta_s.reset();
  EXPECT_NE(render_live_block(h, {}, 132, false)[0].find("ETA unknown"), std::string::npos);
}

struct Captured {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  std::string text() {
    std::fflush(f);
    return std::string(buf, len);
  }
  ~Captured() {
    std::fclose(f);
    std::free(buf);
  }
};

TEST(ProgressDisplayTest, NonTtyProgressLinesAtTheirInterval) {
  Captured out;
  ProgressDisplay::Options o;
  o.live = false;
  o.progress_every_s = 30;
  o.out = out.f;
  ProgressDisplay d(o);
  HeaderView h;
  // Job A starts at t = 0 and does a step per second; job B starts at t = 50.
  for (int t = 0; t <= 95; ++t) {
    std::vector<RunningJobView> jobs = {view("A", t, 1000, t)};
    if (t >= 50) jobs.push_back(view("B", t - 50, 100, t - 50));
    d.tick(h, jobs, t);
  }
  std::string s = out.text();
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("progress  diffusion A"), 3u) << s;  // t = 30, 60, 90
  EXPECT_NE(s.find("A a1/s1 train step 30/1000"), std::string::npos) << s;
  EXPECT_NE(s.find("A a1/s1 train step 60/1000"), std::string::npos) << s;
  EXPECT_NE(s.find("A a1/s1 train step 90/1000"), std::string::npos) << s;
  EXPECT_EQ(count("progress  diffusion B"), 1u) << s;  // t = 80
  EXPECT_NE(s.find("B a1/s1 train step 30/100"), std::string::npos) << s;
  EXPECT_EQ(s.find("\033"), std::string::npos) << "no escapes outside a terminal";
  // State changes are plain lines.
  d.event("[1/2] done      data tiny 1234 (0.1 s)", 96);
  EXPECT_NE(out.text().find("[1/2] done      data tiny 1234 (0.1 s)\n"), std::string::npos);
}

TEST(ProgressDisplayTest, LiveRedrawsInPlaceAboutOnceASecond) {
  Captured out;
  ProgressDisplay::Options o;
  o.live = true;
  o.refresh_s = 1.0;
  o.width = 100;
  o.out = out.f;
  ProgressDisplay d(o);
  HeaderView h;
  h.sweep = "s";
  d.tick(h, {view("A", 1, 10, 1)}, 0.0);
  d.tick(h, {view("A", 2, 10, 1.5)}, 0.5);  // too soon: no frame
  std::string first = out.text();
  EXPECT_NE(first.find(" 1/10"), std::string::npos) << first;
  EXPECT_EQ(first.find(" 2/10"), std::string::npos) << first;
  EXPECT_EQ(first.find("\033[2A"), std::string::npos) << "nothing to move over on the first frame";
  d.tick(h, {view("A", 3, 10, 2)}, 1.0);
  std::string second = out.text().substr(first.size());
  EXPECT_EQ(second.rfind("\033[2A", 0), 0u) << "cursor up over the 2-line block, then overwrite";
  EXPECT_NE(second.find(" 3/10"), std::string::npos) << second;
  EXPECT_NE(second.find("\033[K"), std::string::npos);
  // An event scrolls above the block; the next tick redraws at once.
  d.event("[1/3] done      vae a1/s1 x (1.0 s)", 1.1);
  d.tick(h, {view("A", 4, 10, 2.2)}, 1.2);
  std::string third = out.text().substr(first.size() + second.size());
  EXPECT_NE(third.find("[1/3] done"), std::string::npos) << third;
  EXPECT_NE(third.find(" 4/10"), std::string::npos) << third;
  EXPECT_LT(third.find("[1/3] done"), third.find(" 4/10"));
}

TEST(ProgressDisplayTest, DurationsRead) {
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(7500), "2h05m");
  EXPECT_EQ(format_duration(-1), "unknown");
}

}  // namespace
}  // namespace migvis::orch
