// DirLock: a cross-process, cross-host mutual-exclusion lock that works on NFS,
// where flock()/fcntl() locks are unreliable. The lock is a directory created
// with mkdir(2) (atomic on every filesystem, NFS included); inside it an owner
// file says who holds it (host, pid, token, time). It protects the one writer
// of a migvis catalog (`<db>.lock.d` beside the database file, see results/catalog.h).
//
// Format (add fields, never rename): <lock>/owner is JSON
//   {"host": "n01", "pid": 1234, "token": "9f..16 hex", "acquired_unix": 1764...,
//    "heartbeat_unix": 1764...}
//
// Heartbeat: while held, a background thread rewrites the owner file (atomic,
// same token) every `heartbeat_every_s` with a fresh `heartbeat_unix`, so a
// holder that keeps a lock for hours (a long `results ingest`) stays visibly
// alive to other hosts, and one that died stops beating.
//
// Waiting: acquire() retries mkdir with exponential backoff until `timeout_s`.
// Stale locks: the owner is dead when it is on this host and its pid no longer
// exists, or (other hosts, whose pids we cannot see) when its last heartbeat is
// more than `stale_after_s` old (owner files without `heartbeat_unix`, from
// older versions, count from `acquired_unix`); an owner-less lock directory
// (its creator died between mkdir and writing the owner) is stale after
// `orphan_after_s`.
// Breaking is serialized by a second mkdir lock (`<lock>.break`): the breaker
// re-reads the owner under it and renames the lock directory away only if the
// owner is still the stale one, then removes it; two breakers can't both win,
// and a breaker never removes a lock that was taken fresh in the meantime.
//
// Thread-safety: a DirLock object is used by one thread; distinct objects
// (threads, processes, hosts) contend for the same path correctly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/files.h"
#include "common/status.h"

namespace migvis {

struct DirLockOptions {
  double timeout_s = 600;          // acquire(): give up after this long (Unavailable)
  double initial_backoff_s = 0.02; // first wait; doubles up to max_backoff_s
  double max_backoff_s = 2;
  // Other hosts' locks whose last heartbeat is older than this are broken: ten
  // missed heartbeats, long enough to ride out an NFS hiccup or a stopped VM.
  double stale_after_s = 300;
  double heartbeat_every_s = 30;   // 0: no heartbeat thread (tests call heartbeat())
  double orphan_after_s = 60;      // lock dir without an owner file, older than this
  // Sleeps; tests may pass a fake (the default sleeps for real).
  std::function<void(double)> sleep_s;
  // Wall clock in Unix seconds; tests may pass a fake (default: system clock).
  std::function<int64_t()> now_unix;
  // This host's name; tests may pose as another host (default: gethostname()).
  std::string host;
};

class DirLock {
 public:
  struct Owner {
    std::string host;
    int64_t pid = 0;
    std::string token;       // random per acquisition: tells two holders apart
    int64_t acquired_unix = 0;
    int64_t heartbeat_unix = 0;  // last refresh; 0 in owner files of older versions
  };

  // Takes the lock at `lock_dir` (its parent must exist or is created), waiting
  // with backoff and breaking a stale lock. Unavailable after timeout_s, naming
  // the holder; other errors (unwritable parent) at once.
  static Result<std::unique_ptr<DirLock>> acquire(const fs::path& lock_dir, const DirLockOptions& opts = {});
  // One attempt (stale locks are still broken): FailedPrecondition naming the
  // holder when someone else holds it.
  static Result<std::unique_ptr<DirLock>> try_acquire(const fs::path& lock_dir, const DirLockOptions& opts = {});

  // Reads the owner file of a held lock: NotFound if not held or no owner yet.
  static Result<Owner> read_owner(const fs::path& lock_dir);

  // Refreshes the owner file's heartbeat_unix (the background thread calls it
  // every heartbeat_every_s). FailedPrecondition if the lock is no longer ours
  // (it was broken); the heartbeat then stops.
  Status heartbeat();

  // Releases (destructor: the same, errors logged). FailedPrecondition if the
  // lock was broken and someone else holds it now (it is then left alone).
  Status release();
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const Owner& owner() const { return owner_; }
  const fs::path& path() const { return dir_; }

 private:
  DirLock(fs::path dir, Owner o, DirLockOptions opts);
  void start_heartbeat();
  void stop_heartbeat();

  fs::path dir_;
  Owner owner_;
  DirLockOptions opts_;
  bool held_ = true;
  struct Beat;                   // the heartbeat thread and its stop signal
  std::unique_ptr<Beat> beat_;
};

// "host pid 1234 since 2026-11-25T18:00:00Z, last heartbeat ..." for messages.
std::string describe(const DirLock::Owner& o);

}  // namespace migvis
