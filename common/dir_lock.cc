#include "common/dir_lock.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <ctime>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/strings.h"

namespace migvis {
namespace {

constexpr const char* kOwnerFile = "owner";
// A breaker holds `<lock>.break` for milliseconds; one older than this died.
constexpr double kBreakLockOrphanS = 30;


int64_t system_now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t now_unix(const DirLockOptions& opts) { return opts.now_unix ? opts.now_unix() : system_now_unix(); }

std::string me_of(const DirLockOptions& opts) { return opts.host.empty() ? host_name() : opts.host; }

nlohmann::json owner_json(const DirLock::Owner& o) {
  return {{"host", o.host},
          {"pid", o.pid},
          {"token", o.token},
          {"acquired_unix", o.acquired_unix},
          {"heartbeat_unix", o.heartbeat_unix}};
}

std::string random_token() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(getpid()) << 32) ^
                                          std::hash<std::thread::id>{}(std::this_thread::get_id()));
  return fmt::format("{:016x}", rng());
}

double jitter() {
  static thread_local std::mt19937 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.5, 1.5)(rng);
}

// Seconds since `p` was last modified; negative if it does not exist.
double age_s(const fs::path& p, int64_t now) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return static_cast<double>(now - st.st_mtime);
}

std::string iso_time(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// Why the lock at `dir` (owner `o`, or none) is stale; empty when it is live.
std::string stale_reason(const fs::path& dir, const Result<DirLock::Owner>& o, const DirLockOptions& opts,
                         const std::string& me) {
  if (o.ok()) {
    if (o->host == me) return pid_alive(o->pid) ? "" : fmt::format("its owner pid {} on this host is gone", o->pid);
    // Another host: its pid cannot be checked, its heartbeat can.
    const int64_t beat = o->heartbeat_unix > 0 ? o->heartbeat_unix : o->acquired_unix;
    double age = static_cast<double>(now_unix(opts) - beat);
    return age > opts.stale_after_s ? fmt::format("another host's owner has not heartbeat for {:.0f} s (stale after "
                                                  "{:.0f} s)",
                                                  age, opts.stale_after_s)
                                    : "";
  }
  double age = age_s(dir, system_now_unix());
  return age > opts.orphan_after_s ? fmt::format("no owner file for {:.0f} s", age) : "";
}

bool same_owner(const Result<DirLock::Owner>& a, const Result<DirLock::Owner>& b) {
  if (a.ok() != b.ok()) return false;
  return !a.ok() || a->token == b->token;
}

// Removes a stale lock: serialized by `<dir>.break`; re-checks under it that the
// lock is still the one judged stale, renames it to a unique name (atomic: only
// one rename of `dir` can succeed) and deletes that.
void break_stale(const fs::path& dir, const Result<DirLock::Owner>& seen, const DirLockOptions& opts,
                 const std::string& me, const std::string& my_token, const std::string& why) {
  fs::path brk = dir.string() + ".break";
  if (::mkdir(brk.c_str(), 0755) != 0) {
    if (errno == EEXIST && age_s(brk, system_now_unix()) > kBreakLockOrphanS) ::rmdir(brk.c_str());
    return;  // another breaker is at it; the caller retries
  }
  auto now = DirLock::read_owner(dir);
  if (fs::exists(dir) && same_owner(seen, now) && !stale_reason(dir, now, opts, me).empty()) {
    fs::path away = dir.string() + ".stale." + my_token;
    if (::rename(dir.c_str(), away.c_str()) == 0) {
      MIGVIS_LOG_WARN("{}: broke a stale lock ({}{})", dir.string(), why,
                      seen.ok() ? "; was " + describe(*seen) : std::string());
      std::error_code ec;
      fs::remove_all(away, ec);
    }
  }
  ::rmdir(brk.c_str());
}

// One try. Returns the lock, or nullptr with *holder set when it is held.
Result<std::unique_ptr<DirLock>> attempt(const fs::path& dir, const DirLockOptions& opts, const std::string& me,
                                         std::string* holder,
                                         const std::function<DirLock*(fs::path, DirLock::Owner)>& make) {
  for (int round = 0; round < 2; ++round) {  // a second mkdir right after breaking a stale lock
    const int64_t now = now_unix(opts);
    DirLock::Owner o{me, static_cast<int64_t>(getpid()), random_token(), now, now};
    if (::mkdir(dir.c_str(), 0755) == 0) {
      Status st = write_file_atomic(dir / kOwnerFile, owner_json(o).dump() + "\n");
      if (!st.ok()) {
        std::error_code ec;
        fs::remove_all(dir, ec);
        return st.with_context(dir.string() + ": cannot write the lock's owner file");
      }
      return std::unique_ptr<DirLock>(make(dir, std::move(o)));
    }
    if (errno != EEXIST) return status_from_errno(errno, "cannot create lock directory " + dir.string());
    auto cur = DirLock::read_owner(dir);
    std::string why = stale_reason(dir, cur, opts, me);
    if (why.empty()) {
      *holder = cur.ok() ? describe(*cur) : "an owner still writing its owner file";
      return std::unique_ptr<DirLock>();
    }
    break_stale(dir, cur, opts, me, o.token, why);
  }
  *holder = "a stale owner being broken by another process";
  return std::unique_ptr<DirLock>();
}

}  // namespace

std::string describe(const DirLock::Owner& o) {
  std::string s = fmt::format("{} pid {} since {}", o.host, o.pid, iso_time(o.acquired_unix));
  if (o.heartbeat_unix > 0) s += ", last heartbeat " + iso_time(o.heartbeat_unix);
  return s;
}

// The heartbeat thread: wakes every heartbeat_every_s (or when stopped) and
// refreshes the owner file.
struct DirLock::Beat {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};

DirLock::DirLock(fs::path dir, Owner o, DirLockOptions opts)
    : dir_(std::move(dir)), owner_(std::move(o)), opts_(std::move(opts)) {}

void DirLock::start_heartbeat() {
  if (opts_.heartbeat_every_s <= 0) return;
  beat_ = std::make_unique<Beat>();
  beat_->thread = std::thread([this] {
    std::unique_lock<std::mutex> lk(beat_->mu);
    const auto every = std::chrono::duration<double>(opts_.heartbeat_every_s);
    while (!beat_->cv.wait_for(lk, every, [this] { return beat_->stop; })) {
      lk.unlock();
      Status st = heartbeat();
      lk.lock();
      if (!st.ok()) {
        MIGVIS_LOG_WARN("{}", st.message());
        if (st.code() == StatusCode::kFailedPrecondition) return;  // no longer ours
      }
    }
  });
}

void DirLock::stop_heartbeat() {
  if (!beat_) return;
  {
    std::lock_guard<std::mutex> lk(beat_->mu);
    beat_->stop = true;
  }
  beat_->cv.notify_all();
  if (beat_->thread.joinable()) beat_->thread.join();
  beat_.reset();
}

Status DirLock::heartbeat() {
  if (!held_) return Status::FailedPrecondition(dir_.string() + ": heartbeat of a released lock");
  auto cur = read_owner(dir_);
  if (!cur.ok() || cur->token != owner_.token)
    return Status::FailedPrecondition(fmt::format("{}: the lock was broken while held ({} now holds it); heartbeat "
                                                  "stopped",
                                                  dir_.string(), cur.ok() ? describe(*cur) : "nobody"));
  Owner next = owner_;
  next.heartbeat_unix = now_unix(opts_);
  // Atomic rewrite of the owner file inside the lock directory: readers see the
  // old or the new heartbeat, the token never changes.
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(dir_ / kOwnerFile, owner_json(next).dump() + "\n"));
  owner_ = next;
  return Status::Ok();
}

Result<DirLock::Owner> DirLock::read_owner(const fs::path& lock_dir) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(lock_dir / kOwnerFile));
  try {
    auto j = nlohmann::json::parse(text);
    Owner o;
    o.host = j.at("host").get<std::string>();
    o.pid = j.at("pid").get<int64_t>();
    o.token = j.at("token").get<std::string>();
    o.acquired_unix = j.at("acquired_unix").get<int64_t>();
    o.heartbeat_unix = j.value("heartbeat_unix", int64_t{0});
    return o;
  } catch (const nlohmann::json::exception& e) {
    return Status::DataLoss(fmt::format("{}: not a lock owner file: {}", (lock_dir / kOwnerFile).string(), e.what()));
  }
}

Result<std::unique_ptr<DirLock>> DirLock::try_acquire(const fs::path& lock_dir, const DirLockOptions& opts) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(lock_dir.parent_path()));
  std::string holder;
  auto make = [&opts](fs::path d, Owner o) { return new DirLock(std::move(d), std::move(o), opts); };
  MIGVIS_ASSIGN_OR_RETURN(auto lock, attempt(lock_dir, opts, me_of(opts), &holder, make));
  if (!lock) return Status::FailedPrecondition(fmt::format("{} is held by {}", lock_dir.string(), holder));
  lock->start_heartbeat();
  return lock;
}

Result<std::unique_ptr<DirLock>> DirLock::acquire(const fs::path& lock_dir, const DirLockOptions& opts) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(lock_dir.parent_path()));
  auto sleep = opts.sleep_s ? opts.sleep_s
                            : [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  auto make = [&opts](fs::path d, Owner o) { return new DirLock(std::move(d), std::move(o), opts); };
  const std::string me = me_of(opts);
  double waited = 0, backoff = opts.initial_backoff_s;
  std::string holder;
  while (true) {
    MIGVIS_ASSIGN_OR_RETURN(auto lock, attempt(lock_dir, opts, me, &holder, make));
    if (lock) {
      lock->start_heartbeat();
      return lock;
    }
    if (waited >= opts.timeout_s)
      return Status::Unavailable(fmt::format("{}: still held by {} after waiting {:.0f} s; retry later, or remove "
                                             "the directory if that process is certainly gone",
                                             lock_dir.string(), holder, waited));
    double d = std::min(backoff * jitter(), std::max(0.0, opts.timeout_s - waited));
    sleep(d);
    waited += d;
    backoff = std::min(backoff * 2, opts.max_backoff_s);
  }
}

Status DirLock::release() {
  stop_heartbeat();
  if (!held_) return Status::Ok();
  held_ = false;
  auto cur = read_owner(dir_);
  if (!cur.ok() || cur->token != owner_.token)
    return Status::FailedPrecondition(fmt::format("{}: the lock was broken while held ({} now holds it); left alone",
                                                  dir_.string(), cur.ok() ? describe(*cur) : "nobody"));
  // Rename first: the path frees atomically, and nobody sees a half-removed lock.
  fs::path away = dir_.string() + ".released." + owner_.token;
  if (::rename(dir_.c_str(), away.c_str()) != 0) return status_from_errno(errno, "cannot release " + dir_.string());
  std::error_code ec;
  fs::remove_all(away, ec);
  return Status::Ok();
}

DirLock::~DirLock() {
  Status st = release();
  if (!st.ok()) MIGVIS_LOG_WARN("{}", st.message());
}

}  // namespace migvis
