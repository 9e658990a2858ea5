#include "schemas/job_spec.h"

#include <ctime>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace migvis::schema {
namespace {

std::string node_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsScalar()) return "\"" + n.Scalar() + "\"";
  if (n.IsSequence()) return "a list";
  return "a mapping";
}

std::string mark_of(const YAML::Node& n) {
  auto m = n.Mark();
  return m.line >= 0 ? fmt::format(":{}", m.line + 1) : "";
}

template <typename T>
Result<T> scalar_as(const YAML::Node& n, const std::string& where, const std::string& key, const char* what) {
  if (!n.IsScalar()) {
    return Status::InvalidArgument(fmt::format("{}{}: {}: expected {}, got {}", where, mark_of(n), key, what, node_text(n)));
  }
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    return Status::InvalidArgument(fmt::format("{}{}: {}: expected {}, got {}", where, mark_of(n), key, what, node_text(n)));
  }
}

std::map<std::string, std::string> string_map(const YAML::Node& n) {
  std::map<std::string, std::string> m;
  if (n && n.IsMap())
    for (auto it : n) m[it.first.as<std::string>()] = it.second.as<std::string>();
  return m;
}

YAML::Node to_node(const std::map<std::string, std::string>& m) {
  YAML::Node n(YAML::NodeType::Map);
  for (auto& [k, v] : m) n[k] = v;
  return n;
}

Result<YAML::Node> load_yaml(const fs::path& path) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(path));
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: invalid YAML: {}", path.string(), e.mark.line + 1, e.msg));
  }
}

}  // namespace

// ------------------------------------------------------------------ Params

YAML::Node Params::lookup(const std::string& key) const {
  YAML::Node cur = YAML::Clone(node_);
  std::stringstream ss(key);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!cur.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next = cur[part];
    if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    cur = next;
  }
  return cur;
}

bool Params::has(const std::string& key) const { return lookup(key).IsDefined(); }

Result<double> Params::get_double(const std::string& key, double def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  return scalar_as<double>(n, where_, "params." + key, "a number");
}

Result<int64_t> Params::get_int(const std::string& key, int64_t def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  return scalar_as<int64_t>(n, where_, "params." + key, "an integer");
}

Result<bool> Params::get_bool(const std::string& key, bool def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  return scalar_as<bool>(n, where_, "params." + key, "true or false");
}

Result<std::string> Params::get_string(const std::string& key, const std::string& def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  return scalar_as<std::string>(n, where_, "params." + key, "a string");
}

Result<std::vector<double>> Params::get_doubles(const std::string& key, const std::vector<double>& def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  if (!n.IsSequence())
    return Status::InvalidArgument(fmt::format("{}{}: params.{}: expected a list of numbers, got {}", where_, mark_of(n), key, node_text(n)));
  std::vector<double> out;
  for (size_t i = 0; i < n.size(); ++i) {
    MIGVIS_ASSIGN_OR_RETURN(double v, scalar_as<double>(n[i], where_, fmt::format("params.{}[{}]", key, i), "a number"));
    out.push_back(v);
  }
  return out;
}

Result<std::vector<int64_t>> Params::get_ints(const std::string& key, const std::vector<int64_t>& def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  if (!n.IsSequence())
    return Status::InvalidArgument(fmt::format("{}{}: params.{}: expected a list of integers, got {}", where_, mark_of(n), key, node_text(n)));
  std::vector<int64_t> out;
  for (size_t i = 0; i < n.size(); ++i) {
    MIGVIS_ASSIGN_OR_RETURN(int64_t v, scalar_as<int64_t>(n[i], where_, fmt::format("params.{}[{}]", key, i), "an integer"));
    out.push_back(v);
  }
  return out;
}

Result<std::vector<std::string>> Params::get_strings(const std::string& key, const std::vector<std::string>& def) const {
  YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  if (!n.IsSequence())
    return Status::InvalidArgument(fmt::format("{}{}: params.{}: expected a list of strings, got {}", where_, mark_of(n), key, node_text(n)));
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar())
      return Status::InvalidArgument(fmt::format("{}{}: params.{}[{}]: expected a string, got {}", where_, mark_of(n[i]), key, i,
                                                 node_text(n[i])));
    out.push_back(n[i].as<std::string>());
  }
  return out;
}

Status Params::check_known(const std::vector<std::string>& known) const {
  if (!node_.IsMap()) return Status::Ok();
  std::set<std::string> k(known.begin(), known.end());
  for (auto it : node_) {
    std::string name = it.first.as<std::string>();
    if (!k.count(name)) {
      std::string list;
      for (auto& s : known) list += (list.empty() ? "" : ", ") + s;
      return Status::InvalidArgument(fmt::format("{}{}: params.{}: unknown key (expected one of: {})", where_,
                                                 mark_of(it.first), name, list));
    }
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ JobSpec

std::string job_spec_to_yaml(const JobSpec& s) {
  YAML::Emitter out;
  YAML::Node n(YAML::NodeType::Map);
  n["format"] = kJobFormat;
  n["job_id"] = s.job_id;
  n["hash"] = s.hash;
  n["stage"] = s.stage;
  n["sweep"] = s.sweep;
  n["key"] = to_node(s.key);
  n["seed"] = s.seed;
  n["params"] = s.params;
  n["inputs"] = to_node(s.inputs);
  if (!s.upstream.empty()) n["upstream"] = to_node(s.upstream);
  if (!s.code.empty()) n["code"] = s.code;
  if (!s.science.empty()) n["science"] = s.science;
  YAML::Node r(YAML::NodeType::Map);
  r["threads"] = s.resources.threads;
  r["ranks"] = s.resources.ranks;
  r["gpus"] = s.resources.gpus;
  r["mem_gb"] = s.resources.mem_gb;
  r["time_min"] = s.resources.time_min;
  n["resources"] = r;
  out << n;
  return std::string(out.c_str()) + "\n";
}

Status write_job_spec(const JobSpec& spec, const fs::path& dir) {
  return write_file_atomic(dir / kJobFile, job_spec_to_yaml(spec));
}

Result<JobSpec> read_job_spec(const fs::path& dir) {
  fs::path p = dir / kJobFile;
  MIGVIS_ASSIGN_OR_RETURN(YAML::Node n, load_yaml(p));
  const std::string where = p.string();
  if (!n.IsMap() || !n["format"] || n["format"].as<std::string>() != kJobFormat)
    return Status::InvalidArgument(where + ": expected `format: " + kJobFormat + "`");
  JobSpec s;
  try {
    s.job_id = n["job_id"].as<std::string>();
    s.hash = n["hash"] ? n["hash"].as<std::string>() : "";
    s.stage = n["stage"].as<std::string>();
    s.sweep = n["sweep"] ? n["sweep"].as<std::string>() : "";
    s.key = string_map(n["key"]);
    s.seed = n["seed"] ? n["seed"].as<uint64_t>() : 0;
    s.params = n["params"] ? n["params"] : YAML::Node(YAML::NodeType::Map);
    s.inputs = string_map(n["inputs"]);
    s.upstream = string_map(n["upstream"]);
    s.code = n["code"] ? n["code"].as<std::string>() : "";
    s.science = n["science"] ? n["science"].as<std::string>() : "";
    if (auto r = n["resources"]) {
      if (r["threads"]) s.resources.threads = r["threads"].as<int>();
      if (r["ranks"]) s.resources.ranks = r["ranks"].as<int>();
      if (r["gpus"]) s.resources.gpus = r["gpus"].as<int>();
      if (r["mem_gb"]) s.resources.mem_gb = r["mem_gb"].as<double>();
      if (r["time_min"]) s.resources.time_min = r["time_min"].as<double>();
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}", where, e.mark.line + 1, e.msg));
  }
  if (s.job_id.empty() || s.stage.empty()) return Status::InvalidArgument(where + ": job_id and stage are required");
  return s;
}

// ------------------------------------------------------------------ JobResult

std::string artifact_path_problem(const fs::path& job_dir, const std::string& path) {
  if (path.empty()) return "is empty";
  const fs::path p(path);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return "is absolute (must be relative to the job directory)";
  const fs::path norm = p.lexically_normal();
  if (norm.empty() || norm == "." || *norm.begin() == "..") return "leaves the job directory (..)";
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(job_dir, ec);
  if (ec) return "cannot be resolved: " + ec.message();
  const fs::path real = fs::weakly_canonical(job_dir / norm, ec);
  if (ec) return "cannot be resolved: " + ec.message();
  const fs::path rel = real.lexically_relative(base);
  if (rel.empty() || *rel.begin() == "..") return "leaves the job directory through a symbolic link (to " + real.string() + ")";
  return "";
}

Status write_job_result(const JobResult& r, const fs::path& dir) {
  YAML::Node n(YAML::NodeType::Map);
  n["format"] = kResultFormat;
  n["job_id"] = r.job_id;
  n["stage"] = r.stage;
  n["status"] = r.status;
  n["error"] = r.error;
  n["exit_code"] = r.exit_code;
  n["started_at"] = r.started_at;
  n["finished_at"] = r.finished_at;
  n["wall_s"] = r.wall_s;
  n["host"] = r.host;
  n["layout"] = to_node(r.layout);
  n["versions"] = to_node(r.versions);
  YAML::Node m(YAML::NodeType::Map);
  for (auto& [k, v] : r.metrics) m[k] = v;
  n["metrics"] = m;
  YAML::Node a(YAML::NodeType::Sequence);
  for (auto& art : r.artifacts) {
    YAML::Node x(YAML::NodeType::Map);
    x["kind"] = art.kind;
    x["path"] = art.path;
    if (!art.h5.empty()) x["h5"] = art.h5;
    a.push_back(x);
  }
  n["artifacts"] = a;
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << n;
  return write_file_atomic(dir / kResultFile, std::string(out.c_str()) + "\n");
}

Result<JobResult> read_job_result(const fs::path& dir) {
  fs::path p = dir / kResultFile;
  MIGVIS_ASSIGN_OR_RETURN(YAML::Node n, load_yaml(p));
  const std::string where = p.string();
  if (!n.IsMap() || !n["format"] || n["format"].as<std::string>() != kResultFormat)
    return Status::InvalidArgument(where + ": expected `format: " + kResultFormat + "`");
  JobResult r;
  try {
    r.job_id = n["job_id"].as<std::string>();
    r.stage = n["stage"].as<std::string>();
    r.status = n["status"].as<std::string>();
    if (n["error"]) r.error = n["error"].as<std::string>();
    if (n["exit_code"]) r.exit_code = n["exit_code"].as<int>();
    if (n["started_at"]) r.started_at = n["started_at"].as<std::string>();
    if (n["finished_at"]) r.finished_at = n["finished_at"].as<std::string>();
    if (n["wall_s"]) r.wall_s = n["wall_s"].as<double>();
    if (n["host"]) r.host = n["host"].as<std::string>();
    r.layout = string_map(n["layout"]);
    r.versions = string_map(n["versions"]);
    if (n["metrics"] && n["metrics"].IsMap())
      for (auto it : n["metrics"]) r.metrics[it.first.as<std::string>()] = it.second.as<double>();
    if (n["artifacts"] && n["artifacts"].IsSequence())
      for (auto x : n["artifacts"])
        r.artifacts.push_back({x["kind"].as<std::string>(), x["path"].as<std::string>(),
                               x["h5"] ? x["h5"].as<std::string>() : ""});
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}", where, e.mark.line + 1, e.msg));
  }
  if (r.status != "ok" && r.status != "failed")
    return Status::InvalidArgument(where + ": status must be ok or failed, found '" + r.status + "'");
  return r;
}

// ------------------------------------------------------------------ Progress

Status write_progress(const Progress& p, const fs::path& dir) {
  return write_file_atomic(dir / kProgressFile,
                           fmt::format("step: {}\ntotal_steps: {}\nphase: \"{}\"\nupdated_at: {}\n", p.step,
                                       p.total_steps, p.phase, p.updated_at.empty() ? utc_now_iso8601() : p.updated_at));
}

Result<Progress> read_progress(const fs::path& dir) {
  MIGVIS_ASSIGN_OR_RETURN(YAML::Node n, load_yaml(dir / kProgressFile));
  Progress p;
  try {
    p.step = n["step"].as<int64_t>();
    p.total_steps = n["total_steps"].as<int64_t>();
    if (n["phase"]) p.phase = n["phase"].as<std::string>();
    if (n["updated_at"]) p.updated_at = n["updated_at"].as<std::string>();
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument((dir / kProgressFile).string() + ": " + e.msg);
  }
  return p;
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace migvis::schema
