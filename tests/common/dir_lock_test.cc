// DirLock: exclusion between threads and processes, stale-lock breaking,
// release on destruction, timeouts (unit).
#include "common/dir_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <atomic>
#include <sstream>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace migvis {
namespace {

std::string host() {
  char b[256] = {0};
  gethostname(b, sizeof b - 1);
  return b;
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void plant_owner(const fs::path& lock, const std::string& h, int64_t pid, int64_t acquired) {
  ASSERT_TRUE(make_dirs(lock).ok());
  ASSERT_TRUE(write_file_atomic(lock / "owner", fmt::format(R"({{"host":"{}","pid":{},"token":"feedfeedfeedfeed","acquired_unix":{}}})",
                                                            h, pid, acquired))
                  .ok());
}

int64_t dead_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  int st = 0;
  waitpid(p, &st, 0);
  return p;
}

TEST(DirLockTest, AcquireWritesOwnerAndReleaseOnDestructionRemovesIt) {
  testing::TempDir tmp;
  const fs::path lock = tmp / "sub" / ".ingest.lock.d";
  {
    auto l = DirLock::acquire(lock);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    auto o = DirLock::read_owner(lock);
    ASSERT_TRUE(o.ok()) << o.status().to_string();
    EXPECT_EQ(o->pid, getpid());
    EXPECT_EQ(o->host, host());
    EXPECT_EQ(o->token, (*l)->owner().token);
    EXPECT_EQ(o->token.size(), 16u);
  }
  EXPECT_FALSE(fs::exists(lock)) << "the destructor releases the lock";
  std::error_code ec;
  for (auto& e : fs::directory_iterator(tmp / "sub", ec)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(DirLockTest, TryAcquireWhileHeldNamesTheHolder) {
  testing::TempDir tmp;
  auto a = DirLock::acquire(tmp / "l.d");
  ASSERT_TRUE(a.ok());
  auto b = DirLock::try_acquire(tmp / "l.d");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("pid " + std::to_string(getpid())), std::string::npos) << b.status().message();
  ASSERT_TRUE((*a)->release().ok());
  EXPECT_TRUE(DirLock::try_acquire(tmp / "l.d").ok()) << "free again after release";
}

TEST(DirLockTest, WaitingGivesUpAfterTheTimeoutWithGrowingBackoff) {
  testing::TempDir tmp;
  auto a = DirLock::acquire(tmp / "l.d");
  ASSERT_TRUE(a.ok());
  std::vector<double> sleeps;
  DirLockOptions o;
  o.timeout_s = 1;
  o.initial_backoff_s = 0.01;
  o.max_backoff_s = 0.2;
  o.sleep_s = [&](double s) { sleeps.push_back(s); };
  auto b = DirLock::acquire(tmp / "l.d", o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(b.status().message().find("still held by"), std::string::npos) << b.status().message();
  double total = 0;
  for (double s : sleeps) total += s;
  EXPECT_NEAR(total, 1.0, 1e-9);
  ASSERT_GE(sleeps.size(), 4u);
  EXPECT_GT(sleeps[3], sleeps[0]) << "backoff grows";
  for (double s : sleeps) EXPECT_LE(s, 0.2 * 1.5 + 1e-12);
}

TEST(DirLockTest, ThreadsNeverHoldItTogether) {
  testing::TempDir tmp;
  std::atomic<int> inside{0}, max_inside{0}, total{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      DirLockOptions o;
      o.initial_backoff_s = 0.001;
      o.max_backoff_s = 0.01;
      o.timeout_s = 60;
      for (int i = 0; i < 25; ++i) {
        auto l = DirLock::acquire(tmp / "l.d", o);
        if (!l.ok()) {
          failed = true;
          return;
        }
        int now = ++inside;
        int m = max_inside.load();
        while (now > m && !max_inside.compare_exchange_weak(m, now)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        --inside;
        ++total;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_FALSE(failed);
  EXPECT_EQ(total, 100);
  EXPECT_EQ(max_inside, 1);
}

// Two processes append "+pid" on entry and "-pid" on exit: with the lock the
// log strictly alternates enter/leave of the same process.
TEST(DirLockTest, ProcessesNeverHoldItTogether) {
  testing::TempDir tmp;
  const fs::path log = tmp / "log";
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t p = fork();
    ASSERT_GE(p, 0);
    if (p == 0) {
      DirLockOptions o;
      o.initial_backoff_s = 0.001;
      o.max_backoff_s = 0.01;
      o.timeout_s = 60;
      int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
      for (int i = 0; i < 30; ++i) {
        auto l = DirLock::acquire(tmp / "l.d", o);
        if (!l.ok()) _exit(2);
        std::string in = "+" + std::to_string(getpid()) + "\n", out = "-" + std::to_string(getpid()) + "\n";
        if (::write(fd, in.data(), in.size()) < 0) _exit(3);
        usleep(300);
        if (::write(fd, out.data(), out.size()) < 0) _exit(3);
        if (!(*l)->release().ok()) _exit(4);
      }
      _exit(0);
    }
    kids.push_back(p);
  }
  for (pid_t p : kids) {
    int st = 0;
    waitpid(p, &st, 0);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
  }
  auto text = read_file(log);
  ASSERT_TRUE(text.ok());
  std::istringstream in(*text);
  std::string a, b;
  int pairs = 0;
  while (std::getline(in, a)) {
    ASSERT_TRUE(std::getline(in, b)) << "unmatched " << a;
    ASSERT_EQ(a[0], '+') << *text;
    ASSERT_EQ(b, "-" + a.substr(1)) << "two holders at once:\n" << *text;
    ++pairs;
  }
  EXPECT_EQ(pairs, 60);
}

TEST(DirLockTest, LockOfADeadProcessOnThisHostIsBroken) {
  testing::TempDir tmp;
  plant_owner(tmp / "l.d", host(), dead_pid(), now_unix());
  auto l = DirLock::try_acquire(tmp / "l.d");
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_NE((*l)->owner().token, "feedfeedfeedfeed");
  EXPECT_EQ(DirLock::read_owner(tmp / "l.d")->token, (*l)->owner().token);
  EXPECT_FALSE(fs::exists(tmp / "l.d.break")) << "the breaker's own lock is gone";
}

// The holder is killed with SIGKILL (no destructor runs): the next acquirer
// breaks its lock instead of waiting out the timeout.
TEST(DirLockTest, LockOfAKilledHolderIsTakenOver) {
  testing::TempDir tmp;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t p = fork();
  ASSERT_GE(p, 0);
  if (p == 0) {
    auto l = DirLock::acquire(tmp / "l.d");
    if (!l.ok()) _exit(2);
    if (::write(ready[1], "x", 1) != 1) _exit(3);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  DirLockOptions o;
  o.timeout_s = 0.2;
  EXPECT_EQ(DirLock::acquire(tmp / "l.d", o).status().code(), StatusCode::kUnavailable) << "held by a live process";
  ASSERT_EQ(kill(p, SIGKILL), 0);
  int st = 0;
  waitpid(p, &st, 0);
  o.timeout_s = 5;
  auto l = DirLock::acquire(tmp / "l.d", o);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ(DirLock::read_owner(tmp / "l.d")->pid, getpid());
  close(ready[0]);
  close(ready[1]);
}

TEST(DirLockTest, LiveProcessOnThisHostIsNeverBrokenWhateverItsAge) {
  testing::TempDir tmp;
  plant_owner(tmp / "l.d", host(), getppid(), now_unix() - 100000);
  DirLockOptions o;
  o.stale_after_s = 10;
  EXPECT_EQ(DirLock::try_acquire(tmp / "l.d", o).status().code(), StatusCode::kFailedPrecondition);
}

TEST(DirLockTest, OtherHostsLockIsBrokenOnlyWhenOlderThanTheLimit) {
  testing::TempDir tmp;
  DirLockOptions o;
  o.stale_after_s = 600;
  plant_owner(tmp / "l.d", "some-other-node", 1, now_unix() - 60);
  EXPECT_EQ(DirLock::try_acquire(tmp / "l.d", o).status().code(), StatusCode::kFailedPrecondition)
      << "a young lock of another host stands";
  plant_owner(tmp / "l.d", "some-other-node", 1, now_unix() - 3600);
  auto l = DirLock::try_acquire(tmp / "l.d", o);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ((*l)->owner().host, host());
}

TEST(DirLockTest, OwnerlessLockDirIsBrokenAfterTheOrphanAge) {
  testing::TempDir tmp;
  ASSERT_TRUE(make_dirs(tmp / "l.d").ok());
  DirLockOptions o;
  o.orphan_after_s = 30;
  EXPECT_EQ(DirLock::try_acquire(tmp / "l.d", o).status().code(), StatusCode::kFailedPrecondition)
      << "its creator may still be writing the owner file";
  utimbuf old{static_cast<time_t>(now_unix() - 120), static_cast<time_t>(now_unix() - 120)};
  ASSERT_EQ(utime((tmp / "l.d").c_str(), &old), 0);
  EXPECT_TRUE(DirLock::try_acquire(tmp / "l.d", o).ok());
}

// Many breakers race on one stale lock: exactly one ends up holding it.
TEST(DirLockTest, RacingBreakersProduceExactlyOneHolder) {
  for (int round = 0; round < 5; ++round) {
    testing::TempDir tmp;
    plant_owner(tmp / "l.d", host(), dead_pid(), now_unix());
    std::atomic<int> won{0}, ready{0};
    std::vector<std::unique_ptr<DirLock>> held(6);
    std::vector<std::thread> ts;
    for (int t = 0; t < 6; ++t)
      ts.emplace_back([&, t] {
        ++ready;
        while (ready < 6) {
        }
        auto l = DirLock::try_acquire(tmp / "l.d");
        if (l.ok()) {
          ++won;
          held[t] = std::move(*l);
        }
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(won, 1) << "round " << round;
  }
}

TEST(DirLockTest, ReleaseOfABrokenLockLeavesTheNewHolderAlone) {
  testing::TempDir tmp;
  auto a = DirLock::acquire(tmp / "l.d");
  ASSERT_TRUE(a.ok());
  fs::remove_all(tmp / "l.d");  // as a breaker would, judging it stale
  auto b = DirLock::acquire(tmp / "l.d");
  ASSERT_TRUE(b.ok());
  Status st = (*a)->release();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.to_string();
  auto o = DirLock::read_owner(tmp / "l.d");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->token, (*b)->owner().token);
}

}  // namespace

// A fake wall clock shared by both sides of the heartbeat tests.
struct FakeUnixClock {
  std::shared_ptr<std::atomic<int64_t>> t = std::make_shared<std::atomic<int64_t>>(1'800'000'000);
  std::function<int64_t()> fn() const {
    auto p = t;
    return [p] { return p->load(); };
  }
  void advance(int64_t s) { *t += s; }
};

TEST(DirLockTest, StalenessIsJudgedByHeartbeatAgeNotAcquisitionAge) {
  testing::TempDir tmp;
  const fs::path lock = tmp / ".ingest.lock.d";
  FakeUnixClock clock;
  DirLockOptions holder_opts;
  holder_opts.host = "login-a";   // another host as far as the contender can tell
  holder_opts.heartbeat_every_s = 0;  // heartbeats driven by the test
  holder_opts.now_unix = clock.fn();
  auto held = DirLock::try_acquire(lock, holder_opts);
  ASSERT_TRUE(held.ok()) << held.status().to_string();

  DirLockOptions contender;
  contender.host = "login-b";
  contender.stale_after_s = 300;
  contender.now_unix = clock.fn();
  // Six hours on, beating all along: never stale, however old the acquisition.
  for (int i = 0; i < 6 * 15; ++i) {  // a beat every 240 s, under the 300 s limit
    clock.advance(240);
    ASSERT_TRUE((*held)->heartbeat().ok());
  }
  auto o = DirLock::read_owner(lock);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->heartbeat_unix - o->acquired_unix, 6 * 3600);
  auto blocked = DirLock::try_acquire(lock, contender);
  EXPECT_EQ(blocked.status().code(), StatusCode::kFailedPrecondition) << "a beating holder is alive";
  EXPECT_NE(blocked.status().message().find("last heartbeat"), std::string::npos) << blocked.status().message();

  // It stops beating (its process hung or died): stale only after stale_after_s.
  clock.advance(290);
  EXPECT_FALSE(DirLock::try_acquire(lock, contender).ok()) << "290 s without a beat is not yet stale";
  clock.advance(20);
  auto taken = DirLock::try_acquire(lock, contender);
  ASSERT_TRUE(taken.ok()) << taken.status().to_string();
  // The old holder notices at its next beat and stops.
  Status beat = (*held)->heartbeat();
  EXPECT_EQ(beat.code(), StatusCode::kFailedPrecondition) << beat.to_string();
  EXPECT_NE(beat.message().find("broken"), std::string::npos);
}

TEST(DirLockTest, HeartbeatThreadKeepsALockAliveAcrossProcesses) {
  // Two processes, real time but short intervals: the child holds the lock as
  // "another host" with a 250 ms heartbeat; the parent, whose stale limit is
  // 2 s (heartbeats are whole Unix seconds), must not break it during 3 s of
  // polling, and takes it soon after the child is killed without releasing.
  testing::TempDir tmp;
  const fs::path lock = tmp / ".ingest.lock.d";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  if (child == 0) {
    close(pipefd[0]);
    DirLockOptions o;
    o.host = "compute-07";
    o.heartbeat_every_s = 0.25;
    auto l = DirLock::acquire(lock, o);
    char c = l.ok() ? 'y' : 'n';
    (void)!write(pipefd[1], &c, 1);
    for (;;) pause();  // killed by the parent, no release
  }
  close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(read(pipefd[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  DirLockOptions me;
  me.host = "login-b";
  me.stale_after_s = 2;
  me.heartbeat_every_s = 0;
  int refused = 0;
  for (int i = 0; i < 12; ++i) {  // 3 s, longer than the stale limit
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    if (!DirLock::try_acquire(lock, me).ok()) ++refused;
  }
  EXPECT_EQ(refused, 12) << "a lock whose holder beats is never broken";
  kill(child, SIGKILL);
  int st = 0;
  waitpid(child, &st, 0);
  me.timeout_s = 10;
  auto taken = DirLock::acquire(lock, me);
  ASSERT_TRUE(taken.ok()) << taken.status().to_string();
}

TEST(DirLockTest, OwnerFilesOfOlderVersionsCountFromAcquisition) {
  testing::TempDir tmp;
  const fs::path lock = tmp / ".ingest.lock.d";
  plant_owner(lock, "old-host", 1234, now_unix() - 1000);  // no heartbeat_unix field
  auto o = DirLock::read_owner(lock);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->heartbeat_unix, 0);
  DirLockOptions opts;
  opts.stale_after_s = 300;
  opts.heartbeat_every_s = 0;
  EXPECT_TRUE(DirLock::try_acquire(lock, opts).ok());
}

}  // namespace migvis
