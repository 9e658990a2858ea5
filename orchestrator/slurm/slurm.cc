#include "orchestrator/slurm/slurm.h"
#include "common/strings.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "migvis_slurm_template.h"  // generated from slurm/array.sbatch.in

namespace migvis::slurm {
namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.emplace_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

bool parse_int(const std::string& s, int* out) {
  try {
    size_t pos = 0;
    *out = std::stoi(s, &pos);
    return pos == s.size();
  } catch (...) {
    return false;
  }
}

// "code:signal"
bool parse_exit(const std::string& s, int* code, int* sig) {
  auto parts = split(s, ':');
  if (parts.size() != 2) return false;
  return parse_int(parts[0], code) && parse_int(parts[1], sig);
}

// Non-empty lines of `text` split on '|'; a line with fewer than `min_fields`
// fields is an error naming `tool`, the line number and `expected`.
struct Line {
  int number = 0;
  std::string text;
  std::vector<std::string> fields;
};
Result<std::vector<Line>> pipe_separated_lines(std::string_view text, size_t min_fields, const char* tool,
                                               const char* expected) {
  std::vector<Line> out;
  int lineno = 0;
  for (auto& raw : split(text, '\n')) {
    ++lineno;
    std::string l = trim(raw);
    if (l.empty()) continue;
    auto f = split(l, '|');
    if (f.size() < min_fields)
      return Status::InvalidArgument(fmt::format("{} output line {}: expected {}, got \"{}\"", tool, lineno, expected, l));
    out.push_back({lineno, l, std::move(f)});
  }
  return out;
}

}  // namespace

JobState parse_state(std::string_view text) {
  std::string t = trim(text);
  // "CANCELLED by 0" -> "CANCELLED"; sacct truncates long names with '+'.
  t = t.substr(0, t.find(' '));
  if (!t.empty() && t.back() == '+') t.pop_back();
  auto starts = [&](std::string_view full) { return !t.empty() && full.substr(0, t.size()) == t; };
  static const std::pair<std::string_view, JobState> kLong[] = {
      {"PENDING", JobState::kPending},       {"RUNNING", JobState::kRunning},
      {"SUSPENDED", JobState::kSuspended},   {"COMPLETING", JobState::kCompleting},
      {"COMPLETED", JobState::kCompleted},   {"FAILED", JobState::kFailed},
      {"CANCELLED", JobState::kCancelled},   {"TIMEOUT", JobState::kTimeout},
      {"OUT_OF_MEMORY", JobState::kOutOfMemory}, {"PREEMPTED", JobState::kPreempted},
      {"NODE_FAIL", JobState::kNodeFail},    {"BOOT_FAIL", JobState::kBootFail},
      {"DEADLINE", JobState::kDeadline},     {"REQUEUED", JobState::kRequeued},
      {"REQUEUE_HOLD", JobState::kRequeued}, {"REQUEUE_FED", JobState::kRequeued},
      {"RESIZING", JobState::kRunning},      {"CONFIGURING", JobState::kRunning},
  };
  for (auto& [name, st] : kLong)
    if (t == name) return st;
  static const std::pair<std::string_view, JobState> kShort[] = {
      {"PD", JobState::kPending}, {"R", JobState::kRunning},   {"S", JobState::kSuspended},
      {"CG", JobState::kCompleting}, {"CD", JobState::kCompleted}, {"F", JobState::kFailed},
      {"CA", JobState::kCancelled}, {"TO", JobState::kTimeout}, {"OOM", JobState::kOutOfMemory},
      {"PR", JobState::kPreempted}, {"NF", JobState::kNodeFail}, {"BF", JobState::kBootFail},
      {"DL", JobState::kDeadline},  {"RQ", JobState::kRequeued}, {"CF", JobState::kRunning},
  };
  for (auto& [name, st] : kShort)
    if (t == name) return st;
  // A truncated long name ("OUT_OF_ME" from "OUT_OF_ME+").
  if (t.size() >= 4)
    for (auto& [name, st] : kLong)
      if (starts(name)) return st;
  return JobState::kUnknown;
}

std::string_view state_name(JobState s) {
  switch (s) {
    case JobState::kPending: return "PENDING";
    case JobState::kRunning: return "RUNNING";
    case JobState::kSuspended: return "SUSPENDED";
    case JobState::kCompleting: return "COMPLETING";
    case JobState::kCompleted: return "COMPLETED";
    case JobState::kFailed: return "FAILED";
    case JobState::kCancelled: return "CANCELLED";
    case JobState::kTimeout: return "TIMEOUT";
    case JobState::kOutOfMemory: return "OUT_OF_MEMORY";
    case JobState::kPreempted: return "PREEMPTED";
    case JobState::kNodeFail: return "NODE_FAIL";
    case JobState::kBootFail: return "BOOT_FAIL";
    case JobState::kDeadline: return "DEADLINE";
    case JobState::kRequeued: return "REQUEUED";
    case JobState::kUnknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

bool is_terminal(JobState s) {
  switch (s) {
    case JobState::kPending:
    case JobState::kRunning:
    case JobState::kSuspended:
    case JobState::kCompleting:
    case JobState::kRequeued:
    case JobState::kUnknown: return false;
    default: return true;
  }
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kDone: return "done";
    case Outcome::kStillQueued: return "queued";
    case Outcome::kAppError: return "application error";
    case Outcome::kTemporary: return "preempted/checkpointed";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kOutOfMemory: return "out of memory";
    case Outcome::kNodeFail: return "node failure";
    case Outcome::kCancelled: return "cancelled";
  }
  return "?";
}

bool counts_against_retries(Outcome o) {
  return o == Outcome::kAppError || o == Outcome::kTimeout || o == Outcome::kOutOfMemory;
}

Outcome classify(const AccountingRecord& r) {
  switch (r.state) {
    case JobState::kCompleted: return r.exit_code == 0 ? Outcome::kDone : Outcome::kAppError;
    case JobState::kPreempted: return Outcome::kTemporary;
    case JobState::kNodeFail:
    case JobState::kBootFail: return Outcome::kNodeFail;
    case JobState::kTimeout:
    case JobState::kDeadline: return Outcome::kTimeout;
    case JobState::kOutOfMemory: return Outcome::kOutOfMemory;
    case JobState::kCancelled: return Outcome::kCancelled;
    case JobState::kFailed:
      // The worker's "temporary failure" code (checkpoint written) is not the
      // application's fault; OOM kills sometimes surface as FAILED with signal 9.
      if (r.exit_code == 75 || r.derived_exit_code == 75) return Outcome::kTemporary;
      return Outcome::kAppError;
    default: return Outcome::kStillQueued;
  }
}

Result<std::vector<AccountingRecord>> parse_sacct(std::string_view text) {
  std::vector<AccountingRecord> out;
  MIGVIS_ASSIGN_OR_RETURN(auto lines, pipe_separated_lines(text, 4, "sacct",
                                                           "4 '|'-separated fields (JobID|State|ExitCode|DerivedExitCode)"));
  for (auto& [lineno, l, f] : lines) {
    if (f[0].find('.') != std::string::npos) continue;  // job step
    AccountingRecord r;
    r.job_id = f[0];
    r.raw_state = f[1];
    r.state = parse_state(f[1]);
    if (!parse_exit(f[2], &r.exit_code, &r.signal))
      return Status::InvalidArgument(fmt::format("sacct output line {}: bad ExitCode \"{}\"", lineno, f[2]));
    int dsig = 0;
    if (!f[3].empty() && !parse_exit(f[3], &r.derived_exit_code, &dsig))
      return Status::InvalidArgument(fmt::format("sacct output line {}: bad DerivedExitCode \"{}\"", lineno, f[3]));
    size_t us = r.job_id.find('_');
    std::string head = r.job_id.substr(0, us);
    try {
      r.array_job_id = std::stoll(head);
    } catch (...) {
      return Status::InvalidArgument(fmt::format("sacct output line {}: bad JobID \"{}\"", lineno, r.job_id));
    }
    if (us != std::string::npos) {
      std::string task = r.job_id.substr(us + 1);
      if (!task.empty() && task[0] == '[') {
        // Tasks that never started share one record ("12_[3-5]"), e.g. pending,
        // or cancelled because a dependency can never be satisfied.
        for (auto& id : expand_array_id(r.job_id)) {
          AccountingRecord t = r;
          t.job_id = id;
          parse_int(id.substr(us + 1), &t.array_task);
          out.push_back(t);
        }
        continue;
      }
      if (!parse_int(task, &r.array_task))
        return Status::InvalidArgument(fmt::format("sacct output line {}: bad array task in \"{}\"", lineno, r.job_id));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::string> expand_array_id(const std::string& id) {
  size_t us = id.find("_[");
  if (us == std::string::npos || id.back() != ']') return {id};
  std::string head = id.substr(0, us);
  std::string body = id.substr(us + 2, id.size() - us - 3);
  body = body.substr(0, body.find('%'));
  std::vector<std::string> out;
  for (auto& part : split(body, ',')) {
    auto range = split(part, '-');
    int a = 0, b = 0;
    if (range.size() == 1 && parse_int(range[0], &a)) {
      out.push_back(head + "_" + std::to_string(a));
    } else if (range.size() == 2 && parse_int(range[0], &a) && parse_int(range[1], &b)) {
      for (int i = a; i <= b; ++i) out.push_back(head + "_" + std::to_string(i));
    }
  }
  return out;
}

Result<std::vector<QueueRecord>> parse_squeue(std::string_view text) {
  std::vector<QueueRecord> out;
  MIGVIS_ASSIGN_OR_RETURN(auto lines, pipe_separated_lines(text, 3, "squeue", "JobID|State|Reason"));
  for (auto& line : lines) out.push_back({line.fields[0], parse_state(line.fields[1]), line.fields[2]});
  return out;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  out += "'";
  return out;
}

std::string render_array_script(const ArraySpec& spec) {
  std::string dirs;
  for (size_t k = 0; k < spec.job_dirs.size(); ++k) {
    // Sparse task ids index a sparse bash array: ([5]='dir' ...).
    std::string index = spec.task_ids.empty() ? "" : fmt::format("[{}]=", spec.task_ids[k]);
    dirs += "  " + index + shell_quote(spec.job_dirs[k].string()) + "\n";
  }
  if (!dirs.empty()) dirs.pop_back();
  std::string launch;
  if (spec.ntasks > 1) launch = fmt::format("srun --mpi=pmix --ntasks={} --cpus-per-task={} ", spec.ntasks, spec.cpus_per_task);
  std::string command;
  for (auto& a : spec.command) command += (command.empty() ? "" : " ") + shell_quote(a);
  // The stage and sweep names appear in comments: nothing may end the comment line.
  auto comment_safe = [](std::string s) {
    for (char& c : s)
      if (c == '\n' || c == '\r') c = ' ';
    return s;
  };
  const std::map<std::string, std::string> values = {
      {"STAGE", comment_safe(spec.stage)}, {"SWEEP", comment_safe(spec.sweep)}, {"JOB_DIRS", dirs},
      {"COMMAND", command},                {"LAUNCH", launch},
  };
  // One pass over the template: substituted text is never scanned again, so a
  // value containing "@COMMAND@" stays literal.
  const std::string t = kArrayScriptTemplate;
  std::string out;
  size_t i = 0;
  while (i < t.size()) {
    size_t a = t.find('@', i);
    if (a == std::string::npos) break;
    size_t b = t.find('@', a + 1);
    if (b == std::string::npos) break;
    auto it = values.find(t.substr(a + 1, b - a - 1));
    if (it == values.end()) {
      out.append(t, i, a + 1 - i);
      i = a + 1;
      continue;
    }
    out.append(t, i, a - i);
    out += it->second;
    i = b + 1;
  }
  out.append(t, i, std::string::npos);
  return out;
}

std::vector<std::string> sbatch_args(const ArraySpec& spec, const fs::path& script) {
  std::vector<std::string> a = {"sbatch", "--parsable"};
  a.push_back("--job-name=" + spec.name);
  std::string range = spec.task_ids.empty()
                          ? fmt::format("0-{}", spec.job_dirs.empty() ? 0 : spec.job_dirs.size() - 1)
                          : array_range(spec.task_ids);
  if (spec.throttle > 0) range += fmt::format("%{}", spec.throttle);
  a.push_back("--array=" + range);
  a.push_back(fmt::format("--ntasks={}", spec.ntasks));
  a.push_back(fmt::format("--cpus-per-task={}", spec.cpus_per_task));
  a.push_back(fmt::format("--mem={}M", static_cast<long>(std::ceil(spec.mem_gb * 1024))));
  a.push_back(fmt::format("--time={}", static_cast<long>(std::ceil(spec.time_min))));
  if (spec.gpus > 0) a.push_back(fmt::format("--gres=gpu:{}", spec.gpus));
  if (!spec.partition.empty()) a.push_back("--partition=" + spec.partition);
  if (!spec.account.empty()) a.push_back("--account=" + spec.account);
  if (!spec.qos.empty()) a.push_back("--qos=" + spec.qos);
  a.push_back("--requeue");
  a.push_back(fmt::format("--signal=B:USR1@{}", spec.signal_seconds));
  if (!spec.after_ok.empty() || !spec.after_corr.empty()) {
    // Comma: every condition must hold. A failed parent makes its dependents'
    // condition unsatisfiable, and --kill-on-invalid-dep cancels exactly those.
    std::string dep;
    if (!spec.after_ok.empty()) {
      dep = "afterok";
      for (auto& id : spec.after_ok) dep += ":" + id;
    }
    if (!spec.after_corr.empty()) {
      dep += dep.empty() ? "aftercorr" : ",aftercorr";
      for (auto& id : spec.after_corr) dep += ":" + id;
    }
    a.push_back("--dependency=" + dep);
    a.push_back("--kill-on-invalid-dep=yes");
  }
  a.push_back("--output=" + (spec.log_dir / "%A_%a.out").string());
  a.push_back(script.string());
  return a;
}

std::string array_range(const std::vector<int>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + (j == i ? std::to_string(ids[i]) : fmt::format("{}-{}", ids[i], ids[j]));
    i = j + 1;
  }
  return out.empty() ? "0-0" : out;
}

}  // namespace migvis::slurm
