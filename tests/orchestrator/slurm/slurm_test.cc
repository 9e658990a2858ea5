// Unit tests of the SLURM backend's pure parts and the submitter, against a
// fake CommandRunner. Nothing here needs SLURM installed.
#include "orchestrator/slurm/slurm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "orchestrator/slurm/submit.h"
#include "tests/test_util.h"

namespace migvis::slurm {
namespace {

using ::testing::ElementsAre;

TEST(SlurmParseTest, StatesIncludingOddOnes) {
  EXPECT_EQ(parse_state("COMPLETED"), JobState::kCompleted);
  EXPECT_EQ(parse_state("CANCELLED by 0"), JobState::kCancelled);
  EXPECT_EQ(parse_state("OUT_OF_MEMORY"), JobState::kOutOfMemory);
  EXPECT_EQ(parse_state("OUT_OF_ME+"), JobState::kOutOfMemory);
  EXPECT_EQ(parse_state("PREEMPTED"), JobState::kPreempted);
  EXPECT_EQ(parse_state("NODE_FAIL"), JobState::kNodeFail);
  EXPECT_EQ(parse_state("TIMEOUT"), JobState::kTimeout);
  EXPECT_EQ(parse_state("REQUEUED"), JobState::kRequeued);
  EXPECT_EQ(parse_state("PD"), JobState::kPending);
  EXPECT_EQ(parse_state("BANANA"), JobState::kUnknown);
  EXPECT_FALSE(is_terminal(JobState::kRequeued));
  EXPECT_TRUE(is_terminal(JobState::kPreempted));
}

TEST(SlurmParseTest, SacctRecordsAndClassification) {
  const char* text =
      "12_0|COMPLETED|0:0|0:0\n"
      "12_0.batch|COMPLETED|0:0|\n"
      "12_1|FAILED|65:0|0:0\n"
      "12_2|OUT_OF_MEMORY|0:125|0:0\n"
      "12_3|TIMEOUT|0:0|0:0\n"
      "12_4|PREEMPTED|0:15|0:0\n"
      "12_5|NODE_FAIL|0:0|0:0\n"
      "12_6|FAILED|75:0|0:0\n"
      "12_7|CANCELLED by 0|0:0|0:0\n"
      "12_[8-9]|PENDING|0:0|0:0\n"
      "13|REQUEUED|0:0|0:0\n";
  auto r = parse_sacct(text);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 11u);  // the step is skipped; the unstarted remainder expands to 2 tasks
  auto& v = *r;
  EXPECT_EQ(v[0].array_job_id, 12);
  EXPECT_EQ(v[0].array_task, 0);
  EXPECT_EQ(classify(v[0]), Outcome::kDone);
  EXPECT_EQ(v[1].exit_code, 65);
  EXPECT_EQ(classify(v[1]), Outcome::kAppError);
  EXPECT_EQ(classify(v[2]), Outcome::kOutOfMemory);
  EXPECT_EQ(classify(v[3]), Outcome::kTimeout);
  EXPECT_EQ(classify(v[4]), Outcome::kTemporary);
  EXPECT_EQ(classify(v[5]), Outcome::kNodeFail);
  EXPECT_EQ(classify(v[6]), Outcome::kTemporary) << "exit 75 = checkpointed, requeue";
  EXPECT_EQ(classify(v[7]), Outcome::kCancelled);
  EXPECT_EQ(v[8].job_id, "12_8");
  EXPECT_EQ(v[9].array_task, 9);
  EXPECT_EQ(classify(v[9]), Outcome::kStillQueued);
  EXPECT_EQ(v[10].array_task, -1);
  EXPECT_EQ(classify(v[10]), Outcome::kStillQueued);
  EXPECT_FALSE(counts_against_retries(Outcome::kTemporary)) << "preemption must not use up retries";
  EXPECT_FALSE(counts_against_retries(Outcome::kNodeFail));
  EXPECT_TRUE(counts_against_retries(Outcome::kAppError));
}

TEST(SlurmParseTest, MalformedSacctNamesTheLine) {
  auto r = parse_sacct("12_0|COMPLETED|0:0|0:0\ngarbage\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
  EXPECT_FALSE(parse_sacct("12|COMPLETED|zero|0:0").ok());
}

TEST(SlurmParseTest, SqueueAndArrayExpansion) {
  auto r = parse_squeue("7_[2-4,9%2]|PENDING|Dependency\n7_1|RUNNING|None\n8|PENDING|DependencyNeverSatisfied\n");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[2].reason, "DependencyNeverSatisfied");
  EXPECT_THAT(expand_array_id((*r)[0].job_id), ElementsAre("7_2", "7_3", "7_4", "7_9"));
  EXPECT_THAT(expand_array_id("7_1"), ElementsAre("7_1"));
}

// A hostile value must reach the command as one literal argument and never run.
TEST(SlurmRenderTest, HostileJobDirsNeverExecute) {
  migvis::testing::TempDir tmp;
  const std::string hostile = (tmp / "a$(touch PWNED1)`touch PWNED2`'\"x\n;touch PWNED3 @COMMAND@").string();
  fs::create_directories(hostile);  // the script appends the worker's output to <dir>/run.log
  fs::path record = tmp / "args.txt";
  fs::path fake = tmp / "fake-worker.sh";
  {
    std::ofstream f(fake);
    f << "#!/bin/bash\nprintf '%s\\n' \"$#\" \"$@\" > " << shell_quote(record.string()) << "\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  ArraySpec spec;
  spec.stage = "vae\n rm -rf /";
  spec.sweep = "s";
  spec.job_dirs = {hostile};
  spec.command = {fake.string(), "--job"};
  fs::path script = tmp / "job.sbatch";
  ASSERT_TRUE(write_file_atomic(script, render_array_script(spec)).ok());
  auto r = migvis::testing::run_command("cd " + shell_quote(tmp.path().string()) +
                                        " && SLURM_ARRAY_TASK_ID=0 bash " + shell_quote(script.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (auto name : {"PWNED1", "PWNED2", "PWNED3"}) {
    EXPECT_FALSE(fs::exists(tmp / name)) << name;
  }
  auto args = read_file(record);
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(*args, "2\n--job\n" + hostile + "\n");
  EXPECT_TRUE(fs::exists(fs::path(hostile) / "run.log")) << "the log redirection did not reach the job directory";
}

TEST(SlurmRenderTest, GoldenScriptAndSbatchArgs) {
  ArraySpec spec;
  spec.sweep = "quickstart";
  spec.stage = "diffusion";
  spec.name = "migvis-quickstart-diffusion";
  spec.job_dirs = {"/runs/jobs/diffusion/0123456789abcdef", "/runs/jobs/diffusion/fedcba9876543210"};
  spec.command = {"/opt/migvis/bin/migvis-worker", "--job"};
  spec.ntasks = 2;
  spec.cpus_per_task = 4;
  spec.gpus = 1;
  spec.mem_gb = 16;
  spec.time_min = 90;
  spec.partition = "gpu";
  spec.throttle = 4;
  spec.after_ok = {"41", "42"};
  spec.log_dir = "/runs/slurm/logs";
  std::string got = render_array_script(spec);
  fs::path golden = fs::path(MIGVIS_SOURCE_DIR) / "tests/orchestrator/slurm/golden/diffusion.sbatch";
  if (std::getenv("MIGVIS_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(golden, got).ok());
  }
  auto want = read_file(golden);
  ASSERT_TRUE(want.ok()) << "missing golden file; run with MIGVIS_UPDATE_GOLDEN=1";
  EXPECT_EQ(got, *want);
  EXPECT_THAT(sbatch_args(spec, "/x/d.sbatch"),
              ElementsAre("sbatch", "--parsable", "--job-name=migvis-quickstart-diffusion", "--array=0-1%4",
                          "--ntasks=2", "--cpus-per-task=4", "--mem=16384M", "--time=90", "--gres=gpu:1",
                          "--partition=gpu", "--requeue", "--signal=B:USR1@120", "--dependency=afterok:41:42",
                          "--kill-on-invalid-dep=yes", "--output=/runs/slurm/logs/%A_%a.out", "/x/d.sbatch"));
}

class FakeRunner : public CommandRunner {
 public:
  Result<CommandOutput> run(const std::vector<std::string>& argv, const std::map<std::string, std::string>&) override {
    calls.push_back(argv);
    if (argv[0] == "sbatch") {
      if (fail_sbatch_at >= 0 && sbatch_count++ == fail_sbatch_at) return CommandOutput{1, "", "sbatch: error: boom"};
      return CommandOutput{0, std::to_string(next_id++) + "\n", ""};
    }
    if (argv[0] == "sacct") {
      if (sacct_failures-- > 0) return CommandOutput{1, "", "slurm_load_jobs error: Socket timed out"};
      return CommandOutput{0, "100_0|COMPLETED|0:0|0:0\n", ""};
    }
    return CommandOutput{0, "", ""};
  }
  std::vector<std::vector<std::string>> calls;
  int next_id = 100;
  int fail_sbatch_at = -1;
  int sbatch_count = 0;
  int sacct_failures = 0;
};

std::vector<Level> three_levels(const fs::path& root, size_t n_vae) {
  auto spec = [&](std::string stage, size_t n) {
    ArraySpec s;
    s.sweep = "q";
    s.stage = stage;
    s.name = "migvis-q-" + stage;
    for (size_t i = 0; i < n; ++i) s.job_dirs.push_back(root / stage / std::to_string(i));
    s.command = {"migvis-worker", "--job"};
    s.log_dir = root / "logs";
    return s;
  };
  return {{spec("data", 1), {}}, {spec("vae", n_vae), {0}}, {spec("critic", 2), {1}}};
}

TEST(SlurmSubmitTest, OneArrayPerLevelChainedAfterokWithIngest) {
  migvis::testing::TempDir tmp;
  FakeRunner fake;
  SubmitOptions o;
  o.script_dir = tmp / "scripts";
  o.max_array_size = 3;  // forces the 5-job vae level into two arrays
  o.ingest_argv = {"migvis", "sweep", "ingest", "--root", "/r"};
  auto r = submit_levels(three_levels(tmp.path(), 5), o, &fake);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_THAT((*r)[0].array_ids, ElementsAre("100"));
  EXPECT_EQ((*r)[0].ingest_id, "101");
  EXPECT_THAT((*r)[1].array_ids, ElementsAre("102", "103"));
  // The critic level waits for both vae arrays, and each array's range fits MaxArraySize.
  bool saw_dep = false, saw_ingest_dep = false;
  for (auto& c : fake.calls) {
    for (auto& a : c) {
      if (a == "--dependency=afterok:102:103") saw_dep = true;
      if (a == "--dependency=afterany:102:103") saw_ingest_dep = true;
      if (a.rfind("--array=", 0) == 0) {
        EXPECT_TRUE(a == "--array=0-0" || a == "--array=0-2" || a == "--array=0-1") << a;
      }
    }
  }
  EXPECT_TRUE(saw_dep);
  EXPECT_TRUE(saw_ingest_dep);
  EXPECT_TRUE(fs::exists(tmp / "scripts/vae.1.sbatch"));
}

TEST(SlurmSubmitTest, FailedSbatchCancelsWhatWasSubmitted) {
  migvis::testing::TempDir tmp;
  FakeRunner fake;
  fake.fail_sbatch_at = 2;  // data array, data ingest, then the vae array fails
  SubmitOptions o;
  o.script_dir = tmp / "scripts";
  o.max_array_size = 1000;
  o.ingest_argv = {"migvis", "sweep", "ingest"};
  auto r = submit_levels(three_levels(tmp.path(), 2), o, &fake);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("boom"), std::string::npos);
  ASSERT_FALSE(fake.calls.empty());
  EXPECT_THAT(fake.calls.back(), ElementsAre("scancel", "100", "101"));
}

TEST(SlurmSubmitTest, DryRunSubmitsNothing) {
  migvis::testing::TempDir tmp;
  FakeRunner fake;
  SubmitOptions o;
  o.script_dir = tmp / "scripts";
  o.dry_run = true;
  auto r = submit_levels(three_levels(tmp.path(), 2), o, &fake);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(fake.calls.empty());
  EXPECT_EQ((*r)[1].commands.size(), 1u);
  EXPECT_TRUE(fs::exists(tmp / "scripts/critic.0.sbatch"));
}

TEST(SlurmSubmitTest, SacctRetriesWithBackoff) {
  FakeRunner fake;
  fake.sacct_failures = 2;
  std::vector<double> sleeps;
  auto r = query_accounting(&fake, {"100"}, "now-1days", 4, [&](double s) { sleeps.push_back(s); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_THAT(sleeps, ElementsAre(0.5, 1.0));
  fake.sacct_failures = 10;
  sleeps.clear();
  auto bad = query_accounting(&fake, {"100"}, "now-1days", 3, [&](double s) { sleeps.push_back(s); });
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(sleeps.size(), 2u);
}

TEST(SlurmSubmitTest, SystemRunnerScrubsSlurmVariables) {
  setenv("SLURM_JOB_ID", "999", 1);
  setenv("SLURM_CONF", "/etc/x.conf", 1);
  SystemCommandRunner r;
  auto out = r.run({"env"});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->out.find("SLURM_JOB_ID"), std::string::npos);
  EXPECT_NE(out->out.find("SLURM_CONF=/etc/x.conf"), std::string::npos);
  unsetenv("SLURM_JOB_ID");
  unsetenv("SLURM_CONF");
  EXPECT_EQ(r.run({"/nonexistent/tool"}).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace migvis::slurm
