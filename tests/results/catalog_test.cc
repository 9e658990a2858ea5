#include "results/catalog.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include <fmt/format.h>

#include "common/hash.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis::catalog {
namespace {

using migvis::testing::TempDir;

std::unique_ptr<Catalog> open_rw(const fs::path& p) {
  auto c = Catalog::open(p, Catalog::Mode::kReadWrite);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(c).value() : nullptr;
}

int64_t count(const Catalog& c, const std::string& sql, const std::vector<Value>& params = {}) {
  auto r = c.query(sql, params);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok() || r->rows.empty()) return -1;
  return std::get<int64_t>(r->rows[0][0]);
}

JobRow vae_job(const std::string& id, const std::string& animal, double w_tc, int64_t seed) {
  JobRow r;
  r.job_id = id;
  r.hash = id + "ffff";
  r.sweep = "s";
  r.stage = "vae";
  r.key = {{"animal", animal}, {"session", "s1"}};
  r.params = {{"model", "migvis"}, {"w_tc", w_tc}, {"groups", 4}, {"opt", {{"lr", 0.001}}}};
  r.seed = seed;
  r.dir = "jobs/vae/" + id;
  r.upstream = {{"data", "d0"}};
  r.provenance = {{"git", "abc"}};
  return r;
}

// A finished job directory: job.yaml, result.yaml and out.h5 with a curve.
void make_job_dir(const fs::path& dir, const std::string& id, const std::string& status) {
  schema::JobSpec spec;
  spec.job_id = id;
  spec.hash = id + "00";
  spec.stage = "vae";
  spec.sweep = "quick";
  spec.key = {{"animal", "a1"}, {"session", "s1"}};
  spec.seed = 7;
  spec.params = YAML::Load("{model: vae, w_kl: 1.0, recon: poisson}");
  spec.inputs = {{"dataset", "/abs/root/jobs/data/dd00/dataset.h5"}};
  ASSERT_TRUE(schema::write_job_spec(spec, dir).ok());
  {
    auto af = h5::AtomicFile::create(dir / "out.h5");
    ASSERT_TRUE(af.ok());
    ASSERT_TRUE((*af)->file().write("curves/train_loss", h5::Array<double>({3, 2}, {0, 5.0, 10, 4.0, 20, 3.5})).ok());
    ASSERT_TRUE((*af)->file().write("curves/test_loss", h5::Array<double>({2, 2}, {10, 4.5, 20, 4.1})).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  schema::JobResult res;
  res.job_id = id;
  res.stage = "vae";
  res.status = status;
  res.error = status == "ok" ? "" : "vae: NaN loss at step 12";
  res.exit_code = status == "ok" ? 0 : 65;
  res.started_at = "2026-11-25T18:00:00Z";
  res.finished_at = "2026-11-25T18:03:12Z";
  res.wall_s = 192.4;
  res.host = "node17";
  res.metrics = {{"test_r2", 0.51}, {"mig_group", 0.42}};
  res.artifacts = {{"latents", "out.h5", "/latents"}, {"grid", "grid_pair0.png", ""}};
  ASSERT_TRUE(schema::write_job_result(res, dir).ok());
}

TEST(CatalogTest, CreatesMigratesAndReopens) {
  TempDir tmp;
  auto c = open_rw(tmp / "sub" / "migvis.db");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->schema_version(), Catalog::latest_schema_version());
  EXPECT_GE(Catalog::latest_schema_version(), 1);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM jobs"), 0);
  c.reset();
  c = open_rw(tmp / "sub" / "migvis.db");  // migrations are not re-run
  ASSERT_TRUE(c);
  EXPECT_EQ(c->schema_version(), Catalog::latest_schema_version());
  auto jm = c->query("PRAGMA journal_mode");
  ASSERT_TRUE(jm.ok());
  EXPECT_EQ(std::get<std::string>(jm->rows[0][0]), "wal");
}

// Golden file of the schema text (sqlite_master), so a schema change is a
// deliberate, reviewed edit: regenerate with MIGVIS_UPDATE_GOLDEN=1.
TEST(CatalogTest, SchemaMatchesGoldenFile) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  ASSERT_TRUE(c);
  auto r = c->query("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::string text = "-- user_version " + std::to_string(c->schema_version()) + "\n";
  for (auto& row : r->rows)
    text += "-- " + std::get<std::string>(row[0]) + " " + std::get<std::string>(row[1]) + "\n" +
            std::get<std::string>(row[2]) + ";\n";
  fs::path golden = fs::path(MIGVIS_SOURCE_DIR) / "tests/results/golden/catalog_schema.sql";
  if (std::getenv("MIGVIS_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(golden, text).ok());
  }
  auto want = read_file(golden);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  EXPECT_EQ(text, *want) << "schema changed: add a migration and regenerate with MIGVIS_UPDATE_GOLDEN=1";
}

TEST(CatalogTest, BadFilesGiveClearErrors) {
  TempDir tmp;
  auto missing = Catalog::open(tmp / "nope.db", Catalog::Mode::kReadOnly);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.db"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "nope.db")) << "read-only open must not create the file";

  ASSERT_TRUE(write_file_atomic(tmp / "junk.db", std::string(4096, 'x')).ok());
  for (auto mode : {Catalog::Mode::kReadOnly, Catalog::Mode::kReadWrite}) {
    auto junk = Catalog::open(tmp / "junk.db", mode);
    ASSERT_FALSE(junk.ok());
    EXPECT_EQ(junk.status().code(), StatusCode::kDataLoss) << junk.status().to_string();
    EXPECT_NE(junk.status().message().find("not a database"), std::string::npos) << junk.status().message();
  }
  auto junk_text = read_file(tmp / "junk.db");
  EXPECT_EQ(*junk_text, std::string(4096, 'x')) << "a failed open must not modify the file";

  {
    auto c = open_rw(tmp / "new.db");
    ASSERT_TRUE(c->query("PRAGMA user_version = 99").ok());
  }
  for (auto mode : {Catalog::Mode::kReadOnly, Catalog::Mode::kReadWrite}) {
    auto newer = Catalog::open(tmp / "new.db", mode);
    ASSERT_FALSE(newer.ok());
    EXPECT_EQ(newer.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(newer.status().message().find("newer"), std::string::npos) << newer.status().message();
  }
}

TEST(CatalogTest, UpsertRoundTripsAndFillsParams) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  JobRow a = vae_job("aaaa", "a1", 1e-6, 1);
  a.wall_s = 2.5;
  a.note = "hello";
  ASSERT_TRUE(c->upsert_jobs({a, vae_job("bbbb", "a2", 0.5, 2)}).ok());
  auto got = c->job("aaaa");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, a);
  auto none = c->job("zzzz");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  // Queryable parameters: key fields, params (nested -> dotted), seed.
  auto p = c->query("SELECT name, value_text, value_num FROM job_params WHERE job_id='aaaa' ORDER BY name");
  ASSERT_TRUE(p.ok());
  std::vector<std::string> names;
  for (auto& row : p->rows) names.push_back(std::get<std::string>(row[0]));
  EXPECT_EQ(names, (std::vector<std::string>{"animal", "groups", "model", "opt.lr", "seed", "session", "w_tc"}));
  EXPECT_EQ(count(*c, "SELECT count(*) FROM job_params WHERE name='w_tc' AND value_num >= 1e-6"), 2);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM job_params WHERE name='animal' AND value_text = 'a2'"), 1);

  // Re-upsert replaces the row and its params, keeps metrics, records membership.
  ASSERT_TRUE(c->query("INSERT INTO metrics (job_id, name, step, value) VALUES ('aaaa', 'test_r2', NULL, 0.5)").ok());
  a.params["w_tc"] = 2.0;
  a.sweep = "other";
  a.status = JobStatus::kQueued;
  ASSERT_TRUE(c->upsert_jobs({a}).ok());
  EXPECT_EQ(count(*c, "SELECT count(*) FROM jobs"), 2);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics WHERE job_id='aaaa'"), 1);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM job_params WHERE job_id='aaaa' AND name='w_tc' AND value_num=2"), 1);
  EXPECT_EQ((*c->job("aaaa"))->status, JobStatus::kQueued);
  auto s = c->jobs_of_sweep("s");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 2u);
  EXPECT_EQ(c->jobs_of_sweep("other")->size(), 1u);
  EXPECT_EQ(c->jobs_of_sweep("nope")->size(), 0u);

  // A bad row anywhere rolls back the whole batch.
  JobRow bad = vae_job("", "a1", 0, 0);
  ASSERT_FALSE(c->upsert_jobs({vae_job("cccc", "a1", 0, 3), bad}).ok());
  EXPECT_FALSE(c->job("cccc")->has_value());
}

TEST(CatalogTest, SetStatusAndLastDoneLike) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  ASSERT_TRUE(c->upsert_jobs({vae_job("aaaa", "a1", 0.1, 1), vae_job("bbbb", "a1", 0.2, 1)}).ok());
  ASSERT_TRUE(c->set_status("aaaa", JobStatus::kRunning, 1, "").ok());
  auto a = **c->job("aaaa");
  EXPECT_EQ(a.status, JobStatus::kRunning);
  EXPECT_EQ(a.attempts, 1);
  EXPECT_FALSE(a.started_at.empty());
  EXPECT_TRUE(a.finished_at.empty());
  ASSERT_TRUE(c->set_status("aaaa", JobStatus::kDone, 1, "").ok());
  EXPECT_FALSE((*c->job("aaaa"))->finished_at.empty());
  auto missing = c->set_status("zzzz", JobStatus::kDone, 1, "");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  // set_statuses is all-or-nothing.
  EXPECT_FALSE(c->set_statuses({{"bbbb", JobStatus::kBlocked, 0, "upstream failed"}, {"zzzz", JobStatus::kBlocked, 0, ""}})
                   .ok());
  EXPECT_EQ((*c->job("bbbb"))->status, JobStatus::kPlanned);

  json key = {{"animal", "a1"}, {"session", "s1"}};
  auto last = c->last_done_like("vae", key);
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->job_id, "aaaa");
  EXPECT_FALSE(c->last_done_like("vae", json{{"animal", "a2"}, {"session", "s1"}})->has_value());
  EXPECT_FALSE(c->last_done_like("critic", key)->has_value());
  EXPECT_EQ(parse_job_status("blocked").value(), JobStatus::kBlocked);
  EXPECT_FALSE(parse_job_status("finished").ok());
}

TEST(CatalogTest, IngestIsIdempotentAndReadsCurves) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  fs::path dir = job_dir_for(tmp.path(), "vae", "1234abcd1234abcd");
  make_job_dir(dir, "1234abcd1234abcd", "ok");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c->ingest_job_dir(dir).ok());
    EXPECT_EQ(count(*c, "SELECT count(*) FROM jobs"), 1);
    EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics WHERE step IS NULL"), 2);
    EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics WHERE name='train_loss' AND step IS NOT NULL"), 3);
    EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics WHERE name='test_loss'"), 2);
    EXPECT_EQ(count(*c, "SELECT count(*) FROM artifacts"), 2);
    EXPECT_EQ(count(*c, "SELECT count(*) FROM job_params"), 6);  // animal session model w_kl recon seed
  }
  auto v = c->query("SELECT value FROM metrics WHERE name='train_loss' AND step=20");
  EXPECT_DOUBLE_EQ(std::get<double>(v->rows[0][0]), 3.5);
  auto j = **c->job("1234abcd1234abcd");
  EXPECT_EQ(j.status, JobStatus::kDone);
  EXPECT_EQ(j.host, "node17");
  EXPECT_EQ(j.sweep, "quick");
  EXPECT_EQ(j.seed, 7);
  EXPECT_EQ(j.params["w_kl"], 1.0);
  // A job.yaml without `upstream`: its inputs by stage (dataset -> data).
  EXPECT_EQ(j.upstream, json({{"data", "dd00"}}));
  EXPECT_DOUBLE_EQ(*j.wall_s, 192.4);
  EXPECT_EQ(c->jobs_of_sweep("quick")->size(), 1u);
}

// Ingest believes nothing it has not checked: a forged result.yaml (another
// job's id, artifacts outside the job directory) or a job.yaml whose recorded
// hash does not name its directory is refused with the file and the problem,
// and nothing of it reaches the catalog.
TEST(CatalogTest, IngestRejectsForgedJobDirectoriesAndWritesNothingOfThem) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  const std::string victim = "aaaaaaaaaaaaaaaa";
  make_job_dir(tmp / "jobs/vae" / victim, victim, "ok");
  ASSERT_TRUE(c->ingest_job_dir(tmp / "jobs/vae" / victim).ok());
  const int metrics_before = count(*c, "SELECT count(*) FROM metrics");
  const int artifacts_before = count(*c, "SELECT count(*) FROM artifacts");

  struct Forgery {
    std::string name;
    std::function<void(const fs::path& dir)> forge;
    std::string expect;  // in the message
  };
  const std::vector<Forgery> forgeries = {
      {"another job's id",
       [&](const fs::path& dir) {
         auto r = *schema::read_job_result(dir);
         r.job_id = victim;
         r.metrics = {{"test_r2", 0.99}};
         ASSERT_TRUE(schema::write_job_result(r, dir).ok());
       },
       "job_id aaaaaaaaaaaaaaaa differs from the job directory's name"},
      {"../ artifact",
       [](const fs::path& dir) {
         auto r = *schema::read_job_result(dir);
         r.artifacts.push_back({"grid", "../../aaaaaaaaaaaaaaaa/grid.png", ""});
         ASSERT_TRUE(schema::write_job_result(r, dir).ok());
       },
       "leaves the job directory (..)"},
      {"absolute artifact",
       [](const fs::path& dir) {
         auto r = *schema::read_job_result(dir);
         r.artifacts.push_back({"grid", "/etc/passwd", ""});
         ASSERT_TRUE(schema::write_job_result(r, dir).ok());
       },
       "is absolute"},
      {"symlink escaping",
       [&](const fs::path& dir) {
         fs::create_directory_symlink(tmp / "jobs/vae" / victim, dir / "elsewhere");
         auto r = *schema::read_job_result(dir);
         r.artifacts.push_back({"grid", "elsewhere/out.h5", ""});
         ASSERT_TRUE(schema::write_job_result(r, dir).ok());
       },
       "through a symbolic link"},
      {"hash not naming the directory",
       [](const fs::path& dir) {
         auto s = *schema::read_job_spec(dir);
         s.hash = "0000000000000000ffff";
         ASSERT_TRUE(schema::write_job_spec(s, dir).ok());
       },
       "does not name the job directory"},
      {"hash inputs not hashing to the hash",
       [](const fs::path& dir) {
         auto s = *schema::read_job_spec(dir);
         s.hash = s.job_id + "00";
         ASSERT_TRUE(schema::write_job_spec(s, dir).ok());
         ASSERT_TRUE(write_file_atomic(dir / "hash_inputs.json", "{\"stage\": \"vae\"}\n").ok());
       },
       "hash_inputs.json: hashes to"},
  };
  int i = 0;
  for (const auto& f : forgeries) {
    const std::string id = fmt::format("bbbbbbbbbbbbbb{:02d}", i++);
    const fs::path dir = tmp / "jobs/vae" / id;
    make_job_dir(dir, id, "ok");
    f.forge(dir);
    Status st = c->ingest_job_dir(dir);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << f.name;
    EXPECT_NE(st.message().find(f.expect), std::string::npos) << f.name << ": " << st.message();
    EXPECT_NE(st.message().find(dir.filename().string()), std::string::npos) << f.name << ": names the file";
    EXPECT_FALSE(c->job(id)->has_value()) << f.name;
  }
  // Nothing of any forgery reached the catalog; the victim's row is intact.
  EXPECT_EQ(count(*c, "SELECT count(*) FROM jobs"), 1);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics"), metrics_before);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM artifacts"), artifacts_before);
  auto r2 = c->query("SELECT value FROM metrics WHERE job_id='aaaaaaaaaaaaaaaa' AND name='test_r2'");
  EXPECT_DOUBLE_EQ(std::get<double>(r2->rows.at(0).at(0)), 0.51);

  // A consistent job directory with hash_inputs.json is ingested.
  const fs::path good = tmp / "jobs/vae";
  json inputs = {{"stage", "vae"}, {"params", {{"model", "vae"}}}};
  const std::string hash = sha256_hex(inputs.dump());
  make_job_dir(good / hash.substr(0, 16), hash.substr(0, 16), "ok");
  auto s = *schema::read_job_spec(good / hash.substr(0, 16));
  s.hash = hash;
  ASSERT_TRUE(schema::write_job_spec(s, good / hash.substr(0, 16)).ok());
  ASSERT_TRUE(write_file_atomic(good / hash.substr(0, 16) / "hash_inputs.json", inputs.dump(2)).ok());
  Status ok = c->ingest_job_dir(good / hash.substr(0, 16));
  EXPECT_TRUE(ok.ok()) << ok.to_string();
}

TEST(CatalogTest, ArtifactPathProblems) {
  TempDir tmp;
  fs::create_directories(tmp / "job/sub");
  EXPECT_EQ(schema::artifact_path_problem(tmp / "job", "out.h5"), "");
  EXPECT_EQ(schema::artifact_path_problem(tmp / "job", "sub/../out.h5"), "");
  EXPECT_EQ(schema::artifact_path_problem(tmp / "job", "missing/later.png"), "");
  EXPECT_NE(schema::artifact_path_problem(tmp / "job", ""), "");
  EXPECT_NE(schema::artifact_path_problem(tmp / "job", "."), "");
  EXPECT_NE(schema::artifact_path_problem(tmp / "job", "sub/../../x"), "");
  EXPECT_NE(schema::artifact_path_problem(tmp / "job", "/tmp/x"), "");
  fs::create_symlink("/etc/hostname", tmp / "job/sub/h");
  EXPECT_NE(schema::artifact_path_problem(tmp / "job", "sub/h"), "");
  fs::create_symlink("../sub/../sub", tmp / "job/sub/self");  // stays inside
  EXPECT_EQ(schema::artifact_path_problem(tmp / "job", "sub/self/x"), "");
}

TEST(CatalogTest, IngestFailedResultAndMissingResult) {
  TempDir tmp;
  auto c = open_rw(tmp / "migvis.db");
  fs::path dir = tmp / "jobs/vae/ffff";
  make_job_dir(dir, "ffff", "failed");
  ASSERT_TRUE(c->ingest_job_dir(dir).ok());
  auto j = **c->job("ffff");
  EXPECT_EQ(j.status, JobStatus::kFailed);
  EXPECT_EQ(j.note, "vae: NaN loss at step 12");
  EXPECT_EQ(count(*c, "SELECT count(*) FROM metrics WHERE step IS NOT NULL"), 0);

  fs::path unfinished = tmp / "jobs/vae/eeee";
  fs::create_directories(unfinished);
  auto st = c->ingest_job_dir(unfinished);
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.to_string();
  EXPECT_EQ(c->ingest_job_dir(tmp / "jobs/vae/none").code(), StatusCode::kNotFound);

  // A malformed curve is rejected with its HDF5 path and nothing is written.
  fs::path bad = tmp / "jobs/vae/bbbb";
  make_job_dir(bad, "bbbb", "ok");
  {
    auto af = h5::AtomicFile::create(bad / "out.h5");
    ASSERT_TRUE((*af)->file().write("curves/train_loss", h5::Array<double>({3}, {1, 2, 3})).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  auto bst = c->ingest_job_dir(bad);
  EXPECT_EQ(bst.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bst.message().find("/curves/train_loss"), std::string::npos) << bst.message();
  EXPECT_FALSE(c->job("bbbb")->has_value());
}

TEST(CatalogTest, ReadOnlyRefusesEveryWrite) {
  TempDir tmp;
  fs::path db = tmp / "migvis.db";
  {
    auto c = open_rw(db);
    ASSERT_TRUE(c->upsert_jobs({vae_job("aaaa", "a1", 0.1, 1)}).ok());
  }
  auto ro = Catalog::open(db, Catalog::Mode::kReadOnly);
  ASSERT_TRUE(ro.ok()) << ro.status().to_string();
  auto& c = **ro;
  for (const char* sql : {
           "INSERT INTO jobs (job_id, hash, stage) VALUES ('x', 'x', 'vae')",
           "UPDATE jobs SET status='failed'",
           "DELETE FROM jobs",
           "DROP TABLE jobs",
           "CREATE TABLE t (x)",
           "ATTACH DATABASE 'other.db' AS o",
           "PRAGMA user_version = 5",
           "PRAGMA query_only = 0",
           "SELECT 1; DELETE FROM jobs",
           "BEGIN",
           "VACUUM",
           "REPLACE INTO sweeps (name, created_at) VALUES ('x', 'y')",
       }) {
    auto r = c.query(sql);
    EXPECT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << sql << ": " << r.status().to_string();
  }
  EXPECT_FALSE(fs::exists(tmp / "other.db"));
  EXPECT_EQ(count(c, "SELECT count(*) FROM jobs WHERE status='planned'"), 1);
  EXPECT_EQ(c.upsert_jobs({vae_job("bbbb", "a1", 0.1, 1)}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.set_status("aaaa", JobStatus::kDone, 1, "").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.ingest_job_dir(tmp.path()).code(), StatusCode::kFailedPrecondition);
  // Reads work, with bound parameters.
  auto r = c.query("SELECT job_id FROM jobs WHERE stage = ? AND seed = ?", {std::string("vae"), int64_t{1}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(r->rows[0][0]), "aaaa");
  EXPECT_TRUE((*c.job("aaaa")).has_value());
  // Bad SQL and wrong parameter counts are InvalidArgument.
  EXPECT_EQ(c.query("SELEC nonsense").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.query("SELECT * FROM jobs WHERE job_id=?").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.query("  -- just a comment").status().code(), StatusCode::kInvalidArgument);
}

TEST(CatalogTest, YamlToJson) {
  json j = yaml_to_json(YAML::Load("{a: 1, b: 1.5e-6, c: text, d: [1, two], e: true, f: ~, g: '12', h: {x: 2}}"));
  EXPECT_EQ(j["a"], 1);
  EXPECT_DOUBLE_EQ(j["b"].get<double>(), 1.5e-6);
  EXPECT_EQ(j["c"], "text");
  EXPECT_EQ(j["d"], json::array({1, "two"}));
  EXPECT_EQ(j["e"], true);
  EXPECT_TRUE(j["f"].is_null());
  EXPECT_EQ(j["g"], "12");  // quoted: stays a string
  EXPECT_EQ(j["h"]["x"], 2);
  EXPECT_EQ(value_to_string(Value(0.1)), "0.1");
  EXPECT_EQ(value_to_string(Value(int64_t{3})), "3");
  EXPECT_EQ(value_to_string(Value()), "");
}

}  // namespace
}  // namespace migvis::catalog
