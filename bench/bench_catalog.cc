// bench_catalog: how fast the catalog records a sweep and ingests results.
// Usage: bench_catalog [--jobs N] [--json OUT.json]
// Prints a table; writes the same figures as JSON (docs/BENCHMARKS.md).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <string>

#include <fmt/format.h>

#include "results/catalog.h"

using namespace migvis;
using namespace migvis::catalog;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Process CPU seconds: the machine is shared, so wall time alone overstates cost.
double cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::vector<JobRow> make_jobs(int n, int gen) {
  std::vector<JobRow> rows;
  rows.reserve(n);
  for (int i = 0; i < n; ++i) {
    JobRow r;
    r.job_id = fmt::format("{:016x}", i);
    r.hash = fmt::format("{:064x}", i * 7919 + gen);
    r.sweep = "bench";
    r.stage = i % 2 ? "vae" : "synthesis";
    r.key = {{"animal", i % 3 ? "a1" : "a2"}, {"session", fmt::format("s{}", i % 4)}};
    r.params = {{"model", "migvis"}, {"groups", 4}, {"group_rank", 2}, {"hidden", 128}, {"recon", "poisson"},
                {"w_guid", 1.0}, {"w_kl", 1.0}, {"w_tc", 1e-6 * (i % 10)}, {"beta", 1.0}, {"lr", 1e-3},
                {"batch", 64}, {"epochs", 100 + gen}};
    r.seed = i % 5;
    r.dir = "jobs/" + r.stage + "/" + r.job_id;
    r.upstream = {{"dataset", "0000000000000000"}};
    r.provenance = {{"git", "abcdef123456"}, {"host", "vm"}, {"torch", "1.13.1"}};
    rows.push_back(std::move(r));
  }
  return rows;
}
}  // namespace

int main(int argc, char** argv) {
  int n = 10000;
  std::string json_out;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--jobs") && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_out = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_catalog [--jobs N] [--json OUT.json]\n");
      return 64;
    }
  }
  fs::path dir = fs::temp_directory_path() / fmt::format("bench_catalog_{}", ::getpid());
  fs::create_directories(dir);
  auto cat = Catalog::open(dir / "migvis.db", Catalog::Mode::kReadWrite);
  if (!cat.ok()) {
    std::fprintf(stderr, "%s\n", cat.status().to_string().c_str());
    return 70;
  }
  auto rows = make_jobs(n, 0);
  auto t0 = Clock::now();
  double c0 = cpu_s();
  Status s = (*cat)->upsert_jobs(rows);
  double insert_s = seconds_since(t0), insert_cpu = cpu_s() - c0;
  auto rows2 = make_jobs(n, 1);
  t0 = Clock::now();
  c0 = cpu_s();
  if (s.ok()) s = (*cat)->upsert_jobs(rows2);
  double update_s = seconds_since(t0), update_cpu = cpu_s() - c0;
  t0 = Clock::now();
  c0 = cpu_s();
  size_t got = 0;
  if (s.ok()) {
    auto r = (*cat)->jobs_of_sweep("bench");
    if (r.ok()) got = r->size(); else s = r.status();
  }
  double read_s = seconds_since(t0), read_cpu = cpu_s() - c0;
  t0 = Clock::now();
  c0 = cpu_s();
  std::vector<StatusUpdate> ups;
  for (auto& r : rows) ups.push_back({r.job_id, JobStatus::kDone, 1, ""});
  if (s.ok()) s = (*cat)->set_statuses(ups);
  double status_s = seconds_since(t0), status_cpu = cpu_s() - c0;
  fs::remove_all(dir);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 70;
  }
  fmt::print("bench_catalog: {} jobs, 15 queryable params each\n", n);
  fmt::print("{:<34} {:>10} {:>10}\n", "operation", "wall s", "cpu s");
  fmt::print("{:<34} {:>10.3f} {:>10.3f}\n", "upsert_jobs (insert, 1 txn)", insert_s, insert_cpu);
  fmt::print("{:<34} {:>10.3f} {:>10.3f}\n", "upsert_jobs (replace all, 1 txn)", update_s, update_cpu);
  fmt::print("{:<34} {:>10.3f} {:>10.3f}   ({} rows)\n", "jobs_of_sweep", read_s, read_cpu, got);
  fmt::print("{:<34} {:>10.3f} {:>10.3f}\n", "set_statuses (1 txn)", status_s, status_cpu);
  if (!json_out.empty()) {
    std::string j = fmt::format(
        "{{\"bench\": \"catalog\", \"jobs\": {}, \"upsert_insert_s\": {:.4f}, \"upsert_insert_cpu_s\": {:.4f}, "
        "\"upsert_replace_s\": {:.4f}, \"upsert_replace_cpu_s\": {:.4f}, \"jobs_of_sweep_s\": {:.4f}, "
        "\"set_statuses_s\": {:.4f}, \"set_statuses_cpu_s\": {:.4f}}}\n",
        n, insert_s, insert_cpu, update_s, update_cpu, read_s, status_s, status_cpu);
    Status w = write_file_atomic(json_out, j);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.to_string().c_str());
      return 73;
    }
  }
  return 0;
}
