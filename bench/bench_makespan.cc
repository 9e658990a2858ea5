// bench_makespan: the makespan of a sweep on a simulated cluster, with the
// dependencies `migvis sweep submit` renders in its two shapes: stage barriers
// (--barriers) and per-task (aftercorr / grouped afterok, the default).
//
// The arrays and their --dependency strings come from the real submitter
// (orch::slurm_levels + slurm::submit_levels against a fake sbatch); a
// discrete-event simulation on a fake clock then runs them on N GPUs and C
// cores: a task starts, in submission order with backfill, once every task its
// dependency names has completed and its GPUs and cores are free. Durations are
// log-normal around a per-stage median, with one straggler per stage (a slow
// node or a requeued task; stages of two or more jobs) taking `--straggler`
// times its draw; both shapes see
// the same durations for each seed.
//
// Usage: bench_makespan [--sweep F] [--gpus 8] [--cores 64] [--seeds 20]
//                       [--sigma 0.4] [--straggler 4] [--json OUT]
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "orchestrator/slurm/sweep_submit.h"
#include "sweeps/sweep.h"

using namespace migvis;

namespace {

// Median minutes per task on one GPU (or its CPU threads): a lab's guess for
// paper.yaml at 128 x 128 (time_min in the sweep is the limit, not the median).
const std::map<std::string, double> kMedianMin = {{"data", 15},      {"vae", 60},        {"diffusion", 480},
                                                  {"critic", 40},    {"synthesis", 150}, {"eval", 20}};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

class FakeSbatch : public slurm::CommandRunner {
 public:
  Result<slurm::CommandOutput> run(const std::vector<std::string>&, const std::map<std::string, std::string>&) override {
    return slurm::CommandOutput{0, std::to_string(next_++) + "\n", ""};
  }

 private:
  int next_ = 1000;
};

struct Task {
  size_t job = 0;             // plan index
  std::vector<size_t> waits;  // task indices
  int gpus = 0, cores = 1;
};

// The tasks of a submission and what each waits for, read back from the sbatch argv.
Result<std::vector<Task>> tasks_of(const sweeps::Plan& plan, const fs::path& root, bool barriers) {
  orch::SlurmSubmitOptions o;
  o.root = root;
  o.barriers = barriers;
  o.worker = "migvis-worker";
  o.self = "migvis";
  o.max_array_size = 1001;
  size_t cached = 0;
  MIGVIS_ASSIGN_OR_RETURN(auto levels, orch::slurm_levels(plan, o, &cached));
  slurm::SubmitOptions so = orch::submit_options(o, root / "scripts");
  so.ingest_argv.clear();
  FakeSbatch fake;
  MIGVIS_ASSIGN_OR_RETURN(auto sub, slurm::submit_levels(levels, so, &fake));
  std::map<std::string, size_t> job_of_dir;
  for (size_t i = 0; i < plan.jobs.size(); ++i) job_of_dir[sweeps::job_dir_for(fs::absolute(root), plan.jobs[i]).string()] = i;
  std::vector<Task> tasks;
  std::map<std::string, std::vector<size_t>> of_array;  // "1000" -> its tasks
  std::map<std::string, size_t> of_task;                 // "1000_3" -> task
  for (auto& l : sub) {
    size_t off = 0;
    for (size_t a = 0; a < l.array_ids.size(); ++a) {
      std::string dep;
      for (auto& w : l.commands[a])
        if (w.rfind("--dependency=", 0) == 0) dep = w.substr(13);
      std::vector<size_t> whole;   // waits of every task of the array
      std::vector<std::string> corr;
      for (auto& cond : split(dep, ',')) {
        if (cond.empty()) continue;
        auto parts = split(cond, ':');
        for (size_t k = 1; k < parts.size(); ++k) {
          if (parts[0] == "aftercorr") {
            corr.push_back(parts[k]);
          } else if (parts[k].find('_') != std::string::npos) {
            whole.push_back(of_task.at(parts[k]));
          } else {
            auto& v = of_array.at(parts[k]);
            whole.insert(whole.end(), v.begin(), v.end());
          }
        }
      }
      for (size_t k = 0; k < l.array_sizes[a]; ++k) {
        Task t;
        t.job = job_of_dir.at(l.job_dirs[off + k].string());
        const auto& r = plan.jobs[t.job].resources;
        t.gpus = r.gpus;
        t.cores = std::max(1, r.threads) * std::max(1, r.ranks);
        t.waits = whole;
        const int tid = l.task_ids[a][k];
        for (auto& c : corr) t.waits.push_back(of_task.at(fmt::format("{}_{}", c, tid)));
        of_array[l.array_ids[a]].push_back(tasks.size());
        of_task[fmt::format("{}_{}", l.array_ids[a], tid)] = tasks.size();
        tasks.push_back(std::move(t));
      }
      off += l.array_sizes[a];
    }
  }
  return tasks;
}

struct Outcome {
  double makespan = 0, synth_to_eval = 0;
};

// List scheduling on a fake clock: at every event, start each ready task (in
// submission order) that fits; then advance to the next completion.
Outcome simulate(const sweeps::Plan& plan, const std::vector<Task>& tasks, const std::vector<double>& dur, int gpus,
                 int cores) {
  const size_t n = tasks.size();
  std::vector<double> end(n, -1), start(n, -1);
  std::vector<bool> started(n);
  int free_gpus = gpus, free_cores = cores;
  double now = 0;
  size_t finished = 0;
  std::multimap<double, size_t> running;
  while (finished < n) {
    for (size_t i = 0; i < n; ++i) {
      if (started[i]) continue;
      const Task& t = tasks[i];
      bool ready = true;
      for (size_t w : t.waits)
        if (end[w] < 0 || end[w] > now) ready = false;
      if (!ready || t.gpus > free_gpus || t.cores > free_cores) continue;
      started[i] = true;
      start[i] = now;
      free_gpus -= t.gpus;
      free_cores -= t.cores;
      running.emplace(now + dur[t.job], i);
    }
    if (running.empty()) break;  // a task that can never fit
    auto it = running.begin();
    now = it->first;
    while (!running.empty() && running.begin()->first <= now) {
      size_t i = running.begin()->second;
      running.erase(running.begin());
      end[i] = now;
      free_gpus += tasks[i].gpus;
      free_cores += tasks[i].cores;
      ++finished;
    }
  }
  Outcome o;
  double first_synth = 1e300, last_eval = 0;
  for (size_t i = 0; i < n; ++i) {
    o.makespan = std::max(o.makespan, end[i]);
    const std::string& st = plan.jobs[tasks[i].job].stage;
    if (st == "synthesis") first_synth = std::min(first_synth, start[i]);
    if (st == "eval") last_eval = std::max(last_eval, end[i]);
  }
  o.synth_to_eval = last_eval - first_synth;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sweep = std::string(MIGVIS_SOURCE_DIR) + "/sweeps/paper.yaml", json_out;
  int gpus = 8, cores = 64, seeds = 20;
  double sigma = 0.4, straggler = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sweep") sweep = v;
    else if (k == "--gpus") gpus = std::stoi(v);
    else if (k == "--cores") cores = std::stoi(v);
    else if (k == "--seeds") seeds = std::stoi(v);
    else if (k == "--sigma") sigma = std::stod(v);
    else if (k == "--straggler") straggler = std::stod(v);
    else if (k == "--json") json_out = v;
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  auto plan = sweeps::load_sweep(sweep);
  if (!plan.ok()) {
    fmt::print(stderr, "{}\n", plan.status().message());
    return 1;
  }
  const fs::path root = fs::temp_directory_path() / fmt::format("bench_makespan_{}", ::getpid());
  auto barrier = tasks_of(*plan, root, true);
  auto per_task = tasks_of(*plan, root, false);
  std::error_code ec;
  fs::remove_all(root, ec);
  if (!barrier.ok() || !per_task.ok()) {
    fmt::print(stderr, "{}\n", (!barrier.ok() ? barrier.status() : per_task.status()).message());
    return 1;
  }
  std::map<std::string, std::vector<size_t>> by_stage;
  for (size_t i = 0; i < plan->jobs.size(); ++i) by_stage[plan->jobs[i].stage].push_back(i);
  nlohmann::json runs = nlohmann::json::array();
  double sum_b = 0, sum_p = 0, sum_bs = 0, sum_ps = 0, min_ratio = 1e9, max_ratio = 0;
  for (int s = 0; s < seeds; ++s) {
    std::mt19937_64 rng(static_cast<uint64_t>(s) + 1);
    std::vector<double> dur(plan->jobs.size());
    std::normal_distribution<double> z(0, sigma);
    for (size_t i = 0; i < dur.size(); ++i) dur[i] = kMedianMin.at(plan->jobs[i].stage) * std::exp(z(rng));
    for (auto& [st, jobs] : by_stage) {
      if (jobs.size() < 2) continue;  // a stage of one job has no spread to straggle in
      std::uniform_int_distribution<size_t> pick(0, jobs.size() - 1);
      dur[jobs[pick(rng)]] *= straggler;
    }
    auto b = simulate(*plan, *barrier, dur, gpus, cores);
    auto p = simulate(*plan, *per_task, dur, gpus, cores);
    sum_b += b.makespan;
    sum_p += p.makespan;
    sum_bs += b.synth_to_eval;
    sum_ps += p.synth_to_eval;
    min_ratio = std::min(min_ratio, b.makespan / p.makespan);
    max_ratio = std::max(max_ratio, b.makespan / p.makespan);
    runs.push_back({{"seed", s + 1}, {"barrier_min", b.makespan}, {"per_task_min", p.makespan},
                    {"barrier_synth_to_eval_min", b.synth_to_eval}, {"per_task_synth_to_eval_min", p.synth_to_eval}});
  }
  const double k = seeds;
  fmt::print("sweep {}: {} jobs, {} GPUs, {} cores, sigma {}, one x{} straggler per stage, {} seeds\n", plan->sweep,
             plan->jobs.size(), gpus, cores, sigma, straggler, seeds);
  fmt::print("{:<10} {:>14} {:>24}\n", "shape", "makespan (h)", "synthesis->eval (h)");
  fmt::print("{:<10} {:>14.2f} {:>24.2f}\n", "barrier", sum_b / k / 60, sum_bs / k / 60);
  fmt::print("{:<10} {:>14.2f} {:>24.2f}\n", "per-task", sum_p / k / 60, sum_ps / k / 60);
  fmt::print("barrier / per-task makespan: mean {:.3f}, per seed {:.3f} .. {:.3f}\n", sum_b / sum_p, min_ratio,
             max_ratio);
  if (!json_out.empty()) {
    nlohmann::json j = {{"sweep", plan->sweep}, {"jobs", plan->jobs.size()}, {"gpus", gpus}, {"cores", cores},
                        {"sigma", sigma}, {"straggler", straggler}, {"median_min", kMedianMin},
                        {"mean_barrier_min", sum_b / k}, {"mean_per_task_min", sum_p / k},
                        {"mean_barrier_synth_to_eval_min", sum_bs / k}, {"mean_per_task_synth_to_eval_min", sum_ps / k},
                        {"runs", runs}};
    if (!write_file_atomic(json_out, j.dump(2) + "\n").ok()) return 1;
  }
  return 0;
}
