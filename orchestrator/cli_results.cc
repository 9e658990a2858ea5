// migvis results query | runs | ingest | tables, and migvis report: everything
// that reads the catalog (schemas/db.md). All but `ingest` open the database
// read-only, so they can run while a sweep writes it.
#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "orchestrator/cli.h"
#include "results/catalog.h"
#include "results/filters.h"
#include "results/render.h"

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
};

Status run_query(const QueryArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(catalog::TextFormat f, catalog::parse_text_format(a.format));
  MIGVIS_ASSIGN_OR_RETURN(auto cat, open_ro(a.db));
  std::vector<catalog::Value> params(a.params.begin(), a.params.end());
  MIGVIS_ASSIGN_OR_RETURN(catalog::QueryResult r, cat->query(a.sql, params));
  fmt::print("{}", catalog::render(r, f));
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
};

// Ingests the given job dirs, or every finished one under <root>/jobs/*/*.
Status run_ingest(const IngestArgs& a) {
  std::vector<fs::path> dirs(a.dirs.begin(), a.dirs.end());
  if (dirs.empty()) {
    fs::path jobs = fs::path(a.db.root) / "jobs";
    std::error_code ec;
    if (!fs::is_directory(jobs, ec))
      return Status::NotFound(fmt::format("{} does not exist: nothing to ingest (pass --root)", jobs.string()));
    for (auto& stage : fs::directory_iterator(jobs))
      if (stage.is_directory())
        for (auto& job : fs::directory_iterator(stage.path()))
          if (fs::exists(job.path() / "result.yaml")) dirs.push_back(job.path());
    std::sort(dirs.begin(), dirs.end());
  }
  MIGVIS_ASSIGN_OR_RETURN(auto cat, Catalog::open(a.db.db_path(), Catalog::Mode::kReadWrite));
  for (const auto& d : dirs) MIGVIS_RETURN_IF_ERROR(cat->ingest_job_dir(d));
  fmt::print("ingested {} job director{} into {}\n", dirs.size(), dirs.size() == 1 ? "y" : "ies",
             a.db.db_path().string());
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
                "Writes the DB: do not run while `migvis sweep run` works on the same root.");
  add_db_options(in, &ia->db);
  in->add_option("dirs", ia->dirs, "job directories (default: every <root>/jobs/<stage>/<id> with result.yaml)");
  in->callback([out, ia] { out->set(run_ingest(*ia)); });
}

}  // namespace migvis::orch
