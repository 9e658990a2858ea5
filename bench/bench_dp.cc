// Data-parallel diffusion training throughput: 1 rank x 1 thread, 1 rank x 2
// threads and 2 ranks x 1 thread (mpirun), the fraction of step time spent in
// the gradient all-reduce, and the scaling efficiency at 2 ranks
//   efficiency = images/s(2 ranks x 1 thread) / (2 x images/s(1 rank x 1 thread)).
// The driver re-runs this program under mpirun for each layout (--child) and
// prints a table; JSON to --json. Model: the CPU-default UNet (32x32, width 32,
// mults 1,2,2), global batch --batch (split over ranks), Adam, clip 1.0.
//   build/bench/bench_dp [--steps 6] [--batch 64] [--json bench_dp.json]
//                        [--synthesis-job DIR --worker PATH]
// With --synthesis-job (a finished or planned synthesis job directory), its grid
// is also run by the real worker on 1 rank x 2 threads and 2 ranks x 1 thread
// (copies of its job.yaml in temporary directories) and the images/s compared.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "schemas/job_spec.h"
#include "worker/comm.h"
#include "worker/diffusion/train.h"

using namespace migvis;
using namespace migvis::worker;
using Clock = std::chrono::steady_clock;

namespace {

// Forwards to another communicator and accumulates the time of all-reduces.
class TimingCommunicator final : public Communicator {
 public:
  explicit TimingCommunicator(Communicator* inner) : inner_(inner) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  Status all_reduce_mean(std::vector<at::Tensor>& ts) override {
    auto t0 = Clock::now();
    Status st = inner_->all_reduce_mean(ts);
    allreduce_s += std::chrono::duration<double>(Clock::now() - t0).count();
    return st;
  }
  Status broadcast(std::vector<at::Tensor>& ts, int root) override { return inner_->broadcast(ts, root); }
  Status barrier() override { return inner_->barrier(); }
  Result<at::Tensor> gather_rows(const at::Tensor& t, int root) override { return inner_->gather_rows(t, root); }
  double allreduce_s = 0;

 private:
  Communicator* inner_;
};

int child(int steps, int64_t batch, int threads, const std::string& out) {
  at::set_num_threads(threads);
  SingleProcessCommunicator single;
  std::unique_ptr<Communicator> mpi;
#ifdef MIGVIS_HAVE_MPI
  if (launched_under_mpi()) mpi = make_mpi_communicator();
#endif
  TimingCommunicator comm(mpi ? mpi.get() : &single);
  torch::manual_seed(3);
  torch::Tensor all = torch::rand({512, 1, 32, 32}) * 2 - 1;
  Shard s = shard_for(512, comm.rank(), comm.size());
  diffusion::UNetOptions u;  // CPU default: 32x32, width 32, mults 1,2,2
  diffusion::TrainOptions o;
  o.steps = steps + 1;
  o.batch = batch;
  o.grad_accum = 1;
  o.seed = 1;
  diffusion::DiffusionTrainer tr(u, diffusion::NoiseSchedule(diffusion::ScheduleOptions{}), o,
                                 all.slice(0, s.begin, s.end), &comm);
  if (!tr.train_step().ok()) return 1;  // warm-up (allocations, oneDNN kernels)
  (void)comm.barrier();
  comm.allreduce_s = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i)
    if (!tr.train_step().ok()) return 1;
  (void)comm.barrier();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (comm.rank() == 0) {
    nlohmann::json j = {{"ranks", comm.size()},        {"threads", threads},
                        {"steps", steps},              {"global_batch", batch},
                        {"wall_s", wall},              {"images_per_s", steps * batch / wall},
                        {"allreduce_s", comm.allreduce_s}, {"allreduce_fraction", comm.allreduce_s / wall}};
    std::ofstream(out) << j.dump(2);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 6, threads = 1;
  int64_t batch = 64;
  bool is_child = false;
  std::string json = "bench_dp.json", out, synthesis_job, worker;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--steps") steps = std::stoi(next());
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--json") json = next();
    else if (a == "--child") is_child = true;
    else if (a == "--out") out = next();
    else if (a == "--synthesis-job") synthesis_job = next();
    else if (a == "--worker") worker = next();
    else {
      fmt::print(stderr, "usage: bench_dp [--steps N] [--batch B] [--json FILE]\n");
      return 64;
    }
  }
  if (is_child) return child(steps, batch, threads, out);

  char self[4096] = {0};
  if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) return 1;
  struct Layout { int ranks, threads; };
  const Layout layouts[] = {{1, 1}, {1, 2}, {2, 1}};
  nlohmann::json results = nlohmann::json::array();
  for (auto& l : layouts) {
    std::string tmp = fmt::format("/tmp/bench_dp_{}_{}x{}.json", getpid(), l.ranks, l.threads);
    std::string cmd = fmt::format(
        "OMP_NUM_THREADS={} mpirun --allow-run-as-root --oversubscribe --bind-to none -np {} {} --child "
        "--threads {} --steps {} --batch {} --out {}",
        l.threads, l.ranks, self, l.threads, steps, batch, tmp);
    if (std::system(cmd.c_str()) != 0) {
      fmt::print(stderr, "bench_dp: failed: {}\n", cmd);
      return 1;
    }
    std::ifstream in(tmp);
    results.push_back(nlohmann::json::parse(in));
    std::remove(tmp.c_str());
  }
  double one = results[0]["images_per_s"], two_threads = results[1]["images_per_s"], two_ranks = results[2]["images_per_s"];
  double efficiency = two_ranks / (2 * one);
  fmt::print("UNet 32x32x1, width 32, mults (1,2,2), global batch {}, {} timed steps\n", batch, steps);
  fmt::print("| layout | images/s | all-reduce share of step time |\n|---|---|---|\n");
  for (auto& r : results)
    fmt::print("| {} rank(s) x {} thread(s) | {:.1f} | {:.1f}% |\n", r["ranks"].get<int>(), r["threads"].get<int>(),
               r["images_per_s"].get<double>(), 100 * r["allreduce_fraction"].get<double>());
  fmt::print("scaling efficiency at 2 ranks (vs 2 x 1 rank x 1 thread): {:.2f}\n", efficiency);
  fmt::print("2 ranks x 1 thread vs 1 rank x 2 threads: {:.2f}x\n", two_ranks / two_threads);
  nlohmann::json all = {{"layouts", results}, {"scaling_efficiency_2_ranks", efficiency},
                        {"ranks_vs_threads", two_ranks / two_threads}};
  if (!synthesis_job.empty()) {
    auto spec = schema::read_job_spec(synthesis_job);
    if (!spec.ok() || worker.empty()) {
      fmt::print(stderr, "bench_dp: --synthesis-job needs a job dir with job.yaml and --worker: {}\n",
                 spec.status().to_string());
      return 65;
    }
    // Chunks of 8 items: ranks split the grid by whole chunks.
    spec->params["chunk"] = 8;
    nlohmann::json syn = nlohmann::json::array();
    fmt::print("\nsynthesis grid of {} on the real worker\n| layout | images/s |\n|---|---|\n", synthesis_job);
    for (auto& l : {Layout{1, 2}, Layout{2, 1}}) {
      fs::path dir = fs::temp_directory_path() / fmt::format("bench_dp_syn_{}_{}x{}", getpid(), l.ranks, l.threads);
      if (!schema::write_job_spec(*spec, dir).ok()) return 1;
      std::string cmd = fmt::format(
          "OMP_NUM_THREADS={0} mpirun --allow-run-as-root --oversubscribe --bind-to none -np {1} {2} --threads {0} "
          "--log-level warn --job {3}", l.threads, l.ranks, worker, dir.string());
      if (std::system(cmd.c_str()) != 0) return 1;
      auto r = schema::read_job_result(dir);
      if (!r.ok()) return 1;
      double ips = r->metrics["images_per_s"];
      fmt::print("| {} rank(s) x {} thread(s) | {:.2f} |\n", l.ranks, l.threads, ips);
      syn.push_back({{"ranks", l.ranks}, {"threads", l.threads}, {"images_per_s", ips}});
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    double ratio = syn[1]["images_per_s"].get<double>() / syn[0]["images_per_s"].get<double>();
    fmt::print("synthesis: 2 ranks x 1 thread vs 1 rank x 2 threads: {:.2f}x\n", ratio);
    all["synthesis"] = {{"job", synthesis_job}, {"layouts", syn}, {"ranks_vs_threads", ratio}};
  }
  std::ofstream(json) << all.dump(2);
  fmt::print("wrote {}\n", json);
  return 0;
}
