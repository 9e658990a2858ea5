#include "orchestrator/slurm/submit.h"
#include "common/strings.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

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
  MIGVIS_RETURN_IF_ERROR(make_dirs(opts.script_dir));
  for (size_t li = 0; li < levels.size(); ++li) {
    const Level& lv = levels[li];
    SubmittedLevel out;
    out.stage = lv.spec.stage;
    std::vector<std::string> deps;
    for (size_t p : lv.parents) {
      if (p >= li) return fail(Status::Internal(fmt::format("level {} depends on later level {}", li, p)));
      deps.insert(deps.end(), done[p].array_ids.begin(), done[p].array_ids.end());
    }
    const size_t n = lv.spec.job_dirs.size();
    for (size_t start = 0, part = 0; start < n; start += chunk, ++part) {
      ArraySpec spec = lv.spec;
      spec.job_dirs.assign(lv.spec.job_dirs.begin() + static_cast<long>(start),
                           lv.spec.job_dirs.begin() + static_cast<long>(std::min(n, start + chunk)));
      spec.after_ok.insert(spec.after_ok.end(), deps.begin(), deps.end());  // lv.spec.after_ok first
      fs::path script = opts.script_dir / fmt::format("{}.{}.sbatch", spec.stage, part);
      MIGVIS_RETURN_IF_ERROR(write_file_atomic(script, render_array_script(spec)));
      MIGVIS_RETURN_IF_ERROR(make_dirs(spec.log_dir));
      auto argv = sbatch_args(spec, script);
      out.scripts.push_back(script);
      out.commands.push_back(argv);
      out.array_sizes.push_back(spec.job_dirs.size());
      if (opts.dry_run) {
        out.array_ids.push_back(fmt::format("<{}.{}>", spec.stage, part));
        continue;
      }
      auto r = runner->run(argv);
      if (!r.ok()) return fail(r.status());
      if (r->exit_code != 0)
        return fail(Status::Unavailable(fmt::format("sbatch for stage {} failed (exit {}): {}", spec.stage,
                                                    r->exit_code, trim(r->err))));
      std::string id = trim(r->out);
      id = id.substr(0, id.find(';'));  // --parsable prints "id" or "id;cluster"
      if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
        return fail(Status::Unavailable("sbatch printed no job id: \"" + trim(r->out) + "\""));
      out.array_ids.push_back(id);
      submitted.push_back(id);
    }
    if (!opts.ingest_argv.empty() && !out.array_ids.empty()) {
      // Runs whatever happened to the stage (afterany), so failures are recorded too.
      std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=" + lv.spec.name + "-ingest",
                                       "--ntasks=1", "--cpus-per-task=1", "--mem=512M", "--time=30",
                                       "--dependency=afterany:" + join(out.array_ids, ":"),
                                       "--output=" + (lv.spec.log_dir / "ingest_%j.out").string(), "--wrap"};
      std::string wrap;
      for (auto& a : opts.ingest_argv) wrap += (wrap.empty() ? "" : " ") + shell_quote(a);
      argv.push_back(wrap);
      out.commands.push_back(argv);
      if (!opts.dry_run) {
        auto r = runner->run(argv);
        if (!r.ok()) return fail(r.status());
        if (r->exit_code != 0) return fail(Status::Unavailable("sbatch (ingest) failed: " + trim(r->err)));
        out.ingest_id = trim(r->out).substr(0, trim(r->out).find(';'));
        submitted.push_back(out.ingest_id);
      }
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
