// Sweep grammar: golden expansions of the shipped sweeps, one test per
// feature, and bad inputs (wrong types, unknown keys, cycles, missing upstream,
// empty and huge grids, path traversal) with file:line in the message.
// Regenerate the golden files with MIGVIS_UPDATE_GOLDEN=1.
#include "sweeps/sweep.h"

#include <cstdlib>
#include <set>

#include <gtest/gtest.h>

#include "common/files.h"
#include "common/hash.h"

namespace migvis::sweeps {
namespace {

const std::string kSrc = MIGVIS_SOURCE_DIR;

// A fixed code fingerprint table: golden files must not change with every edit.
schema::CodeFingerprints test_code() {
  schema::CodeFingerprints t;
  for (auto& st : stage_names()) t[st] = st + "-code-1";
  return t;
}

// Imported files are "hashed" by their path in tests (nothing is read).
Result<std::string> fake_digest(const std::string& path) { return sha256_hex("content of " + path); }

ExpandOptions test_opts() {
  ExpandOptions o;
  o.code = test_code();
  o.file_digest = fake_digest;
  return o;
}

Plan expand_ok(const std::string& text) {
  auto r = expand_sweep(text, "t.yaml", test_opts());
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : Plan{};
}

std::string expand_err(const std::string& text, size_t max_jobs = 100000) {
  auto o = test_opts();
  o.max_jobs = max_jobs;
  auto r = expand_sweep(text, "t.yaml", o);
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::vector<const PlannedJob*> of(const Plan& p, const std::string& stage) {
  std::vector<const PlannedJob*> v;
  for (auto& j : p.jobs)
    if (j.stage == stage) v.push_back(&j);
  return v;
}

const std::string kHead = "sweep: t\nanimals: [a1]\nsessions: [s1]\ndata: {params: {preset: tiny, seed: 1}}\n";

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesGoldenFile) {
  const std::string name = GetParam();
  auto r = load_sweep(kSrc + "/sweeps/" + name + ".yaml", test_opts());
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string text = plan_to_text(*r);
  fs::path golden = kSrc + "/tests/sweeps/golden/" + name + ".txt";
  if (std::getenv("MIGVIS_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(golden, text).ok());
  }
  auto want = read_file(golden);
  ASSERT_TRUE(want.ok()) << "missing golden file; run with MIGVIS_UPDATE_GOLDEN=1: " << golden;
  EXPECT_EQ(text, *want) << "expansion of " << name << ".yaml changed; if intended, MIGVIS_UPDATE_GOLDEN=1";
  // Deterministic: a second expansion is identical.
  auto r2 = load_sweep(kSrc + "/sweeps/" + name + ".yaml", test_opts());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(plan_to_text(*r2), text);
}

INSTANTIATE_TEST_SUITE_P(Shipped, GoldenTest, ::testing::Values("tiny", "quickstart", "paper", "ablation"));

TEST(SweepTest, ShippedSweepsHaveTheDocumentedShape) {
  auto q = load_sweep(kSrc + "/sweeps/quickstart.yaml", test_opts());
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto c = q->count_by_stage();
  EXPECT_EQ(c["data"], 1u);
  EXPECT_EQ(c["vae"], 2u * 3u * 2u);        // animals x sessions(all of `default`) x models
  EXPECT_EQ(c["diffusion"], 1u);            // shared by every VAE of the dataset
  EXPECT_EQ(c["critic"], 2u);               // MIG-Vis VAE of session s1 per animal (exclude filters)
  EXPECT_EQ(c["synthesis"], 2u);            // one grid per critic
  EXPECT_EQ(c["eval"], 2u);
  auto p = load_sweep(kSrc + "/sweeps/paper.yaml", test_opts());
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto d = of(*p, "diffusion");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]->params["image_size"], 128);
  EXPECT_EQ(d[0]->params["timesteps"], 150);
  EXPECT_EQ(d[0]->params["steps"], 20000);
  EXPECT_EQ(d[0]->params["mults"], nlohmann::json({1, 2, 4, 8}));
  EXPECT_EQ(p->count_by_stage()["vae"], 2u * 4u * 5u * 3u);  // animals x sessions x models x seeds
}

TEST(SweepTest, GridIsCartesianAndLastAxisVariesFastest) {
  auto p = expand_ok(kHead + "vae:\n  grid:\n    model: [vae, migvis]\n    epochs: [1, 2, 3]\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0]->params["model"], "vae");
  EXPECT_EQ(v[0]->params["epochs"], 1);
  EXPECT_EQ(v[1]->params["epochs"], 2);
  EXPECT_EQ(v[3]->params["model"], "migvis");
  std::set<std::string> ids;
  for (auto* j : v) ids.insert(j->job_id);
  EXPECT_EQ(ids.size(), 6u);
}

TEST(SweepTest, ZipPairsListsInsteadOfCrossingThem) {
  auto p = expand_ok(kHead + "vae:\n  zip:\n    w_kl: [0.001, 0.002]\n    w_tc: [1.0e-7, 4.0e-7]\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_DOUBLE_EQ(v[0]->params["w_kl"].get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(v[0]->params["w_tc"].get<double>(), 1e-7);
  EXPECT_DOUBLE_EQ(v[1]->params["w_kl"].get<double>(), 0.002);
  EXPECT_DOUBLE_EQ(v[1]->params["w_tc"].get<double>(), 4e-7);
}

TEST(SweepTest, UnionConcatenatesSubSweepsOverTheBase) {
  auto p = expand_ok(kHead +
                     "vae:\n  params: {epochs: 3}\n  union:\n    - params: {model: vae}\n"
                     "    - grid: {model: [beta_vae], beta: [2, 4]}\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0]->params["model"], "vae");
  EXPECT_FALSE(v[0]->params.contains("beta"));
  EXPECT_EQ(v[2]->params["beta"], 4);
  for (auto* j : v) EXPECT_EQ(j->params["epochs"], 3);
}

TEST(SweepTest, ChoiceLinspaceLogspace) {
  auto p = expand_ok(kHead + "vae:\n  params:\n    recon: {choice: [mse, poisson]}\n    w_tc: {logspace: [-7, -5, 3]}\n"
                             "    w_kl: {linspace: [0, 1, 3]}\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 2u * 3u * 3u);
  std::set<double> tc, kl;
  for (auto* j : v) {
    tc.insert(j->params["w_tc"].get<double>());
    kl.insert(j->params["w_kl"].get<double>());
  }
  EXPECT_EQ(tc, (std::set<double>{1e-7, 1e-6, 1e-5}));
  EXPECT_EQ(kl, (std::set<double>{0.0, 0.5, 1.0}));
}

TEST(SweepTest, SeedsAndDerivedSeeds) {
  auto p = expand_ok(kHead + "vae:\n  seeds: 3\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0]->seed, 1u);
  EXPECT_EQ(v[2]->seed, 3u);
  EXPECT_TRUE(v[0]->seed_given);
  EXPECT_NE(v[0]->job_id, v[1]->job_id);
  auto p2 = expand_ok(kHead + "vae:\n  seeds: [2024]\n");
  EXPECT_EQ(of(p2, "vae")[0]->seed, 2024u);
  // Without seeds the seed comes from the science identity (the hash without
  // code fingerprints): stable, and differs between jobs.
  auto p3 = expand_ok(kHead + "vae:\n  grid: {epochs: [1, 2]}\n");
  auto v3 = of(p3, "vae");
  EXPECT_FALSE(v3[0]->seed_given);
  EXPECT_NE(v3[0]->seed, v3[1]->seed);
  EXPECT_EQ(v3[0]->seed, std::stoull(v3[0]->science_hash.substr(0, 8), nullptr, 16) & 0x7fffffffULL);
}

TEST(SweepTest, ExcludeFiltersOwnAndUpstreamParams) {
  auto p = expand_ok(kHead + "vae:\n  grid: {model: [vae, migvis], epochs: [1, 2]}\n  exclude:\n"
                             "    - {model: vae, epochs: 2}\n");
  EXPECT_EQ(of(p, "vae").size(), 3u);
  auto p2 = expand_ok(kHead + "vae:\n  grid: {model: [vae, migvis]}\ncritic:\n  exclude: [{vae.model: vae}]\n");
  auto c = of(p2, "critic");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(p2.jobs[c[0]->upstream.at("vae")].params["model"], "migvis");
}

TEST(SweepTest, InterpolationAndUpstreamAxes) {
  // critic cannot read diffusion: not its upstream.
  auto bad = expand_err(kHead + "vae: {}\ndiffusion: {params: {steps: 5}}\ncritic: {params: {epochs: \"${diffusion.steps}\"}}\n");
  EXPECT_NE(bad.find("not upstream of critic"), std::string::npos) << bad;

  auto ok = expand_ok(kHead +
                      "vae:\n  grid: {groups: [2, 3]}\n  params: {epochs: \"${vae.groups}\", batch: \"${data.seed}\"}\n"
                      "diffusion: {params: {steps: 5}}\ncritic: {params: {epochs: \"${vae.epochs}\"}}\n"
                      "synthesis: {params: {gammas: [0, 1]}}\n");
  auto v = of(ok, "vae");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]->params["epochs"], 2);  // typed: a number, not the string "2"
  EXPECT_EQ(v[0]->params["batch"], 1);
  EXPECT_EQ(of(ok, "critic")[1]->params["epochs"], 3);
  auto s = of(ok, "synthesis");
  ASSERT_EQ(s.size(), 2u);
  // groups: from_upstream (the default) = 1..G of *that* VAE.
  EXPECT_EQ(s[0]->params["groups"], nlohmann::json({1, 2}));
  EXPECT_EQ(s[1]->params["groups"], nlohmann::json({1, 2, 3}));
}

TEST(SweepTest, DiffusionIsSharedAndSynthesisWiresEveryInput) {
  auto p = expand_ok(kHead + "vae: {grid: {model: [vae, migvis]}}\ndiffusion: {}\ncritic: {}\nsynthesis: {}\neval: {}\n");
  ASSERT_EQ(of(p, "diffusion").size(), 1u);
  auto s = of(p, "synthesis");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0]->upstream.at("diffusion"), s[1]->upstream.at("diffusion"));
  size_t i = s[0] - p.jobs.data();
  auto spec = job_spec_for(p, i, "/r");
  EXPECT_EQ(spec.inputs.size(), 4u);
  EXPECT_EQ(spec.inputs["dataset"], "/r/jobs/data/" + p.jobs[s[0]->upstream.at("data")].job_id + "/dataset.h5");
  EXPECT_EQ(spec.inputs["critic"], "/r/jobs/critic/" + p.jobs[s[0]->upstream.at("critic")].job_id);
  EXPECT_EQ(spec.key.at("animal"), "a1");
  // Ancestors precede their jobs (topological order).
  for (size_t k = 0; k < p.jobs.size(); ++k)
    for (auto& [st, u] : p.jobs[k].upstream) EXPECT_LT(u, k);
}

TEST(SweepTest, ChangingOneParamChangesOnlyThatJobAndItsDownstream) {
  std::string a = kHead + "vae: {grid: {model: [vae, migvis]}, params: {epochs: 5}}\ndiffusion: {}\ncritic: {}\n";
  std::string b = kHead + "vae: {grid: {model: [vae, migvis]}, params: {epochs: 6}}\ndiffusion: {}\ncritic: {}\n";
  auto pa = expand_ok(a), pb = expand_ok(b);
  ASSERT_EQ(pa.jobs.size(), pb.jobs.size());
  for (size_t i = 0; i < pa.jobs.size(); ++i) {
    bool same = pa.jobs[i].job_id == pb.jobs[i].job_id;
    if (pa.jobs[i].stage == "data" || pa.jobs[i].stage == "diffusion")
      EXPECT_TRUE(same) << pa.jobs[i].stage;
    else
      EXPECT_FALSE(same) << pa.jobs[i].stage;
  }
  // Resources are not hash inputs.
  auto pc = expand_ok(kHead + "vae: {grid: {model: [vae, migvis]}, params: {epochs: 5}, resources: {threads: 4}}\n"
                              "diffusion: {}\ncritic: {}\n");
  for (size_t i = 0; i < pa.jobs.size(); ++i) EXPECT_EQ(pa.jobs[i].job_id, pc.jobs[i].job_id);
  EXPECT_EQ(of(pc, "vae")[0]->resources.threads, 4);
  // Each job hashes its own stage's code fingerprint.
  for (auto& j : pa.jobs) EXPECT_EQ(j.hash_inputs.at("code"), j.stage + "-code-1") << j.stage;
}

// --- code identity ---------------------------------------------------------

const std::string kFull = kHead.substr(0, kHead.find("data:")) +
                          "data: {grid: {seed: [1, 2]}, name: \"d${data.seed}\", params: {preset: tiny}}\n"
                          "vae: {grid: {model: [vae, migvis]}}\ndiffusion: {}\ncritic: {}\nsynthesis: {}\neval: {}\n";

// Editing one stage's code (a second fingerprint table) re-runs exactly that
// stage and its downstream jobs, and no derived seed moves anywhere.
TEST(SweepCodeIdentity, EditingOneStagesCodeInvalidatesExactlyItAndItsDownstream) {
  auto pa = expand_ok(kFull);
  ASSERT_EQ(of(pa, "eval").size(), 4u);
  for (auto& edited : stage_names()) {
    auto o = test_opts();
    o.code[edited] = edited + "-code-2";
    auto pb = expand_sweep(kFull, "t.yaml", o);
    ASSERT_TRUE(pb.ok()) << pb.status().message();
    ASSERT_EQ(pa.jobs.size(), pb->jobs.size());
    size_t changed = 0;
    for (size_t i = 0; i < pa.jobs.size(); ++i) {
      const PlannedJob &a = pa.jobs[i], &b = pb->jobs[i];
      const bool downstream = a.stage == edited || a.upstream.count(edited);
      EXPECT_EQ(a.job_id != b.job_id, downstream) << "edited " << edited << ", job " << a.stage;
      EXPECT_EQ(a.seed, b.seed) << "edited " << edited << ", job " << a.stage;
      EXPECT_EQ(a.science_hash, b.science_hash);
      changed += downstream;
    }
    EXPECT_GT(changed, 0u) << edited;
  }
  // diffusion: itself, synthesis and eval; never data, vae or critic.
  auto o = test_opts();
  o.code["diffusion"] = "diffusion-code-2";
  auto pb = *expand_sweep(kFull, "t.yaml", o);
  for (size_t i = 0; i < pa.jobs.size(); ++i) {
    const std::string& st = pa.jobs[i].stage;
    EXPECT_EQ(pa.jobs[i].job_id != pb.jobs[i].job_id, st == "diffusion" || st == "synthesis" || st == "eval") << st;
  }
}

// The science identity is the job hash as it was before code fingerprints
// (release migvis-0.1.0 and the stage revisions of the time), so the derived
// seeds of existing sweeps did not change. Ids from `migvis sweep plan -v
// sweeps/tiny.yaml` built at 3c0f2ac, the commit before fingerprints.
TEST(SweepCodeIdentity, DerivedSeedsAreThoseOfThePreFingerprintPlan) {
  auto r = load_sweep(kSrc + "/sweeps/tiny.yaml", test_opts());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::vector<std::string> old_ids = {"e87a5cfbcc88bf20", "a427f0031581c243", "7b15189896b20139",
                                            "4c3ee4836f64e035", "2ceb326cfaaf5999", "4901a70dcaaf27c7",
                                            "b866dfcaeeeb08e2", "20ec863a75783186", "1e3573561635f642",
                                            "ac0caf4bc63a3273"};
  ASSERT_EQ(r->jobs.size(), old_ids.size());
  for (size_t i = 0; i < old_ids.size(); ++i) {
    const PlannedJob& j = r->jobs[i];
    EXPECT_EQ(j.science_hash.substr(0, 16), old_ids[i]) << j.stage;
    EXPECT_NE(j.job_id, old_ids[i]) << "the cache key now holds the code fingerprint";
    if (!j.seed_given)
      EXPECT_EQ(j.seed, std::stoull(old_ids[i].substr(0, 8), nullptr, 16) & 0x7fffffffULL) << j.stage;
  }
}

TEST(SweepCodeIdentity, BuiltInTableHasEveryStageAndTestTablesOverrideIt) {
  const auto& t = schema::built_in_code_fingerprints();
  ASSERT_EQ(t.size(), stage_names().size());
  for (auto& st : stage_names()) {
    ASSERT_EQ(t.count(st), 1u) << st << " has no row in cmake/code_fingerprint.cmake";
    EXPECT_EQ(t.at(st).size(), 16u);
    EXPECT_EQ(t.at(st).find_first_not_of("0123456789abcdef"), std::string::npos);
  }
  ExpandOptions o;  // the built-in table
  auto p = expand_sweep(kHead, "t.yaml", o);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->jobs[0].hash_inputs.at("code"), t.at("data"));
  EXPECT_EQ(job_spec_for(*p, 0, "/r").code, t.at("data"));
  EXPECT_EQ(job_spec_for(*p, 0, "/r").science, p->jobs[0].science_hash);
  o.code = {{"data", "x"}};  // a table without the stage
  auto e = expand_sweep(kHead + "vae: {}\n", "t.yaml", o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("no code fingerprint for stage vae"), std::string::npos);
}

// An imported dataset's identity is its file's content: a changed file re-runs
// it and its dependents; the same content does not, whatever else happens.
TEST(SweepCodeIdentity, ImportedFileContentIsPartOfTheIdentity) {
  const std::string text = "sweep: t\nanimals: [a1]\nsessions: [s1]\n"
                           "data: {params: {import: {format: hdf5, path: /data/x.h5}}}\nvae: {}\ndiffusion: {}\n";
  std::string content = "v1";
  auto o = test_opts();
  int reads = 0;
  o.file_digest = [&](const std::string& path) -> Result<std::string> {
    ++reads;
    EXPECT_EQ(path, "/data/x.h5");
    return sha256_hex(content);
  };
  auto p1 = *expand_sweep(text, "t.yaml", o);
  auto p1b = *expand_sweep(text, "t.yaml", o);
  EXPECT_EQ(reads, 2);
  EXPECT_EQ(p1.jobs[0].hash_inputs.at("data_content"), "sha256:" + sha256_hex("v1"));
  for (size_t i = 0; i < p1.jobs.size(); ++i) EXPECT_EQ(p1.jobs[i].job_id, p1b.jobs[i].job_id);
  content = "v2";
  auto p2 = *expand_sweep(text, "t.yaml", o);
  for (size_t i = 0; i < p1.jobs.size(); ++i) EXPECT_NE(p1.jobs[i].job_id, p2.jobs[i].job_id) << p1.jobs[i].stage;
  // Unreadable or relative: an error at plan time, naming the key.
  o.file_digest = [](const std::string& path) -> Result<std::string> { return Status::NotFound(path + ": no such file"); };
  auto e = expand_sweep(text, "t.yaml", o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("data.params.import.path: /data/x.h5: no such file"), std::string::npos)
      << e.status().message();
  e = expand_sweep("sweep: t\ndata: {params: {import: {format: hdf5, path: x.h5}}}\n", "t.yaml", test_opts());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("is relative"), std::string::npos) << e.status().message();
}

// --keep-cache-on-code-change: a completed job of the same science identity
// stands in for the planned one; downstream jobs hash against it.
TEST(SweepCodeIdentity, KeptCacheReplacesTheJobAndDownstreamFollows) {
  auto pa = expand_ok(kFull);
  auto o = test_opts();
  o.code["diffusion"] = "diffusion-code-2";
  o.kept_cache = [&](const PlannedJob& j) -> std::optional<KeptJob> {
    for (auto& old : pa.jobs)
      if (j.stage == "diffusion" && old.science_hash == j.science_hash) return KeptJob{old.hash, old.hash_inputs};
    return std::nullopt;
  };
  auto pb = *expand_sweep(kFull, "t.yaml", o);
  for (size_t i = 0; i < pa.jobs.size(); ++i) {
    EXPECT_EQ(pa.jobs[i].job_id, pb.jobs[i].job_id) << pa.jobs[i].stage;
    EXPECT_EQ(pb.jobs[i].kept_from_code, pb.jobs[i].stage == "diffusion" ? "diffusion-code-2" : "");
  }
}

TEST(SweepTest, SessionsPooledAllAndPerAnimal) {
  auto p = expand_ok("sweep: t\nanimals: [a1, a2]\nsessions: pooled\ndata: {params: {preset: tiny}}\nvae: {}\n");
  auto v = of(p, "vae");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]->key.at("session"), "pooled");
  auto p2 = expand_ok("sweep: t\nanimals: [a1, a2]\nsessions: {a1: [s1, s2], a2: [s3]}\ndata: {params: {preset: tiny}}\nvae: {}\n");
  EXPECT_EQ(of(p2, "vae").size(), 3u);
  auto p3 = expand_ok("sweep: t\nanimals: [a1]\nsessions: all\ndata: {params: {preset: default}}\nvae: {}\n");
  EXPECT_EQ(of(p3, "vae").size(), 3u);
  auto e = expand_err("sweep: t\nanimals: [a1]\nsessions: all\ndata: {params: {import: {format: npz, path: /x}}}\nvae: {}\n");  // fake_digest: nothing read
  EXPECT_NE(e.find("sessions"), std::string::npos) << e;
}

// --- bad inputs ----------------------------------------------------------

TEST(SweepBadInput, WrongTypeNamesFileLineAndKeyPath) {
  std::string e = expand_err(kHead + "vae:\n  params:\n    beta: high\n");
  EXPECT_EQ(e, "t.yaml:7: vae.params.beta: expected a number, got \"high\"");
  e = expand_err(kHead + "vae:\n  grid:\n    epochs: [1, two]\n");
  EXPECT_NE(e.find("t.yaml:7: vae.grid.epochs[1]: expected an integer, got \"two\""), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  params: {model: transformer}\n");
  EXPECT_NE(e.find("one of vae|beta_vae|tcvae|migvis|migvis_unsup"), std::string::npos) << e;
  e = expand_err("sweep: t\nmax_jobs: lots\ndata: {}\n");
  EXPECT_NE(e.find("t.yaml:2: max_jobs: expected an integer"), std::string::npos) << e;
}

TEST(SweepBadInput, UnknownKeys) {
  std::string e = expand_err(kHead + "vae:\n  params:\n    betta: 4\n");
  EXPECT_NE(e.find("t.yaml:7: vae.params.betta: unknown vae parameter"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  gird: {}\n");
  EXPECT_NE(e.find("t.yaml:6: vae.gird: unknown key"), std::string::npos) << e;
  e = expand_err(kHead + "tables: {}\n");
  EXPECT_NE(e.find("t.yaml:5: tables: unknown key"), std::string::npos) << e;
  e = expand_err(kHead + "vae: {exclude: [{nope: 1}]}\n");
  EXPECT_NE(e.find("unknown vae parameter"), std::string::npos) << e;
  e = expand_err(kHead + "vae: {resources: {cores: 3}}\n");
  EXPECT_NE(e.find("vae.resources.cores: unknown key"), std::string::npos) << e;
}

TEST(SweepBadInput, InterpolationCycle) {
  std::string e = expand_err(kHead + "vae:\n  params:\n    epochs: \"${vae.batch}\"\n    batch: \"${vae.epochs}\"\n");
  EXPECT_NE(e.find("interpolation cycle"), std::string::npos) << e;
  EXPECT_NE(e.find("vae.batch -> vae.epochs -> vae.batch"), std::string::npos) << e;
}

TEST(SweepBadInput, MissingUpstream) {
  std::string e = expand_err("sweep: t\nanimals: [a1]\nvae: {}\n");
  EXPECT_NE(e.find("t.yaml:3: vae: missing upstream: vae needs the data stage"), std::string::npos) << e;
  e = expand_err(kHead + "vae: {}\ncritic: {}\nsynthesis: {}\n");
  EXPECT_NE(e.find("synthesis needs the diffusion stage"), std::string::npos) << e;
  e = expand_err(kHead + "vae: {params: {epochs: \"${critic.steps}\"}}\n");
  EXPECT_NE(e.find("stage critic is not defined"), std::string::npos) << e;
}

TEST(SweepBadInput, EmptyGrids) {
  std::string e = expand_err(kHead + "vae:\n  grid:\n    epochs: []\n");
  EXPECT_NE(e.find("t.yaml:7: vae.grid.epochs: empty axis"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  grid: {}\n");
  EXPECT_NE(e.find("empty grid"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  grid: {epochs: {linspace: [1, 5, 0]}}\n");
  EXPECT_NE(e.find("empty axis"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  grid: {model: [vae]}\n  exclude: [{model: vae}]\n");
  EXPECT_NE(e.find("expands to no jobs"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  zip: {epochs: [1, 2], batch: [1]}\n");
  EXPECT_NE(e.find("equal lengths"), std::string::npos) << e;
}

TEST(SweepBadInput, HugeGridsAreRefusedBeforeExpansion) {
  // 10^10 combinations: must fail fast, not allocate.
  std::string e = expand_err(kHead + "vae:\n  grid:\n" +
                             "    w_kl: {linspace: [0, 1, 100000]}\n    w_tc: {linspace: [0, 1, 100000]}\n");
  EXPECT_NE(e.find("more than the limit of 100000"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  seeds: 50\n", 20);
  EXPECT_NE(e.find("limit of 20"), std::string::npos) << e;
  e = expand_err("sweep: t\nmax_jobs: 5\nanimals: [a1]\nsessions: [s1]\ndata: {}\nvae: {seeds: 10}\n");
  EXPECT_NE(e.find("limit of 5"), std::string::npos) << e;
}

TEST(SweepBadInput, PathTraversalThroughNamesIsRejected) {
  for (std::string bad : {"../../etc", "a/b", "..", ".hidden", "/abs", "a b"}) {
    std::string q = "\"" + bad + "\"";
    std::string e = expand_err("sweep: " + q + "\ndata: {}\n");
    EXPECT_NE(e.find("not a safe name"), std::string::npos) << bad << ": " << e;
    e = expand_err("sweep: t\nanimals: [" + q + "]\nsessions: [s1]\ndata: {}\nvae: {}\n");
    EXPECT_NE(e.find("animals[0]"), std::string::npos) << bad << ": " << e;
    e = expand_err("sweep: t\nanimals: [a1]\nsessions: [" + q + "]\ndata: {}\nvae: {}\n");
    EXPECT_NE(e.find("sessions[0]"), std::string::npos) << bad << ": " << e;
    e = expand_err("sweep: t\ndata: {name: " + q + "}\n");
    EXPECT_NE(e.find("data.name"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_TRUE(is_safe_name("a1"));
  EXPECT_TRUE(is_safe_name("s1.v2-x"));
  EXPECT_FALSE(is_safe_name(""));
}

TEST(SweepBadInput, InvalidYamlAndBadRanges) {
  std::string e = expand_err("sweep: t\ndata: {params: [\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  grid: {w_tc: {logspace: [-7, -5]}}\n");
  EXPECT_NE(e.find("expected [start, stop, count]"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  grid: {w_tc: {geomspace: [1, 2, 3]}}\n");
  EXPECT_NE(e.find("unknown range"), std::string::npos) << e;
  e = expand_err("sweep: t\ndata: {params: {import: {format: npz}}}\n");
  EXPECT_NE(e.find("data.params.import: expected a mapping {format"), std::string::npos) << e;
}

TEST(SweepBadInput, DuplicateKeysAreRejectedWithBothLines) {
  // A second `vae:` block would otherwise be silently ignored.
  std::string e = expand_err(kHead + "vae:\n  params: {epochs: 5}\nvae:\n  params: {epochs: 50}\n");
  EXPECT_NE(e.find("t.yaml:7: vae: duplicate key (first at line 5)"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  params: {epochs: 5, epochs: 6}\n");
  EXPECT_NE(e.find("vae.params.epochs: duplicate key"), std::string::npos) << e;
}

TEST(SweepBadInput, NumericRangesAreCheckedAtPlanTime) {
  std::string e = expand_err(kHead + "vae:\n  params:\n    epochs: -5\n");
  EXPECT_EQ(e, "t.yaml:7: vae.params.epochs: expected a value >= 1, got -5");
  e = expand_err(kHead + "vae:\n  grid:\n    lr: [0.001, 0]\n");
  EXPECT_NE(e.find("vae.grid.lr[1]: expected a value > 0, got 0"), std::string::npos) << e;
  e = expand_err(kHead + "vae:\n  params: {w_tc: -0.1}\n");
  EXPECT_NE(e.find("expected a value >= 0"), std::string::npos) << e;
  // In range: fine.
  expand_ok(kHead + "vae:\n  params: {epochs: 1, lr: 1e-4, w_tc: 0}\n");
}

TEST(SweepBadInput, GpusOnAStageThatCannotUseThemAreRefused) {
  std::string e = expand_err("sweep: t\nanimals: [a1]\nsessions: [s1]\ndata: {params: {preset: tiny, seed: 1}, "
                             "resources: {gpus: 1}}\n");
  EXPECT_NE(e.find("t.yaml:4: data.resources.gpus"), std::string::npos) << e;
  expand_ok(kHead + "vae:\n  resources: {gpus: 1}\n");  // every worker stage runs on the job's device
}

}  // namespace
}  // namespace migvis::sweeps
