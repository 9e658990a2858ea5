// DirLock: a cross-process, cross-host mutual-exclusion lock that works on NFS,
// where flock()/fcntl() locks are unreliable. The lock is a directory created
// with mkdir(2) (atomic on every filesystem, NFS included); inside it an owner
// file says who holds it (host, pid, token, time). It protects the one writer
// of a migvis catalog (`<root>/.ingest.lock.d`, see results/catalog.h).
//
// Format (add fields, never rename): <lock>/owner is JSON
//   {"host": "n01", "pid": 1234, "token": "9f..16 hex", "acquired_unix": 1764...}
//
// Waiting: acquire() retries mkdir with exponential backoff until `timeout_s`.
// Stale locks: the owner is dead when it is on this host and its pid no longer
// exists, or (other hosts, whose pids we cannot see) when it was acquired more
// than `stale_after_s` ago; an owner-less lock directory (its creator died
// between mkdir and writing the owner) is stale after `orphan_after_s`.
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
  double stale_after_s = 6 * 3600; // other hosts' locks older than this are broken
  double orphan_after_s = 60;      // lock dir without an owner file, older than this
  // Sleeps; tests may pass a fake (the default sleeps for real).
  std::function<void(double)> sleep_s;
};

class DirLock {
 public:
  struct Owner {
    std::string host;
    int64_t pid = 0;
    std::string token;       // random per acquisition: tells two holders apart
    int64_t acquired_unix = 0;
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

  // Releases (destructor: the same, errors logged). FailedPrecondition if the
  // lock was broken and someone else holds it now (it is then left alone).
  Status release();
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const Owner& owner() const { return owner_; }
  const fs::path& path() const { return dir_; }

 private:
  DirLock(fs::path dir, Owner o) : dir_(std::move(dir)), owner_(std::move(o)) {}
  fs::path dir_;
  Owner owner_;
  bool held_ = true;
};

// "host pid 1234 since 2026-11-25T18:00:00Z" for messages.
std::string describe(const DirLock::Owner& o);

}  // namespace migvis
