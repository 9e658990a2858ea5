// Rerun triggers (`sweep why`, `sweep plan`) and --keep-cache-on-code-change
// over real job directories: a plan is "run" by writing each job's job.yaml,
// hash_inputs.json and an ok result.yaml, then re-planned with one stage's
// code fingerprint edited or an imported file changed.
#include "orchestrator/rerun_trigger.h"

#include <gtest/gtest.h>

#include "common/hash.h"
#include "orchestrator/recorder.h"
#include "results/catalog.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis::orch {
namespace {

using migvis::testing::TempDir;

const std::string kSweep =
    "sweep: t\nanimals: [a1]\nsessions: [s1]\ndata: {params: {preset: tiny, seed: 1}}\n"
    "vae: {grid: {model: [vae, migvis]}}\ndiffusion: {}\ncritic: {}\nsynthesis: {}\neval: {}\n";

sweeps::ExpandOptions with_code(const std::string& edited = "") {
  sweeps::ExpandOptions o;
  for (auto& st : schema::stage_names()) o.code[st] = st + (st == edited ? "-code-2" : "-code-1");
  return o;
}

sweeps::Plan plan_of(const std::string& text, const sweeps::ExpandOptions& o) {
  auto p = sweeps::expand_sweep(text, "t.yaml", o);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : sweeps::Plan{};
}

// What a finished run leaves in each job directory.
void complete(const sweeps::Plan& plan, const fs::path& root) {
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    const fs::path dir = sweeps::job_dir_for(root, j);
    ASSERT_TRUE(schema::write_job_spec(sweeps::job_spec_for(plan, i, root), dir).ok());
    ASSERT_TRUE(write_file_atomic(dir / "hash_inputs.json", j.hash_inputs.dump(2) + "\n").ok());
    schema::JobResult r;
    r.job_id = j.job_id;
    r.stage = j.stage;
    r.finished_at = "2026-11-30T10:00:00Z";
    ASSERT_TRUE(schema::write_job_result(r, dir).ok());
  }
}

TEST(RerunTriggerTest, EditedStageCodeNamesTheStageAndItsDownstreamSayUpstream) {
  TempDir tmp;
  const fs::path root = tmp / "runs";
  auto before = plan_of(kSweep, with_code());
  complete(before, root);
  {
    RerunExplainer ex(root, &before);
    for (auto& j : before.jobs) EXPECT_EQ(ex.explain(j).label, "cached") << j.stage;
  }
  auto after = plan_of(kSweep, with_code("diffusion"));
  RerunExplainer ex(root, &after);
  std::map<std::string, size_t> counts;
  for (auto& j : after.jobs) {
    RerunTrigger t = ex.explain(j);
    ++counts[t.label];
    if (j.stage == "diffusion") {
      EXPECT_EQ(t.label, "code of stage diffusion changed");
      EXPECT_EQ(t.previous_inputs.at("code"), "diffusion-code-1");
    } else if (j.stage == "synthesis" || j.stage == "eval") {
      EXPECT_EQ(t.label, "upstream (code of stage diffusion changed)") << j.stage;
    } else {
      EXPECT_EQ(t.label, "cached") << j.stage;
    }
  }
  EXPECT_EQ(counts["code of stage diffusion changed"], 1u);
  EXPECT_EQ(counts["upstream (code of stage diffusion changed)"], 4u);  // 2 synthesis + 2 eval

  // A param change says so; a job unlike any before is new.
  std::string text = kSweep;
  text.replace(text.find("vae: {grid: {model: [vae, migvis]}}"), 35, "vae: {grid: {model: [vae, migvis, tcvae]}}");
  auto grown = plan_of(text, with_code());
  RerunExplainer ex2(root, &grown);
  std::map<std::string, size_t> c2;
  for (auto& j : grown.jobs) ++c2[ex2.explain(j).label];
  EXPECT_EQ(c2["cached"], before.jobs.size());
  EXPECT_EQ(c2["params changed"], 1u);  // the tcvae job vs the latest vae job of its key
  EXPECT_EQ(c2["upstream (params changed)"], 3u);  // its critic, synthesis, eval
}

TEST(RerunTriggerTest, ChangedImportedFileRerunsDependentsAndAnUnchangedOneDoesNot) {
  TempDir tmp;
  const fs::path root = tmp / "runs";
  const fs::path file = fs::absolute(tmp / "recording.h5");
  ASSERT_TRUE(write_file_atomic(file, "spikes v1").ok());
  const std::string text = "sweep: t\nanimals: [a1]\nsessions: [s1]\ndata: {params: {import: {format: hdf5, path: " +
                           file.string() + "}}}\nvae: {}\ndiffusion: {}\n";
  auto o = with_code();  // file_digest empty: the real file's SHA-256
  auto p1 = plan_of(text, o);
  EXPECT_EQ(p1.jobs[0].hash_inputs.at("data_content"), "sha256:" + sha256_hex("spikes v1"));
  complete(p1, root);
  // Unchanged content (even rewritten, with a new mtime): nothing re-runs.
  ASSERT_TRUE(write_file_atomic(file, "spikes v1").ok());
  auto same = plan_of(text, o);
  RerunExplainer ex_same(root, &same);
  for (auto& j : same.jobs) EXPECT_EQ(ex_same.explain(j).label, "cached") << j.stage;
  // Changed content: the data job and everything depending on it.
  ASSERT_TRUE(write_file_atomic(file, "spikes v2").ok());
  auto p2 = plan_of(text, o);
  RerunExplainer ex(root, &p2);
  for (auto& j : p2.jobs) {
    EXPECT_EQ(ex.explain(j).label, j.stage == "data" ? "dataset file content changed"
                                                     : "upstream (dataset file content changed)")
        << j.stage;
  }
}

TEST(RerunTriggerTest, KeepCacheOnCodeChangeKeepsCompletedJobsAndTheRecordSaysSo) {
  TempDir tmp;
  const fs::path root = fs::absolute(tmp / "runs");
  auto before = plan_of(kSweep, with_code());
  complete(before, root);
  auto o = with_code("vae");
  o.kept_cache = kept_cache_under(root);
  auto kept = plan_of(kSweep, o);
  ASSERT_EQ(kept.jobs.size(), before.jobs.size());
  size_t n_kept = 0;
  for (size_t i = 0; i < kept.jobs.size(); ++i) {
    EXPECT_EQ(kept.jobs[i].job_id, before.jobs[i].job_id) << kept.jobs[i].stage;
    EXPECT_EQ(kept.jobs[i].seed, before.jobs[i].seed);
    n_kept += !kept.jobs[i].kept_from_code.empty();
  }
  EXPECT_EQ(n_kept, 2u);  // the two vae jobs; downstream hashes against them unchanged
  // Without the opt-out the vae jobs and their downstream would run.
  auto fresh = plan_of(kSweep, with_code("vae"));
  EXPECT_NE(fresh.jobs[1].job_id, before.jobs[1].job_id);

  // The catalog's record of a kept job names both fingerprints.
  auto rec = make_catalog_recorder(root);
  ASSERT_TRUE(rec.ok()) << rec.status().message();
  ASSERT_TRUE((*rec)->record_plan(kept, kSweep, root).ok());
  rec->reset();
  auto cat = catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadOnly);
  ASSERT_TRUE(cat.ok());
  auto row = (*cat)->job(kept.jobs[1].job_id);
  ASSERT_TRUE(row.ok() && row->has_value());
  const auto& prov = (*row)->provenance.at("kept_on_code_change");
  EXPECT_EQ(prov.at("code_built"), "vae-code-1");
  EXPECT_EQ(prov.at("code_now"), "vae-code-2");
  auto other = (*cat)->job(kept.jobs[0].job_id);
  EXPECT_FALSE((*other)->provenance.contains("kept_on_code_change"));
}

}  // namespace
}  // namespace migvis::orch
