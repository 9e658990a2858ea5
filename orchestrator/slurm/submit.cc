#include "orchestrator/slurm/submit.h"
#include "common/strings.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include <fmt/format.h>

extern char** environ;

namespace migvis::slurm {
namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

Result<CommandOutput> SystemCommandRunner::run(const std::vector<std::string>& argv,
                                               const std::map<std::string, std::string>& env) {
  if (argv.empty()) return Status::InvalidArgument("empty command");
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("SLURM_", 0) == 0 && kv.rfind("SLURM_CONF=", 0) != 0) continue;
    std::string key = kv.substr(0, kv.find('='));
    if (env.count(key)) continue;
    envs.push_back(kv);
  }
  for (auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    return Status::Unavailable(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) return Status::Unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandOutput r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (r.exit_code == 127 && r.out.empty() && r.err.empty())
    return Status::NotFound(fmt::format("cannot run '{}': not found on PATH", argv[0]));
  return r;
}

Result<int> query_max_array_size(CommandRunner* runner) {
  MIGVIS_ASSIGN_OR_RETURN(CommandOutput o, runner->run({"scontrol", "show", "config"}));
  if (o.exit_code != 0) return Status::Unavailable("scontrol show config failed: " + trim(o.err));
  size_t p = o.out.find("MaxArraySize");
  if (p == std::string::npos) return 1001;  // SLURM's default
  size_t eq = o.out.find('=', p);
  try {
    return std::stoi(o.out.substr(eq + 1));
  } catch (...) {
    return Status::Unavailable("cannot parse MaxArraySize from scontrol show config");
  }
}

namespace {

// One array of a level: which of the level's jobs it runs, under which task ids.
struct Part {
  std::vector<size_t> jobs;  // indices into the level's job_dirs
  std::vector<int> tids;     // ascending
  std::string id;            // SLURM id (or a dry-run placeholder)
};

}  // namespace

Result<std::vector<SubmittedLevel>> submit_levels(const std::vector<Level>& levels, const SubmitOptions& opts,
                                                  CommandRunner* runner) {
  int max_array = opts.max_array_size;
  if (max_array <= 0) {
    if (opts.dry_run) {
      max_array = 1001;
    } else {
      MIGVIS_ASSIGN_OR_RETURN(max_array, query_max_array_size(runner));
    }
  }
  // Task indices run 0..MaxArraySize-1.
  const size_t chunk = static_cast<size_t>(std::max(1, max_array));
  std::vector<SubmittedLevel> done;
  std::vector<std::string> submitted;  // for cancelling on failure
  auto fail = [&](Status st) -> Status {
    if (!opts.dry_run && !submitted.empty()) {
      std::vector<std::string> argv = {"scancel"};
      argv.insert(argv.end(), submitted.begin(), submitted.end());
      (void)runner->run(argv);
    }
    return st;
  };
  // Submits one sbatch argv; returns the job id.
  auto sbatch = [&](const std::vector<std::string>& argv, const std::string& what,
                    const std::string& placeholder) -> Result<std::string> {
    if (opts.dry_run) return placeholder;
    auto r = runner->run(argv);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0)
      return Status::Unavailable(fmt::format("sbatch for {} failed (exit {}): {}", what, r->exit_code, trim(r->err)));
    std::string id = trim(r->out);
    id = id.substr(0, id.find(';'));  // --parsable prints "id" or "id;cluster"
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      return Status::Unavailable("sbatch printed no job id: \"" + trim(r->out) + "\"");
    submitted.push_back(id);
    return id;
  };
  MIGVIS_RETURN_IF_ERROR(make_dirs(opts.script_dir));
  // Where each job of each level runs: (part, task id).
  std::vector<std::vector<std::pair<size_t, int>>> place(levels.size());
  std::vector<std::vector<Part>> parts(levels.size());
  auto chunked = [&](const std::vector<size_t>& jobs, std::vector<Part>* out) {
    for (size_t start = 0; start < jobs.size(); start += chunk) {
      Part p;
      for (size_t k = start; k < std::min(jobs.size(), start + chunk); ++k) {
        p.jobs.push_back(jobs[k]);
        p.tids.push_back(static_cast<int>(k - start));
      }
      out->push_back(std::move(p));
    }
  };
  for (size_t li = 0; li < levels.size(); ++li) {
    const Level& lv = levels[li];
    const size_t n = lv.spec.job_dirs.size();
    const bool per_task = !lv.job_parents.empty() || !lv.job_after_ok.empty();
    const std::vector<std::vector<std::pair<size_t, size_t>>> no_parents(lv.job_parents.empty() ? n : 0);
    const auto& job_parents = lv.job_parents.empty() ? no_parents : lv.job_parents;
    if (per_task && job_parents.size() != n)
      return fail(Status::Internal(fmt::format("level {}: job_parents has {} entries for {} jobs", li,
                                               job_parents.size(), n)));
    for (size_t p : lv.parents)
      if (p >= li) return fail(Status::Internal(fmt::format("level {} depends on later level {}", li, p)));
    for (auto& jp : lv.job_parents)
      for (auto& [pl, pk] : jp)
        if (pl >= li || pk >= levels[pl].spec.job_dirs.size())
          return fail(Status::Internal(fmt::format("level {} has a job depending on level {} job {}", li, pl, pk)));
    SubmittedLevel out;
    out.stage = lv.spec.stage;
    std::vector<Part>& my = parts[li];
    // Per part: extra afterok ids and the aftercorr array.
    std::vector<std::vector<std::string>> part_ok;
    std::vector<std::string> part_corr;
    std::vector<size_t> all(n);
    for (size_t k = 0; k < n; ++k) all[k] = k;
    if (!per_task) {
      out.shape = lv.parents.empty() ? "no dependency" : "barrier (afterok on the whole parent stages)";
      chunked(all, &my);
      std::vector<std::string> deps;
      for (size_t p : lv.parents)
        for (auto& part : parts[p]) deps.push_back(part.id);
      part_ok.assign(my.size(), deps);
      part_corr.assign(my.size(), "");
    } else {
      // The corresponding parent level: one parent each, none shared.
      std::set<size_t> parent_levels;
      for (auto& jp : job_parents)
        for (auto& pr : jp) parent_levels.insert(pr.first);
      std::optional<size_t> corr;
      for (size_t pl : parent_levels) {
        std::set<size_t> seen;
        bool ok = true;
        for (auto& jp : job_parents) {
          size_t count = 0, which = 0;
          for (auto& [l, k] : jp)
            if (l == pl) ++count, which = k;
          if (count != 1 || !seen.insert(which).second) ok = false;
        }
        if (ok) {
          corr = pl;
          break;
        }
      }
      if (corr) {
        std::map<size_t, size_t> my_part_of;  // parent part -> my part
        std::vector<std::vector<std::pair<int, size_t>>> members;
        for (size_t k = 0; k < n; ++k) {
          for (auto& [l, pk] : job_parents[k]) {
            if (l != *corr) continue;
            auto [pp, tid] = place[l][pk];
            auto it = my_part_of.emplace(pp, members.size()).first;
            if (it->second == members.size()) members.emplace_back();
            members[it->second].push_back({tid, k});
          }
        }
        for (auto& [pp, mp] : my_part_of) {
          auto& m = members[mp];
          std::sort(m.begin(), m.end());
          Part part;
          for (auto& [tid, k] : m) {
            part.jobs.push_back(k);
            part.tids.push_back(tid);
          }
          my.push_back(std::move(part));
          part_corr.push_back(parts[*corr][pp].id);
        }
        out.shape = "aftercorr " + levels[*corr].spec.stage;
      } else {
        // Group the jobs by the parent tasks they wait for.
        std::map<std::vector<std::string>, size_t> group_of;
        std::vector<std::vector<size_t>> groups;
        for (size_t k = 0; k < n; ++k) {
          std::vector<std::string> key;
          for (auto& [l, pk] : job_parents[k]) key.push_back(fmt::format("{}/{}", l, pk));
          if (k < lv.job_after_ok.size()) key.insert(key.end(), lv.job_after_ok[k].begin(), lv.job_after_ok[k].end());
          std::sort(key.begin(), key.end());
          auto it = group_of.emplace(key, groups.size()).first;
          if (it->second == groups.size()) groups.emplace_back();
          groups[it->second].push_back(k);
        }
        const bool split = groups.size() > 1 && groups.size() <= static_cast<size_t>(std::max(1, opts.max_split));
        if (split) {
          for (auto& g : groups) chunked(g, &my);
          out.shape = fmt::format("grouped ({} arrays, afterok on each group's own parent tasks)", groups.size());
        } else {
          chunked(all, &my);
          out.shape = parent_levels.empty() ? "no dependency"
                                            : fmt::format("barrier on the parent tasks it needs ({} groups > max {})",
                                                          groups.size(), opts.max_split);
          if (groups.size() <= 1 && !parent_levels.empty()) out.shape = "afterok on its parent tasks";
        }
        part_corr.assign(my.size(), "");
      }
      // afterok on the non-corresponding parents: the whole array when the part
      // needs all of it, otherwise exactly the tasks it needs.
      for (auto& part : my) {
        std::map<std::pair<size_t, size_t>, std::set<int>> need;  // (level, parent part) -> task ids
        std::set<std::string> extra;
        for (size_t k : part.jobs) {
          for (auto& [l, pk] : job_parents[k]) {
            if (corr && l == *corr) continue;
            need[{l, place[l][pk].first}].insert(place[l][pk].second);
          }
          if (k < lv.job_after_ok.size()) extra.insert(lv.job_after_ok[k].begin(), lv.job_after_ok[k].end());
        }
        std::vector<std::string> deps;
        for (auto& [lp, tids] : need) {
          const Part& pp = parts[lp.first][lp.second];
          if (tids.size() == pp.tids.size()) {
            deps.push_back(pp.id);
          } else {
            for (int t : tids) deps.push_back(fmt::format("{}_{}", pp.id, t));
          }
        }
        deps.insert(deps.end(), extra.begin(), extra.end());
        part_ok.push_back(std::move(deps));
      }
    }
    place[li].assign(n, {0, 0});
    for (size_t pi = 0; pi < my.size(); ++pi) {
      Part& part = my[pi];
      ArraySpec spec = lv.spec;
      spec.job_dirs.clear();
      for (size_t k : part.jobs) spec.job_dirs.push_back(lv.spec.job_dirs[k]);
      const bool dense = part.tids.back() == static_cast<int>(part.tids.size()) - 1;
      if (!dense) spec.task_ids = part.tids;
      spec.after_ok.insert(spec.after_ok.end(), part_ok[pi].begin(), part_ok[pi].end());  // lv.spec.after_ok first
      if (!part_corr[pi].empty()) spec.after_corr = {part_corr[pi]};
      fs::path script = opts.script_dir / fmt::format("{}.{}.sbatch", spec.stage, pi);
      MIGVIS_RETURN_IF_ERROR(write_file_atomic(script, render_array_script(spec)));
      MIGVIS_RETURN_IF_ERROR(make_dirs(spec.log_dir));
      auto argv = sbatch_args(spec, script);
      out.scripts.push_back(script);
      out.commands.push_back(argv);
      out.array_sizes.push_back(spec.job_dirs.size());
      out.task_ids.push_back(part.tids);
      out.job_dirs.insert(out.job_dirs.end(), spec.job_dirs.begin(), spec.job_dirs.end());
      auto id = sbatch(argv, "stage " + spec.stage, fmt::format("<{}.{}>", spec.stage, pi));
      if (!id.ok()) return fail(id.status());
      part.id = *id;
      out.array_ids.push_back(part.id);
      for (size_t j = 0; j < part.jobs.size(); ++j) place[li][part.jobs[j]] = {pi, part.tids[j]};
    }
    if (!opts.ingest_argv.empty() && !out.array_ids.empty()) {
      // Runs whatever happened to the tasks (afterany), so failures are recorded too.
      std::vector<std::vector<std::string>> slices;
      if (opts.ingest_batch <= 0) {
        slices.push_back(out.array_ids);
      } else {
        const size_t b = static_cast<size_t>(opts.ingest_batch);
        for (auto& part : my) {
          if (part.tids.size() <= b) {
            slices.push_back({part.id});
            continue;
          }
          for (size_t start = 0; start < part.tids.size(); start += b) {
            std::vector<std::string> ids;
            for (size_t j = start; j < std::min(part.tids.size(), start + b); ++j)
              ids.push_back(fmt::format("{}_{}", part.id, part.tids[j]));
            slices.push_back(std::move(ids));
          }
        }
      }
      std::string wrap;
      for (auto& a : opts.ingest_argv) wrap += (wrap.empty() ? "" : " ") + shell_quote(a);
      for (size_t si = 0; si < slices.size(); ++si) {
        std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=" + lv.spec.name + "-ingest",
                                         "--ntasks=1", "--cpus-per-task=1", "--mem=512M", "--time=30",
                                         "--dependency=afterany:" + join(slices[si], ":"),
                                         "--output=" + (lv.spec.log_dir / "ingest_%j.out").string(), "--wrap", wrap};
        out.commands.push_back(argv);
        auto id = sbatch(argv, "the ingest of stage " + lv.spec.stage, "");
        if (!id.ok()) return fail(id.status());
        if (!id->empty()) out.ingest_ids.push_back(*id);
      }
      if (!out.ingest_ids.empty()) out.ingest_id = out.ingest_ids.front();
    }
    done.push_back(std::move(out));
  }
  return done;
}

Result<std::vector<AccountingRecord>> query_accounting(CommandRunner* runner, const std::vector<std::string>& job_ids,
                                                       const std::string& starttime, int attempts,
                                                       const std::function<void(double)>& sleep_s) {
  std::vector<std::string> argv = {"sacct", "--parsable2", "--noheader", "-X", "--starttime", starttime,
                                   "-j", join(job_ids, ","), "-o", "JobID,State,ExitCode,DerivedExitCode"};
  double delay = 0.5;
  Status last;
  for (int i = 0; i < std::max(1, attempts); ++i) {
    auto r = runner->run(argv);
    if (r.ok() && r->exit_code == 0) return parse_sacct(r->out);
    last = r.ok() ? Status::Unavailable("sacct failed (exit " + std::to_string(r->exit_code) + "): " + trim(r->err))
                  : r.status();
    if (i + 1 < attempts) {
      sleep_s(delay);
      delay = std::min(delay * 2, 30.0);
    }
  }
  return last.with_context(fmt::format("sacct after {} attempts", attempts));
}

Result<std::vector<QueueRecord>> query_queue(CommandRunner* runner, const std::vector<std::string>& job_ids) {
  std::vector<std::string> argv = {"squeue", "-h", "-o", "%i|%T|%r"};
  if (!job_ids.empty()) {
    argv.push_back("-j");
    argv.push_back(join(job_ids, ","));
  }
  MIGVIS_ASSIGN_OR_RETURN(CommandOutput o, runner->run(argv));
  // squeue exits 1 with "Invalid job id" once every listed job has left the queue.
  if (o.exit_code != 0 && o.err.find("Invalid job id") == std::string::npos)
    return Status::Unavailable("squeue failed: " + trim(o.err));
  return parse_squeue(o.out);
}

}  // namespace migvis::slurm
