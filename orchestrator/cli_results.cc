// migvis results query | runs | ingest | tables, and migvis report: everything
// that reads the catalog (schemas/db.md). All but `ingest` open the database
// read-only, so they can run while a sweep writes it.
#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "common/log.h"
#include "orchestrator/cli.h"
#include "results/catalog.h"
#include "results/filters.h"
#include "results/render.h"
#include "results/report.h"
#include "results/tables.h"
#include "schemas/stages.h"

namespace migvis::orch {
namespace {

using catalog::Catalog;

// --root / --db shared by every command: DB = --db, else <root>/migvis.db.
struct DbOptions {
  std::string root = catalog::kDefaultRoot;
  std::string db;
  fs::path db_path() const { return db.empty() ? catalog::db_path_for_root(root) : fs::path(db); }
};

void add_db_options(CLI::App* cmd, DbOptions* o) {
  cmd->add_option("--root", o->root, "migvis root directory (jobs/ and migvis.db)")->capture_default_str();
  cmd->add_option("--db", o->db, "catalog file (default: <root>/migvis.db)");
}

Result<std::unique_ptr<Catalog>> open_ro(const DbOptions& o) { return Catalog::open(o.db_path(), Catalog::Mode::kReadOnly); }

std::vector<std::string> split_commas(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    std::stringstream ss(item);
    std::string x;
    while (std::getline(ss, x, ','))
      if (!x.empty()) out.push_back(x);
  }
  return out;
}

struct QueryArgs {
  DbOptions db;
  std::string sql;
  std::vector<std::string> params;
  std::string format = "table";
  double timeout_s = 30;
  size_t max_rows = 100000;
};

Status run_query(const QueryArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(catalog::TextFormat f, catalog::parse_text_format(a.format));
  MIGVIS_ASSIGN_OR_RETURN(auto cat, open_ro(a.db));
  std::vector<catalog::Value> params(a.params.begin(), a.params.end());
  catalog::QueryLimits limits;
  limits.timeout_s = a.timeout_s;
  limits.max_rows = a.max_rows;
  MIGVIS_ASSIGN_OR_RETURN(catalog::QueryResult r, cat->query(a.sql, params, limits));
  fmt::print("{}", catalog::render(r, f));
  if (r.truncated)
    fmt::print(stderr, "migvis: note: output stopped at {} rows (--max-rows); more rows matched\n", a.max_rows);
  return Status::Ok();
}

struct RunsArgs {
  DbOptions db;
  std::string stage;
  std::vector<std::string> where;
  std::vector<std::string> metrics;
  std::string format = "table";
};

Status run_runs(const RunsArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(catalog::TextFormat f, catalog::parse_text_format(a.format));
  MIGVIS_ASSIGN_OR_RETURN(auto cat, open_ro(a.db));
  catalog::RunsRequest req{a.stage, a.where, split_commas(a.metrics)};
  MIGVIS_ASSIGN_OR_RETURN(catalog::QueryResult r, catalog::run_runs_query(*cat, req));
  fmt::print("{}", catalog::render(r, f));
  return Status::Ok();
}

struct IngestArgs {
  DbOptions db;
  std::vector<std::string> dirs;
  double lock_timeout_s = 600;
};

// Ingests the given job dirs, or every finished one under <root>/jobs/*/*.
Status run_ingest(const IngestArgs& a) {
  std::vector<fs::path> dirs(a.dirs.begin(), a.dirs.end());
  if (dirs.empty()) {
    fs::path jobs = schema::jobs_dir(a.db.root);
    std::error_code ec;
    if (!fs::is_directory(jobs, ec))
      return Status::NotFound(fmt::format("{} does not exist: nothing to ingest (pass --root)", jobs.string()));
    for (auto& stage : fs::directory_iterator(jobs))
      if (stage.is_directory())
        for (auto& job : fs::directory_iterator(stage.path()))
          if (fs::exists(job.path() / "result.yaml")) dirs.push_back(job.path());
    std::sort(dirs.begin(), dirs.end());
  }
  // One writer at a time, across processes and hosts (SLURM ingest jobs of
  // several stages may start together): the lock sits beside the DB file.
  MIGVIS_ASSIGN_OR_RETURN(auto lock, catalog::lock_catalog_for_writing(a.db.db_path(), a.lock_timeout_s));
  MIGVIS_ASSIGN_OR_RETURN(auto cat, Catalog::open(a.db.db_path(), Catalog::Mode::kReadWrite));
  for (const auto& d : dirs) MIGVIS_RETURN_IF_ERROR(cat->ingest_job_dir(d));
  fmt::print("ingested {} job director{} into {}\n", dirs.size(), dirs.size() == 1 ? "y" : "ies",
             a.db.db_path().string());
  return Status::Ok();
}

struct TablesArgs {
  DbOptions db;
  std::string format = "md";
  std::string out_dir;
  bool per_session = false;
};

// Finished job directories under <root>/jobs the catalog does not list as done
// yet (a SLURM ingest job that has not run, a sweep killed before ingesting)
// are ingested first, under the single-writer lock, waiting at most a few
// seconds for it: another writer holding it is ingesting them anyway.
void ingest_new_results(const DbOptions& o) {
  const fs::path jobs = schema::jobs_dir(o.root);
  std::error_code ec;
  if (!o.db.empty() || !fs::is_directory(jobs, ec)) return;
  std::vector<fs::path> finished;
  for (auto& stage : fs::directory_iterator(jobs, ec))
    for (auto& job : fs::directory_iterator(stage.path(), ec))
      if (fs::exists(job.path() / "result.yaml")) finished.push_back(job.path());
  if (finished.empty()) return;
  auto lock = catalog::lock_catalog_for_writing(o.db_path(), 5);
  if (!lock.ok()) {
    MIGVIS_LOG_WARN("not ingesting new results now: {}", lock.status().message());
    return;
  }
  auto cat = Catalog::open(o.db_path(), Catalog::Mode::kReadWrite);
  if (!cat.ok()) return;  // the read-only open below reports it
  auto done = (*cat)->query("SELECT job_id FROM jobs WHERE status = 'done'");
  std::set<std::string> known;
  if (done.ok())
    for (auto& row : done->rows)
      if (auto* id = std::get_if<std::string>(&row.at(0))) known.insert(*id);
  for (auto& d : finished)
    if (!known.count(d.filename().string())) {
      Status st = (*cat)->ingest_job_dir(d);
      if (!st.ok()) MIGVIS_LOG_WARN("ingest {}: {}", d.string(), st.message());
    }
}

// Builds everything first, then writes: a failure leaves --out untouched.
Status run_tables(const TablesArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(catalog::TableFormat f, catalog::parse_table_format(a.format));
  ingest_new_results(a.db);
  MIGVIS_ASSIGN_OR_RETURN(auto cat, open_ro(a.db));
  MIGVIS_ASSIGN_OR_RETURN(std::vector<catalog::PaperTable> tables, catalog::build_paper_tables(*cat, catalog::TableOptions{a.per_session}));
  if (a.out_dir.empty()) {
    for (auto& t : tables) fmt::print("{}", catalog::render_table(t, f));
    return Status::Ok();
  }
  size_t missing = 0;
  for (auto& t : tables) {
    fs::path p = fs::path(a.out_dir) / (t.id + "." + catalog::table_file_extension(f));
    MIGVIS_RETURN_IF_ERROR(write_file_atomic(p, catalog::render_table(t, f)));
    fmt::print("wrote {} ({} rows, {} missing)\n", p.string(), t.rows.size(), t.missing.size());
    for (auto& m : t.missing) fmt::print("  missing: {}\n", m);
    missing += t.missing.size();
  }
  fmt::print("{} tables, {} missing cells or rows\n", tables.size(), missing);
  return Status::Ok();
}

struct ReportArgs {
  DbOptions db;
  std::string out_dir;
};

Status run_report(const ReportArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(auto cat, open_ro(a.db));
  MIGVIS_RETURN_IF_ERROR(catalog::write_report(*cat, a.db.root, a.out_dir));
  fmt::print("wrote {}\n", (fs::path(a.out_dir) / "index.html").string());
  return Status::Ok();
}

}  // namespace

void register_results_commands(CLI::App& app, CommandStatus* out) {
  auto* results = app.add_subcommand("results", "Query the results catalog (SQLite) and regenerate the paper's tables");
  results->require_subcommand(1);

  auto qa = std::make_shared<QueryArgs>();
  auto* q = results->add_subcommand("query", "Run one read-only SQL statement (schemas/db.md lists the tables)");
  add_db_options(q, &qa->db);
  q->add_option("sql", qa->sql, "one SELECT statement; ? placeholders take --param values")->required();
  q->add_option("--param", qa->params, "value bound to the next ? (repeatable)")->allow_extra_args(false);
  q->add_option("--format", qa->format, "table, csv or json")->capture_default_str();
  q->add_option("--timeout", qa->timeout_s, "stop the statement after this many seconds (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  q->add_option("--max-rows", qa->max_rows, "print at most this many rows, with a note when more matched (0: all)")
      ->capture_default_str();
  q->callback([out, qa] { out->set(run_query(*qa)); });

  auto ra = std::make_shared<RunsArgs>();
  auto* r = results->add_subcommand(
      "runs", "List jobs with their key, filtered params and metrics, without SQL.\n"
              "  --where 'animal=a1'  --where 'model in (vae,migvis)'  --where 'w_tc>=1e-6'\n"
              "  --where 'animal=a1 or animal=a2'   (OR inside one --where, AND across them)");
  add_db_options(r, &ra->db);
  r->add_option("--stage", ra->stage, "only jobs of this stage (data, vae, diffusion, critic, synthesis, eval)");
  r->add_option("--where", ra->where, "filter: NAME (=|!=|<|<=|>|>=) VALUE | NAME in (V1,V2,...), joined by 'or'")
      ->allow_extra_args(false);
  r->add_option("--metrics", ra->metrics, "comma-separated scalar metric names to show")->allow_extra_args(false);
  r->add_option("--format", ra->format, "table, csv or json")->capture_default_str();
  r->callback([out, ra] { out->set(run_runs(*ra)); });

  auto ia = std::make_shared<IngestArgs>();
  auto* in = results->add_subcommand(
      "ingest", "Ingest finished job directories into the catalog (default: all under <root>/jobs).\n"
                "Holds the database's single-writer lock (<db>.lock.d beside the file) while it writes.");
  add_db_options(in, &ia->db);
  in->add_option("--lock-timeout", ia->lock_timeout_s,
                 "seconds to wait for another ingester to finish (default 600)")
      ->check(CLI::Range(0.0, 86400.0));
  in->add_option("dirs", ia->dirs, "job directories (default: every <root>/jobs/<stage>/<id> with result.yaml)");
  in->callback([out, ia] { out->set(run_ingest(*ia)); });

  auto ta = std::make_shared<TablesArgs>();
  auto* tb = results->add_subcommand(
      "tables", "Regenerate the paper's 4 tables (both animals side by side; a cell is one configuration, mean ± std\n"
                "over sessions x seeds with its n; schemas/tables.md) from the catalog,\n"
                "listing missing cells (shared/MIGVIS_METHOD.md 'Tables to regenerate'). Finished jobs under\n"
                "<root>/jobs not yet in the catalog are ingested first (idempotent).");
  add_db_options(tb, &ta->db);
  tb->add_option("--format", ta->format, "md, latex or csv")->capture_default_str();
  tb->add_option("--out", ta->out_dir, "write table<N>_<name>.<ext> files here instead of printing");
  tb->add_flag("--per-session", ta->per_session, "one row per session instead of aggregating an animal's sessions");
  tb->callback([out, ta] { out->set(run_tables(*ta)); });

  auto pa = std::make_shared<ReportArgs>();
  auto* rep = app.add_subcommand(
      "report", "Write a static HTML report (tables, training curves, synthesis grids per animal) to --out/index.html");
  add_db_options(rep, &pa->db);
  rep->add_option("--out", pa->out_dir, "output directory (index.html + img/)")->required();
  rep->callback([out, pa] { out->set(run_report(*pa)); });
}

}  // namespace migvis::orch
