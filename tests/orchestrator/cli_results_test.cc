// migvis results query | runs | ingest as real processes: output formats, exit
// codes, and that nothing can write through them.
#include <gtest/gtest.h>

#include "common/dir_lock.h"

#include "results/catalog.h"
#include "tests/results/demo_catalog.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;
using migvis::testing::TempDir;

class CliResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = catalog::Catalog::open(db(), catalog::Catalog::Mode::kReadWrite);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(migvis::testing::fill_demo_catalog(**c, tmp_.path()).ok());
  }
  fs::path db() const { return tmp_ / "migvis.db"; }
  migvis::testing::RunResult migvis(const std::string& args) {
    return run_command(migvis::testing::migvis_bin() + " " + args);
  }
  std::string snapshot() {  // all rows of all tables, to prove nothing changed
    std::string s;
    for (const char* t : {"sweeps", "jobs", "job_params", "metrics", "artifacts", "sweep_jobs"})
      s += migvis("results query --db " + db().string() + " --format csv 'SELECT * FROM " + t + "'").output;
    return s;
  }
  TempDir tmp_;
};

TEST_F(CliResultsTest, QueryFormats) {
  auto r = migvis("results query --root " + tmp_.path().string() +
                  " \"SELECT stage, count(*) AS n FROM jobs GROUP BY stage ORDER BY stage\" --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "stage,n\neval,4\nsynthesis,2\nvae,34\n");
  r = migvis("results query --db " + db().string() + " --param a2 --param 2 --format json "
             "'SELECT job_id, seed FROM jobs WHERE stage = \"eval\" AND key LIKE \"%\" || ? || \"%\" AND seed = ?'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = catalog::json::parse(r.output);
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["seed"], 2);
  r = migvis("results query --db " + db().string() + " 'SELECT 1.5 AS x, NULL AS y, \"t\" AS z'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1.5"), std::string::npos);
  EXPECT_NE(r.output.find("NULL"), std::string::npos);
  EXPECT_NE(r.output.find("(1 row)"), std::string::npos);
}

TEST_F(CliResultsTest, QueryHasATimeLimitAndARowCap) {
  // A recursive CTE that never ends is stopped by --timeout (exit 75, says why).
  auto r = migvis("results query --db " + db().string() + " --timeout 0.5 "
                  "'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c'");
  EXPECT_EQ(r.exit_code, 75) << r.output;
  EXPECT_NE(r.output.find("time limit of 0.5 s"), std::string::npos) << r.output;
  // A long result is cut at --max-rows with a note; the rows printed are the first ones.
  r = migvis("results query --db " + db().string() + " --max-rows 3 --format csv "
             "'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000) SELECT x FROM c'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("x\n1\n2\n3\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("\n4\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stopped at 3 rows"), std::string::npos) << r.output;
}

TEST_F(CliResultsTest, QueryRefusesWritesAndNothingChanges) {
  std::string before = snapshot();
  ASSERT_NE(before.find("job_id"), std::string::npos);
  for (const char* sql : {"INSERT INTO sweeps (name, created_at) VALUES (\"x\", \"y\")", "UPDATE jobs SET status=\"failed\"",
                          "DELETE FROM metrics", "DROP TABLE jobs", "ATTACH DATABASE \"evil.db\" AS e",
                          "PRAGMA user_version = 7", "PRAGMA journal_mode = DELETE", "SELECT 1; DROP TABLE jobs",
                          "CREATE TABLE t (x)"}) {
    auto r = migvis("results query --db " + db().string() + " '" + sql + "'");
    EXPECT_EQ(r.exit_code, 65) << sql << "\n" << r.output;
    EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_FALSE(fs::exists(tmp_ / "evil.db"));
  EXPECT_FALSE(fs::exists("evil.db"));
}

TEST_F(CliResultsTest, BadInputsExit65Or66AndWriteNothing) {
  auto r = migvis("results query --db " + (tmp_ / "none.db").string() + " 'SELECT 1'");
  EXPECT_EQ(r.exit_code, 66) << r.output;
  EXPECT_NE(r.output.find("none.db"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp_ / "none.db"));
  r = migvis("results runs --root " + (tmp_ / "noroot").string() + " --stage vae");
  EXPECT_EQ(r.exit_code, 66) << r.output;
  EXPECT_FALSE(fs::exists(tmp_ / "noroot"));
  ASSERT_TRUE(write_file_atomic(tmp_ / "junk.db", "this is not sqlite, just text that is long enough").ok());
  r = migvis("results query --db " + (tmp_ / "junk.db").string() + " 'SELECT 1'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("not a database"), std::string::npos) << r.output;
  EXPECT_EQ(*read_file(tmp_ / "junk.db"), "this is not sqlite, just text that is long enough");
  r = migvis("results query --db " + db().string() + " 'SELEC oops'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("syntax error"), std::string::npos) << r.output;
  r = migvis("results query --db " + db().string() + " 'SELECT * FROM nosuch'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  r = migvis("results query --db " + db().string() + " --format xml 'SELECT 1'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  r = migvis("results runs --db " + db().string() + " --stage vae --where 'animal=a1 and'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  r = migvis("results runs --db " + db().string() + " --stage vae --where 'tc_weight>=1e-6'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("unknown name 'tc_weight'"), std::string::npos) << r.output;
}

TEST_F(CliResultsTest, RunsWithFiltersAndInjection) {
  std::string before = snapshot();
  auto r = migvis("results runs --db " + db().string() +
                  " --stage vae --where 'animal=a1' --where 'model in (vae,migvis)' --where 'w_tc>=1e-6'"
                  " --metrics test_r2,mig_group --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // header + migvis x3 (w_tc 1e-6) + migvis w_tc 1e-3 x2
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1 + 3 + 2) << r.output;
  EXPECT_EQ(r.output.rfind("job_id,stage,status,animal,session,model,w_tc,test_r2,mig_group\n", 0), 0u) << r.output;
  r = migvis("results runs --db " + db().string() + " --stage vae --where \"animal=a1' OR 1=1 --\"");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  r = migvis("results runs --db " + db().string() + " --stage vae --where \"animal='a1'' OR 1=1 --'\" --format csv");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "job_id,stage,status,animal\n");
  r = migvis("results runs --db " + db().string() + " --where 'x; DROP TABLE jobs'");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_EQ(snapshot(), before);
}

TEST_F(CliResultsTest, TablesToFilesAndBadInputWritesNothing) {
  fs::path out = tmp_ / "tables";
  auto r = migvis("results tables --db " + db().string() + " --format latex --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"table1_reconstruction.tex", "table2_selectivity.tex", "table3_guidance.tex",
                        "table4_ablation.tex"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_NE(r.output.find("missing: a2 / tcvae: no done jobs"), std::string::npos) << r.output;
  r = migvis("results tables --root " + tmp_.path().string() + " --format md");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("### Table 4: Ablations"), std::string::npos);
  fs::path out2 = tmp_ / "tables2";
  r = migvis("results tables --db " + (tmp_ / "nope.db").string() + " --out " + out2.string());
  EXPECT_EQ(r.exit_code, 66) << r.output;
  r = migvis("results tables --db " + db().string() + " --format docx --out " + out2.string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_FALSE(fs::exists(out2));
}

// A finished vae job directory (job.yaml + an ok result.yaml with test_r2 0.25).
void write_finished_vae_job(const fs::path& dir) {
  fs::create_directories(dir);
  ASSERT_TRUE(write_file_atomic(dir / "job.yaml",
                                "format: migvis-job/1\njob_id: 00000000000000aa\nhash: 00000000000000aa000000000000000000000000000000000000000000000000\nstage: vae\nsweep: q\n"
                                "key: {animal: a1, session: s1}\nseed: 3\nparams: {model: vae}\n")
                  .ok());
  ASSERT_TRUE(write_file_atomic(dir / "result.yaml",
                                "format: migvis-result/1\njob_id: 00000000000000aa\nstage: vae\nstatus: ok\n"
                                "metrics: {test_r2: 0.25}\n")
                  .ok());
}

TEST(CliResultsIngestTest, IngestsAJobTree) {
  TempDir tmp;
  write_finished_vae_job(tmp / "jobs/vae/00000000000000aa");
  fs::create_directories(tmp / "jobs/vae/00000000000000bb");  // unfinished: skipped
  for (int i = 0; i < 2; ++i) {
    auto r = run_command(migvis::testing::migvis_bin() + " results ingest --root " + tmp.path().string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("ingested 1 job directory"), std::string::npos) << r.output;
  }
  auto r = run_command(migvis::testing::migvis_bin() + " results runs --root " + tmp.path().string() +
                       " --metrics test_r2 --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "job_id,stage,status,animal,session,test_r2\n00000000000000aa,vae,done,a1,s1,0.25\n");
}

// The lock every catalog writer takes: ingest waits for a live holder (up to
// --lock-timeout, then fails naming it), and `results tables` ingests new
// finished jobs itself when the lock is free.
TEST(CliResultsIngestTest, IngestWaitsForTheSingleWriterLockAndTablesIngestsNewJobs) {
  TempDir tmp;
  write_finished_vae_job(tmp / "jobs/vae/00000000000000aa");
  {
    auto held = DirLock::acquire(tmp / "migvis.db.lock.d");  // this (live) process holds it
    ASSERT_TRUE(held.ok());
    auto r = run_command(migvis::testing::migvis_bin() + " results ingest --lock-timeout 1 --root " + tmp.path().string());
    EXPECT_EQ(r.exit_code, 75) << "unavailable: try again later\n" << r.output;
    EXPECT_NE(r.output.find("still held by"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(tmp / "migvis.db")) << "nothing written without the lock";
    // Naming the database file instead of the root takes the same lock.
    r = run_command(migvis::testing::migvis_bin() + " results ingest --lock-timeout 1 --root " + tmp.path().string() +
                    " --db " + (tmp / "migvis.db").string());
    EXPECT_EQ(r.exit_code, 75) << "--db locks beside the same file\n" << r.output;
  }
  auto r = run_command(migvis::testing::migvis_bin() + " results tables --format md --root " + tmp.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "migvis.db.lock.d")) << "released";
  r = run_command(migvis::testing::migvis_bin() + " results runs --root " + tmp.path().string() + " --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("00000000000000aa,vae,done"), std::string::npos) << "tables ingested the job:\n" << r.output;
}

}  // namespace
}  // namespace migvis
