// Sweep expansion: parse (strict, with line numbers) -> per-stage parameter
// combinations -> jobs stage by stage (upstream fan-out, interpolation,
// defaults, type checks, excludes) -> hashes. See schemas/sweep.md.
#include "sweeps/sweep.h"

#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/hash.h"
#include "migvis_build_info.h"
#include "schemas/stages.h"
#include "sweeps/defaults.h"

namespace migvis::sweeps {
namespace {

using json = nlohmann::json;

// A value from the sweep file with where it came from.
struct Val {
  json v;
  int line = 0;
  std::string path;  // "vae.grid.beta[1]"
};

struct Axis {
  std::string name;
  std::vector<Val> values;
};

struct Exclude {
  std::map<std::string, std::vector<json>> match;  // name -> any of these
};

// One (sub-)sweep: fixed params, grid axes, zip groups, union members.
struct Spec {
  std::map<std::string, Val> params;
  std::vector<Axis> axes;
  std::vector<std::vector<Axis>> zips;
  std::vector<Spec> unions;
  std::vector<Exclude> excludes;
  std::optional<std::vector<uint64_t>> seeds;
};

struct Combo {
  std::map<std::string, Val> params;
  std::optional<uint64_t> seed;
  std::vector<const Exclude*> excludes;
};

struct StageBlock {
  bool present = false;
  int line = 0;
  Spec spec;
  schema::Resources resources;
  std::optional<Val> name;  // data only
};

struct SessionsSpec {
  enum Kind { kList, kAll, kPooled } kind = kAll;
  std::vector<std::string> list;                                // kList (may include "pooled")
  std::map<std::string, std::vector<std::string>> per_animal;  // map form
  int line = 0;
};

struct Sweep {
  std::string name;
  int max_jobs = 0;
  std::vector<std::string> animals;
  int animals_line = 0;
  SessionsSpec sessions;
  std::map<std::string, StageBlock> stages;
};

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

std::string got_text(const json& v) {
  if (v.is_null()) return "nothing";
  if (v.is_string()) return "\"" + v.get<std::string>() + "\"";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  return v.dump();
}

std::string got_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsScalar()) return "\"" + n.Scalar() + "\"";
  if (n.IsSequence()) return "a list";
  return "a mapping";
}

json to_json(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return nullptr;
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;  // quoted: always a string
    if (s == "true" || s == "True" || s == "yes") return true;
    if (s == "false" || s == "False" || s == "no") return false;
    if (s == "~" || s == "null") return nullptr;
    if (!s.empty()) {
      char* end = nullptr;
      errno = 0;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (*end == 0 && errno == 0) return static_cast<int64_t>(i);
      errno = 0;
      double d = std::strtod(s.c_str(), &end);
      if (*end == 0 && errno == 0 && s.find_first_of("0123456789") != std::string::npos) return d;
    }
    return s;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (auto e : n) a.push_back(to_json(e));
    return a;
  }
  json o = json::object();
  for (auto it : n) o[it.first.Scalar()] = to_json(it.second);
  return o;
}

std::string scalar_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Status err(int line, const std::string& path, const std::string& msg) const {
    if (line > 0) return Status::InvalidArgument(fmt::format("{}:{}: {}: {}", file_, line, path, msg));
    return Status::InvalidArgument(fmt::format("{}: {}: {}", file_, path, msg));
  }
  Status err(const YAML::Node& n, const std::string& path, const std::string& msg) const {
    return err(line_of(n), path, msg);
  }

  Status check_keys(const YAML::Node& n, const std::string& path, const std::set<std::string>& known) const {
    if (!n.IsMap()) return err(n, path, "expected a mapping, got " + got_text(n));
    for (auto it : n) {
      std::string k = it.first.Scalar();
      if (!known.count(k))
        return err(it.first, path.empty() ? k : path + "." + k,
                   fmt::format("unknown key (expected one of: {})", fmt::join(known, ", ")));
    }
    return Status::Ok();
  }

  Result<std::string> safe_name(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) return err(n, path, "expected a name, got " + got_text(n));
    std::string s = n.Scalar();
    if (!is_safe_name(s))
      return err(n, path,
                 fmt::format("\"{}\" is not a safe name (letters, digits, '_', '-', '.'; no \"..\", no '/', at most 64 "
                             "characters): names become directory names",
                             s));
    return s;
  }

  Result<int64_t> int_of(const YAML::Node& n, const std::string& path) const {
    json v = to_json(n);
    if (!v.is_number_integer()) return err(n, path, "expected an integer, got " + got_text(n));
    return v.get<int64_t>();
  }

  Result<double> num_of(const YAML::Node& n, const std::string& path) const {
    json v = to_json(n);
    if (!v.is_number()) return err(n, path, "expected a number, got " + got_text(n));
    return v.get<double>();
  }

  // Axis values: a list, {linspace: [a, b, n]}, {logspace: [a, b, n]} or {choice: [...]}.
  Result<std::vector<Val>> axis_values(const YAML::Node& n, const std::string& path) const {
    std::vector<Val> out;
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        out.push_back({to_json(n[i]), line_of(n[i]), fmt::format("{}[{}]", path, i)});
    } else if (n.IsMap() && n.size() == 1) {
      std::string kind = n.begin()->first.Scalar();
      YAML::Node arg = n.begin()->second;
      if (kind == "choice") {
        if (!arg.IsSequence()) return err(arg, path + ".choice", "expected a list, got " + got_text(arg));
        return axis_values(arg, path + ".choice");
      }
      if (kind != "linspace" && kind != "logspace")
        return err(n, path, fmt::format("unknown range \"{}\" (expected choice, linspace or logspace)", kind));
      if (!arg.IsSequence() || arg.size() != 3)
        return err(arg, path + "." + kind, "expected [start, stop, count], got " + got_text(arg));
      MIGVIS_ASSIGN_OR_RETURN(double a, num_of(arg[0], path + "." + kind + "[0]"));
      MIGVIS_ASSIGN_OR_RETURN(double b, num_of(arg[1], path + "." + kind + "[1]"));
      MIGVIS_ASSIGN_OR_RETURN(int64_t cnt, int_of(arg[2], path + "." + kind + "[2]"));
      if (cnt < 0 || cnt > 100000) return err(arg[2], path + "." + kind + "[2]", "count out of range 0..100000");
      for (int64_t i = 0; i < cnt; ++i) {
        double t = cnt == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(cnt - 1);
        double x = a + (b - a) * t;
        if (kind == "logspace") x = std::pow(10.0, x);
        // Round to 12 significant digits so hashes do not depend on the last ulp.
        x = std::stod(fmt::format("{:.12g}", x));
        out.push_back({x, line_of(n), fmt::format("{}[{}]", path, i)});
      }
    } else {
      return err(n, path, "expected a list, {choice: [...]}, {linspace: [a, b, n]} or {logspace: [a, b, n]}, got " +
                              got_text(n));
    }
    if (out.empty())
      return err(n, path, "empty axis: a grid with an empty list expands to no jobs (remove the key or give values)");
    return out;
  }

  Status check_param_key(const std::string& stage, const YAML::Node& keynode, const std::string& path) const {
    std::string k = keynode.Scalar();
    if (!find_param(stage, k)) {
      std::vector<std::string> names;
      for (auto& p : stage_params(stage)) names.push_back(p.name);
      return err(keynode, path, fmt::format("unknown {} parameter (the worker accepts: {})", stage, fmt::join(names, ", ")));
    }
    return Status::Ok();
  }

  Result<Spec> spec(const YAML::Node& n, const std::string& stage, const std::string& path, bool top) const {
    std::set<std::string> known = {"params", "grid", "zip", "union", "exclude", "seeds"};
    if (top) {
      known.insert("resources");
      if (stage == "data") known.insert("name");
    }
    MIGVIS_RETURN_IF_ERROR(check_keys(n, path, known));
    Spec s;
    if (auto p = n["params"]) {
      if (!p.IsMap()) return err(p, path + ".params", "expected a mapping, got " + got_text(p));
      for (auto it : p) {
        std::string k = it.first.Scalar();
        std::string kp = path + ".params." + k;
        MIGVIS_RETURN_IF_ERROR(check_param_key(stage, it.first, kp));
        YAML::Node v = it.second;
        bool is_range = v.IsMap() && v.size() == 1 &&
                        (v.begin()->first.Scalar() == "choice" || v.begin()->first.Scalar() == "linspace" ||
                         v.begin()->first.Scalar() == "logspace");
        if (is_range) {
          MIGVIS_ASSIGN_OR_RETURN(auto vals, axis_values(v, kp));
          s.axes.push_back({k, std::move(vals)});
        } else {
          s.params[k] = Val{to_json(v), line_of(v), kp};
        }
      }
    }
    if (auto g = n["grid"]) {
      if (!g.IsMap()) return err(g, path + ".grid", "expected a mapping of axes, got " + got_text(g));
      if (g.size() == 0) return err(g, path + ".grid", "empty grid: give at least one axis");
      for (auto it : g) {
        std::string k = it.first.Scalar();
        std::string kp = path + ".grid." + k;
        MIGVIS_RETURN_IF_ERROR(check_param_key(stage, it.first, kp));
        MIGVIS_ASSIGN_OR_RETURN(auto vals, axis_values(it.second, kp));
        s.axes.push_back({k, std::move(vals)});
      }
    }
    if (auto z = n["zip"]) {
      if (!z.IsMap()) return err(z, path + ".zip", "expected a mapping of equal-length lists, got " + got_text(z));
      std::vector<Axis> group;
      for (auto it : z) {
        std::string k = it.first.Scalar();
        std::string kp = path + ".zip." + k;
        MIGVIS_RETURN_IF_ERROR(check_param_key(stage, it.first, kp));
        MIGVIS_ASSIGN_OR_RETURN(auto vals, axis_values(it.second, kp));
        if (!group.empty() && vals.size() != group.front().values.size())
          return err(it.second, kp,
                     fmt::format("zip lists must have equal lengths: {} has {}, {} has {}", group.front().name,
                                 group.front().values.size(), k, vals.size()));
        group.push_back({k, std::move(vals)});
      }
      if (group.empty()) return err(z, path + ".zip", "empty zip: give at least one list");
      s.zips.push_back(std::move(group));
    }
    if (auto u = n["union"]) {
      if (!u.IsSequence() || u.size() == 0)
        return err(u, path + ".union", "expected a non-empty list of sub-sweeps, got " + got_text(u));
      for (size_t i = 0; i < u.size(); ++i) {
        MIGVIS_ASSIGN_OR_RETURN(Spec sub, spec(u[i], stage, fmt::format("{}.union[{}]", path, i), false));
        s.unions.push_back(std::move(sub));
      }
    }
    if (auto e = n["exclude"]) {
      if (!e.IsSequence()) return err(e, path + ".exclude", "expected a list of mappings, got " + got_text(e));
      for (size_t i = 0; i < e.size(); ++i) {
        std::string ep = fmt::format("{}.exclude[{}]", path, i);
        if (!e[i].IsMap() || e[i].size() == 0)
          return err(e[i], ep, "expected a mapping {param: value or [values]}, got " + got_text(e[i]));
        Exclude ex;
        for (auto it : e[i]) {
          std::string k = it.first.Scalar();
          auto dot = k.find('.');
          if (dot != std::string::npos) {
            std::string up = k.substr(0, dot);
            if (std::find(stage_names().begin(), stage_names().end(), up) == stage_names().end() ||
                !find_param(up, k.substr(dot + 1)))
              return err(it.first, ep + "." + k, "unknown upstream parameter (expected <stage>.<param>, e.g. vae.model)");
          } else if (k != "animal" && k != "session" && k != "dataset" && k != "seed")
            MIGVIS_RETURN_IF_ERROR(check_param_key(stage, it.first, ep + "." + k));
          json v = to_json(it.second);
          if (v.is_array())
            for (auto& x : v) ex.match[k].push_back(x);
          else
            ex.match[k].push_back(v);
        }
        s.excludes.push_back(std::move(ex));
      }
    }
    if (auto sd = n["seeds"]) {
      std::vector<uint64_t> seeds;
      if (sd.IsSequence()) {
        for (size_t i = 0; i < sd.size(); ++i) {
          MIGVIS_ASSIGN_OR_RETURN(int64_t v, int_of(sd[i], fmt::format("{}.seeds[{}]", path, i)));
          if (v < 0) return err(sd[i], fmt::format("{}.seeds[{}]", path, i), "expected a seed >= 0");
          seeds.push_back(static_cast<uint64_t>(v));
        }
      } else {
        MIGVIS_ASSIGN_OR_RETURN(int64_t cnt, int_of(sd, path + ".seeds"));
        if (cnt < 1 || cnt > 100000) return err(sd, path + ".seeds", "expected a count 1..100000 or a list of seeds");
        for (int64_t i = 1; i <= cnt; ++i) seeds.push_back(static_cast<uint64_t>(i));
      }
      if (seeds.empty()) return err(sd, path + ".seeds", "empty seed list");
      s.seeds = std::move(seeds);
    }
    return s;
  }

  Result<schema::Resources> resources(const YAML::Node& n, const std::string& path, schema::Resources r) const {
    MIGVIS_RETURN_IF_ERROR(check_keys(n, path, {"threads", "ranks", "gpus", "mem_gb", "time_min"}));
    if (n["threads"]) { MIGVIS_ASSIGN_OR_RETURN(int64_t v, int_of(n["threads"], path + ".threads")); r.threads = int(v); }
    if (n["ranks"]) { MIGVIS_ASSIGN_OR_RETURN(int64_t v, int_of(n["ranks"], path + ".ranks")); r.ranks = int(v); }
    if (n["gpus"]) { MIGVIS_ASSIGN_OR_RETURN(int64_t v, int_of(n["gpus"], path + ".gpus")); r.gpus = int(v); }
    if (n["mem_gb"]) { MIGVIS_ASSIGN_OR_RETURN(r.mem_gb, num_of(n["mem_gb"], path + ".mem_gb")); }
    if (n["time_min"]) { MIGVIS_ASSIGN_OR_RETURN(r.time_min, num_of(n["time_min"], path + ".time_min")); }
    if (r.threads < 1 || r.ranks < 1 || r.gpus < 0) return err(n, path, "threads and ranks must be >= 1, gpus >= 0");
    return r;
  }

  Result<Sweep> sweep(const YAML::Node& root) const {
    if (!root.IsMap()) return err(root, "sweep", "expected a mapping at the top level, got " + got_text(root));
    std::set<std::string> known = {"sweep", "description", "max_jobs", "animals", "sessions"};
    for (auto& s : stage_names()) known.insert(s);
    MIGVIS_RETURN_IF_ERROR(check_keys(root, "", known));
    Sweep w;
    if (!root["sweep"]) return err(root, "sweep", "missing: every sweep needs a name (`sweep: my_sweep`)");
    MIGVIS_ASSIGN_OR_RETURN(w.name, safe_name(root["sweep"], "sweep"));
    if (auto m = root["max_jobs"]) {
      MIGVIS_ASSIGN_OR_RETURN(int64_t v, int_of(m, "max_jobs"));
      if (v < 1) return err(m, "max_jobs", "expected a positive integer");
      w.max_jobs = static_cast<int>(std::min<int64_t>(v, std::numeric_limits<int>::max()));
    }
    if (auto a = root["animals"]) {
      w.animals_line = line_of(a);
      if (!a.IsSequence() || a.size() == 0) return err(a, "animals", "expected a non-empty list, got " + got_text(a));
      for (size_t i = 0; i < a.size(); ++i) {
        MIGVIS_ASSIGN_OR_RETURN(std::string s, safe_name(a[i], fmt::format("animals[{}]", i)));
        w.animals.push_back(s);
      }
    }
    if (auto s = root["sessions"]) {
      w.sessions.line = line_of(s);
      if (s.IsScalar() && s.Scalar() == "all") {
        w.sessions.kind = SessionsSpec::kAll;
      } else if (s.IsScalar() && s.Scalar() == "pooled") {
        w.sessions.kind = SessionsSpec::kPooled;
      } else if (s.IsSequence()) {
        w.sessions.kind = SessionsSpec::kList;
        if (s.size() == 0) return err(s, "sessions", "empty list: no VAE jobs would run");
        for (size_t i = 0; i < s.size(); ++i) {
          MIGVIS_ASSIGN_OR_RETURN(std::string v, safe_name(s[i], fmt::format("sessions[{}]", i)));
          w.sessions.list.push_back(v);
        }
      } else if (s.IsMap()) {
        w.sessions.kind = SessionsSpec::kList;
        for (auto it : s) {
          MIGVIS_ASSIGN_OR_RETURN(std::string animal, safe_name(it.first, "sessions"));
          if (!it.second.IsSequence() || it.second.size() == 0)
            return err(it.second, "sessions." + animal, "expected a non-empty list, got " + got_text(it.second));
          for (size_t i = 0; i < it.second.size(); ++i) {
            MIGVIS_ASSIGN_OR_RETURN(std::string v, safe_name(it.second[i], fmt::format("sessions.{}[{}]", animal, i)));
            w.sessions.per_animal[animal].push_back(v);
          }
        }
      } else {
        return err(s, "sessions", "expected all, pooled, a list of sessions or {animal: [sessions]}, got " + got_text(s));
      }
    }
    for (auto& st : stage_names()) {
      YAML::Node b = root[st];
      if (!b) continue;
      StageBlock blk;
      blk.present = true;
      blk.line = line_of(b);
      if (b.IsNull()) b = YAML::Node(YAML::NodeType::Map);
      MIGVIS_ASSIGN_OR_RETURN(blk.spec, spec(b, st, st, true));
      if (b["resources"]) { MIGVIS_ASSIGN_OR_RETURN(blk.resources, resources(b["resources"], st + ".resources", {})); }
      if (b["name"]) {
        if (!b["name"].IsScalar()) return err(b["name"], "data.name", "expected a name, got " + got_text(b["name"]));
        blk.name = Val{b["name"].Scalar(), line_of(b["name"]), "data.name"};
      }
      w.stages[st] = std::move(blk);
    }
    return w;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// --- combination counting and expansion --------------------------------

double count_spec(const Spec& s) {
  double n = 1;
  for (auto& a : s.axes) n *= static_cast<double>(a.values.size());
  for (auto& z : s.zips) n *= static_cast<double>(z.front().values.size());
  if (!s.unions.empty()) {
    double u = 0;
    for (auto& sub : s.unions) u += count_spec(sub);
    n *= u;
  }
  if (s.seeds) n *= static_cast<double>(s.seeds->size());
  return n;
}

void expand_spec(const Spec& s, const Combo& base, std::vector<Combo>& out) {
  Combo b = base;
  for (auto& [k, v] : s.params) b.params[k] = v;
  for (auto& e : s.excludes) b.excludes.push_back(&e);
  // Odometer over grid axes then zip groups (declaration order; last varies fastest).
  std::vector<size_t> dims;
  for (auto& a : s.axes) dims.push_back(a.values.size());
  for (auto& z : s.zips) dims.push_back(z.front().values.size());
  std::vector<size_t> idx(dims.size(), 0);
  while (true) {
    Combo c = b;
    for (size_t i = 0; i < s.axes.size(); ++i) c.params[s.axes[i].name] = s.axes[i].values[idx[i]];
    for (size_t j = 0; j < s.zips.size(); ++j)
      for (auto& ax : s.zips[j]) c.params[ax.name] = ax.values[idx[s.axes.size() + j]];
    auto emit = [&](Combo cc) {
      if (s.unions.empty()) {
        out.push_back(std::move(cc));
      } else {
        for (auto& sub : s.unions) expand_spec(sub, cc, out);
      }
    };
    if (s.seeds) {
      for (uint64_t sd : *s.seeds) {
        Combo cc = c;
        cc.seed = sd;
        emit(std::move(cc));
      }
    } else {
      emit(std::move(c));
    }
    size_t d = dims.size();
    while (d > 0) {
      if (++idx[d - 1] < dims[d - 1]) break;
      idx[d - 1] = 0;
      --d;
    }
    if (d == 0) break;
  }
}

// --- per-job resolution ---------------------------------------------------

struct Expander {
  const Parser& p;
  const Sweep& w;
  const std::vector<PlannedJob>& jobs;
  std::string code_version;

  bool json_eq(const json& a, const json& b) const {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
  }

  // Resolves `${...}` and from_upstream in one job's raw params.
  struct JobCtx {
    const std::string& stage;
    const std::map<std::string, std::string>& key;
    const std::map<std::string, size_t>& upstream;
    const std::map<std::string, Val>& raw;
    std::map<std::string, json> done;
    std::vector<std::string> stack;
  };

  Result<json> lookup_ref(JobCtx& c, const std::string& ref, const Val& at) const {
    auto dot = ref.find('.');
    if (dot == std::string::npos)
      return p.err(at.line, at.path, fmt::format("${{{}}}: expected ${{stage.param}}, ${{key.field}} or ${{sweep.name}}", ref));
    std::string ns = ref.substr(0, dot), name = ref.substr(dot + 1);
    if (ns == "sweep") {
      if (name == "name") return json(w.name);
      return p.err(at.line, at.path, fmt::format("${{{}}}: only ${{sweep.name}} exists", ref));
    }
    if (ns == "key") {
      auto it = c.key.find(name);
      if (it == c.key.end())
        return p.err(at.line, at.path, fmt::format("${{{}}}: {} jobs have no key field \"{}\"", ref, c.stage, name));
      return json(it->second);
    }
    if (std::find(stage_names().begin(), stage_names().end(), ns) == stage_names().end())
      return p.err(at.line, at.path, fmt::format("${{{}}}: unknown stage \"{}\"", ref, ns));
    if (ns == c.stage) return resolve(c, name, at);
    if (!w.stages.count(ns))
      return p.err(at.line, at.path,
                   fmt::format("${{{}}}: missing upstream: stage {} is not defined in this sweep", ref, ns));
    auto up = c.upstream.find(ns);
    if (up == c.upstream.end())
      return p.err(at.line, at.path,
                   fmt::format("${{{}}}: {} is not upstream of {} (a stage reads only its own or its upstream "
                               "stages' params; referring downstream would make a cycle)",
                               ref, ns, c.stage));
    const json& params = jobs[up->second].params;
    if (!params.contains(name))
      return p.err(at.line, at.path, fmt::format("${{{}}}: the upstream {} job has no param \"{}\"", ref, ns, name));
    return params[name];
  }

  Result<json> interpolate(JobCtx& c, const json& v, const Val& at) const {
    if (v.is_array()) {
      json out = json::array();
      for (auto& e : v) {
        MIGVIS_ASSIGN_OR_RETURN(json r, interpolate(c, e, at));
        out.push_back(std::move(r));
      }
      return out;
    }
    if (v.is_object()) {
      json out = json::object();
      for (auto& [k, e] : v.items()) {
        MIGVIS_ASSIGN_OR_RETURN(json r, interpolate(c, e, at));
        out[k] = std::move(r);
      }
      return out;
    }
    if (!v.is_string()) return v;
    const std::string s = v.get<std::string>();
    if (s.find("${") == std::string::npos) return v;
    // A whole-string reference keeps the referenced value's type.
    if (s.rfind("${", 0) == 0 && s.back() == '}' && s.find("${", 2) == std::string::npos)
      return lookup_ref(c, s.substr(2, s.size() - 3), at);
    std::string out;
    size_t pos = 0;
    while (true) {
      size_t b = s.find("${", pos);
      if (b == std::string::npos) {
        out += s.substr(pos);
        break;
      }
      size_t e = s.find('}', b);
      if (e == std::string::npos) return p.err(at.line, at.path, fmt::format("unterminated ${{ in \"{}\"", s));
      out += s.substr(pos, b - pos);
      MIGVIS_ASSIGN_OR_RETURN(json r, lookup_ref(c, s.substr(b + 2, e - b - 2), at));
      out += scalar_string(r);
      pos = e + 1;
    }
    return json(out);
  }

  Result<json> resolve(JobCtx& c, const std::string& name, const Val& from) const {
    if (auto it = c.done.find(name); it != c.done.end()) return it->second;
    auto rit = c.raw.find(name);
    if (rit == c.raw.end())
      return p.err(from.line, from.path, fmt::format("${{{}.{}}}: {} has no param \"{}\" here", c.stage, name, c.stage, name));
    if (std::find(c.stack.begin(), c.stack.end(), name) != c.stack.end()) {
      std::string chain;
      for (auto& s : c.stack) chain += c.stage + "." + s + " -> ";
      return p.err(rit->second.line, rit->second.path, fmt::format("interpolation cycle: {}{}.{}", chain, c.stage, name));
    }
    c.stack.push_back(name);
    const Val& raw = rit->second;
    json v;
    if (raw.v.is_string() && raw.v.get<std::string>() == "from_upstream") {
      MIGVIS_ASSIGN_OR_RETURN(v, from_upstream(c, name, raw));
    } else {
      MIGVIS_ASSIGN_OR_RETURN(v, interpolate(c, raw.v, raw));
    }
    c.stack.pop_back();
    c.done[name] = v;
    return v;
  }

  // `groups: from_upstream` -> [1..G] of the upstream VAE; any other key: the
  // nearest upstream job's value of the same key.
  Result<json> from_upstream(JobCtx& c, const std::string& name, const Val& at) const {
    if (name == "groups") {
      auto up = c.upstream.find("vae");
      if (up == c.upstream.end() || !jobs[up->second].params.contains("groups"))
        return p.err(at.line, at.path, "from_upstream: no upstream vae job with `groups`");
      const json& g = jobs[up->second].params["groups"];
      if (!g.is_number_integer() || g.get<int64_t>() < 1 || g.get<int64_t>() > 1000)
        return p.err(at.line, at.path, "from_upstream: the upstream vae's groups is not an integer 1..1000");
      json out = json::array();
      for (int64_t i = 1; i <= g.get<int64_t>(); ++i) out.push_back(i);
      return out;
    }
    for (auto it = stage_names().rbegin(); it != stage_names().rend(); ++it) {
      auto up = c.upstream.find(*it);
      if (up != c.upstream.end() && jobs[up->second].params.contains(name)) return jobs[up->second].params[name];
    }
    return p.err(at.line, at.path, fmt::format("from_upstream: no upstream job has a param \"{}\"", name));
  }

  Status check_type(const std::string& stage, const std::string& name, const json& v, const Val& at) const {
    const ParamSpec* ps = find_param(stage, name);
    if (!ps) return p.err(at.line, at.path, "unknown parameter");
    auto bad = [&] { return p.err(at.line, at.path, fmt::format("expected {}, got {}", describe_type(*ps), got_text(v))); };
    auto all_ints = [&] {
      if (!v.is_array()) return false;
      for (auto& e : v)
        if (!e.is_number_integer()) return false;
      return true;
    };
    switch (ps->type) {
      case ParamType::kInt: if (!v.is_number_integer()) return bad(); break;
      case ParamType::kNumber: if (!v.is_number()) return bad(); break;
      case ParamType::kString: if (!v.is_string()) return bad(); break;
      case ParamType::kBool: if (!v.is_boolean()) return bad(); break;
      case ParamType::kEnum:
        if (!v.is_string() || std::find(ps->choices.begin(), ps->choices.end(), v.get<std::string>()) == ps->choices.end())
          return bad();
        break;
      case ParamType::kIntList: if (!all_ints()) return bad(); break;
      case ParamType::kNumberList: {
        if (!v.is_array()) return bad();
        for (auto& e : v)
          if (!e.is_number()) return bad();
        break;
      }
      case ParamType::kIntOrIntList: if (!v.is_number_integer() && !all_ints()) return bad(); break;
      case ParamType::kImport: {
        if (!v.is_object() || v.size() != 2 || !v.contains("format") || !v.contains("path") ||
            !v["format"].is_string() || !v["path"].is_string())
          return bad();
        break;
      }
    }
    return Status::Ok();
  }

  bool excluded(const Combo& c, const json& params, const std::map<std::string, std::string>& key,
                const std::map<std::string, size_t>& upstream, std::optional<uint64_t> seed) const {
    for (const Exclude* e : c.excludes) {
      bool all = true;
      for (auto& [k, values] : e->match) {
        json have;
        if (k == "seed") {
          if (!seed) { all = false; break; }
          have = static_cast<int64_t>(*seed);
        } else if (k == "animal" || k == "session" || k == "dataset") {
          auto it = key.find(k);
          if (it == key.end()) { all = false; break; }
          have = it->second;
        } else if (auto dot = k.find('.'); dot != std::string::npos) {
          auto up = upstream.find(k.substr(0, dot));
          if (up == upstream.end() || !jobs[up->second].params.contains(k.substr(dot + 1))) { all = false; break; }
          have = jobs[up->second].params[k.substr(dot + 1)];
        } else if (params.contains(k)) {
          have = params[k];
        } else {
          all = false;
          break;
        }
        bool any = false;
        for (auto& x : values) any = any || json_eq(have, x);
        if (!any) { all = false; break; }
      }
      if (all) return true;
    }
    return false;
  }

  // Builds one job; returns nullopt when an exclude filter drops it.
  Result<std::optional<PlannedJob>> make_job(const std::string& stage, const Combo& combo,
                                             std::map<std::string, std::string> key,
                                             std::map<std::string, size_t> upstream) const {
    std::map<std::string, Val> raw;
    for (auto& ps : stage_params(stage))
      if (!ps.default_value.is_null()) raw[ps.name] = Val{ps.default_value, 0, stage + ".params." + ps.name + " (default)"};
    for (auto& [k, v] : combo.params) raw[k] = v;
    if (stage == "data" && raw.count("import")) raw.erase("preset");
    if (stage == "data" && !raw.count("import") && !raw.count("preset"))
      raw["preset"] = Val{"default", 0, "data.params.preset (default)"};
    JobCtx c{stage, key, upstream, raw, {}, {}};
    json params = json::object();
    for (auto& [k, v] : raw) {
      MIGVIS_ASSIGN_OR_RETURN(json r, resolve(c, k, v));
      MIGVIS_RETURN_IF_ERROR(check_type(stage, k, r, v));
      params[k] = std::move(r);
    }
    if (stage == "data") {
      if (params.contains("import") && params.contains("seed"))
        return p.err(raw["seed"].line, "data.params.seed", "an imported dataset takes no seed (give preset or import)");
      std::string name = params.contains("import") ? "import" : params["preset"].get<std::string>();
      const auto& blk = w.stages.at("data");
      if (blk.name) {
        MIGVIS_ASSIGN_OR_RETURN(json n, interpolate(c, blk.name->v, *blk.name));
        name = scalar_string(n);
        if (!is_safe_name(name))
          return p.err(blk.name->line, "data.name", fmt::format("\"{}\" is not a safe name (it becomes a directory name)", name));
      }
      key["dataset"] = name;
    }
    if (excluded(combo, params, key, upstream, combo.seed)) return std::optional<PlannedJob>();

    PlannedJob j;
    j.stage = stage;
    j.key = std::move(key);
    j.params = std::move(params);
    j.upstream = std::move(upstream);
    j.resources = w.stages.at(stage).resources;
    json h = json::object();
    h["stage"] = stage;
    h["params"] = j.params;
    h["key"] = j.key;
    h["code"] = code_version;
    if (int rev = stage_revision(stage); rev > 1) h["revision"] = rev;
    json ups = json::object();
    for (auto& s : direct_upstream(stage)) {
      auto it = j.upstream.find(s);
      if (it != j.upstream.end()) {
        ups[s] = jobs[it->second].hash;
        j.deps.push_back(it->second);
      }
    }
    std::sort(j.deps.begin(), j.deps.end());
    h["upstream"] = ups;
    if (combo.seed) h["seed"] = *combo.seed;
    j.hash = sha256_hex(h.dump());
    j.job_id = j.hash.substr(0, 16);
    j.hash_inputs = std::move(h);
    if (combo.seed) {
      j.seed = *combo.seed;
      j.seed_given = true;
    } else {
      j.seed = std::stoull(j.hash.substr(0, 8), nullptr, 16) & 0x7fffffffULL;
    }
    return std::optional<PlannedJob>(std::move(j));
  }
};

}  // namespace

std::map<std::string, size_t> Plan::count_by_stage() const {
  std::map<std::string, size_t> m;
  for (auto& j : jobs) m[j.stage]++;
  return m;
}

int stage_revision(const std::string& stage) {
  // data 2: stimuli carry an orientation cap (orchestrator/data/synth.cc).
  // eval 2: transfer toward the target (worker/stages/eval.cc).
  // synthesis 2: the reference's guidance by default (x0 gradient, negatives per step, no clip before the critic).
  static const std::map<std::string, int> kRevisions = {{"data", 2}, {"eval", 2}, {"synthesis", 2}};
  auto it = kRevisions.find(stage);
  return it == kRevisions.end() ? 1 : it->second;
}

std::string default_code_version() { return std::string("migvis-") + MIGVIS_VERSION; }

bool is_safe_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  if (s.find("..") != std::string::npos) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              (i > 0 && (ch == '-' || ch == '.'));
    if (!ok) return false;
  }
  return true;
}

Result<Plan> expand_sweep(const std::string& yaml_text, const std::string& file, const ExpandOptions& opts) {
  Parser p(file);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: invalid YAML: {}", file, e.mark.line + 1, e.msg));
  }
  MIGVIS_ASSIGN_OR_RETURN(Sweep w, p.sweep(root));

  size_t max_jobs = opts.max_jobs;
  if (w.max_jobs > 0) max_jobs = std::min(max_jobs, static_cast<size_t>(w.max_jobs));

  // Missing upstream stages.
  for (auto& [st, blk] : w.stages)
    for (auto& up : direct_upstream(st))
      if (!w.stages.count(up))
        return p.err(blk.line, st,
                     fmt::format("missing upstream: {} needs the {} stage, which this sweep does not define", st, up));
  if (w.stages.empty()) return p.err(0, "sweep", "defines no stage (expected some of: data, vae, diffusion, ...)");
  if (w.stages.count("vae") && w.animals.empty())
    return p.err(w.stages["vae"].line, "animals", "missing: a sweep with a vae stage must list `animals: [...]`");

  // Upper bound on the job count before materialising anything.
  std::map<std::string, double> est;
  for (auto& st : stage_names()) {
    if (!w.stages.count(st)) continue;
    double n = count_spec(w.stages[st].spec);
    if (st == "vae") {
      double sessions = w.sessions.kind == SessionsSpec::kList
                            ? std::max<double>(w.sessions.list.size(), 1) * 1.0
                            : (w.sessions.kind == SessionsSpec::kPooled ? 1 : 64);
      for (auto& [a, l] : w.sessions.per_animal) sessions = std::max<double>(sessions, l.size());
      n *= est["data"] * static_cast<double>(w.animals.size()) * sessions;
    } else if (st == "diffusion") {
      n *= est["data"];
    } else if (st == "critic") {
      n *= est["vae"];
    } else if (st == "synthesis") {
      n *= est["critic"] * est["diffusion"];
    } else if (st == "eval") {
      n *= est["synthesis"];
    }
    est[st] = n;
  }
  double total = 0;
  for (auto& [s, n] : est) total += n;
  // The session count of `all` is an upper guess; only refuse on it when certain.
  if (total > static_cast<double>(max_jobs) * (w.sessions.kind == SessionsSpec::kAll ? 64 : 1))
    return p.err(0, "sweep",
                 fmt::format("expands to about {:.0f} jobs, more than the limit of {} (max_jobs); split the sweep or "
                             "shrink its grids",
                             total, max_jobs));

  Plan plan;
  plan.sweep = w.name;
  plan.source = file;
  std::vector<PlannedJob>& jobs = plan.jobs;
  Expander ex{p, w, jobs, opts.code_version.empty() ? default_code_version() : opts.code_version};
  std::unordered_map<std::string, size_t> by_hash;
  std::map<std::string, std::vector<size_t>> of_stage;

  for (auto& st : stage_names()) {
    if (!w.stages.count(st)) continue;
    const StageBlock& blk = w.stages[st];
    std::vector<Combo> combos;
    expand_spec(blk.spec, Combo{}, combos);

    // Upstream tuples: (key, ancestors).
    std::vector<std::pair<std::map<std::string, std::string>, std::map<std::string, size_t>>> tuples;
    if (st == "data") {
      tuples.push_back({{}, {}});
    } else if (st == "vae") {
      for (size_t d : of_stage["data"]) {
        for (auto& animal : w.animals) {
          std::vector<std::string> sessions;
          switch (w.sessions.kind) {
            case SessionsSpec::kPooled: sessions = {"pooled"}; break;
            case SessionsSpec::kList:
              if (!w.sessions.per_animal.empty()) {
                auto it = w.sessions.per_animal.find(animal);
                if (it == w.sessions.per_animal.end())
                  return p.err(w.sessions.line, "sessions", fmt::format("no sessions listed for animal {}", animal));
                sessions = it->second;
              } else {
                sessions = w.sessions.list;
              }
              break;
            case SessionsSpec::kAll: {
              const json& dp = jobs[d].params;
              int n = dp.contains("preset") ? preset_sessions_per_animal(dp["preset"].get<std::string>()) : 0;
              if (n == 0)
                return p.err(w.sessions.line, "sessions",
                             "`all` needs a synthetic preset dataset to know the sessions; list them instead "
                             "(sessions: [s1, s2])");
              for (int i = 1; i <= n; ++i) sessions.push_back(fmt::format("s{}", i));
              break;
            }
          }
          for (auto& s : sessions) tuples.push_back({{{"animal", animal}, {"session", s}}, {{"data", d}}});
        }
      }
    } else if (st == "diffusion") {
      for (size_t d : of_stage["data"]) tuples.push_back({{}, {{"data", d}}});
    } else if (st == "critic") {
      for (size_t v : of_stage["vae"]) {
        auto anc = jobs[v].upstream;
        anc["vae"] = v;
        tuples.push_back({jobs[v].key, anc});
      }
    } else if (st == "synthesis") {
      for (size_t c : of_stage["critic"])
        for (size_t f : of_stage["diffusion"]) {
          if (jobs[f].upstream.at("data") != jobs[c].upstream.at("data")) continue;  // same dataset only
          auto anc = jobs[c].upstream;
          anc["critic"] = c;
          anc["diffusion"] = f;
          tuples.push_back({jobs[c].key, anc});
        }
    } else if (st == "eval") {
      for (size_t s : of_stage["synthesis"]) {
        auto anc = jobs[s].upstream;
        anc["synthesis"] = s;
        tuples.push_back({jobs[s].key, anc});
      }
    }
    if (static_cast<double>(jobs.size()) + static_cast<double>(tuples.size()) * static_cast<double>(combos.size()) >
        static_cast<double>(max_jobs))
      return p.err(blk.line, st,
                   fmt::format("the sweep expands to more than the limit of {} jobs (max_jobs) at stage {} ({} x {} "
                               "more); split the sweep or shrink its grids",
                               max_jobs, st, tuples.size(), combos.size()));
    for (auto& [key, anc] : tuples) {
      for (auto& combo : combos) {
        MIGVIS_ASSIGN_OR_RETURN(auto job, ex.make_job(st, combo, key, anc));
        if (!job) continue;
        if (by_hash.count(job->hash)) continue;  // the same job reached twice (e.g. union overlap)
        by_hash[job->hash] = jobs.size();
        of_stage[st].push_back(jobs.size());
        jobs.push_back(std::move(*job));
      }
    }
    if (of_stage[st].empty())
      return p.err(blk.line, st, "expands to no jobs (every combination excluded, or no upstream jobs)");
    if (st == "data") {
      std::map<std::string, int> names;
      for (size_t i : of_stage[st])
        if (++names[jobs[i].key["dataset"]] > 1)
          return p.err(blk.line, "data.name",
                       fmt::format("several datasets are named \"{}\"; set data.name, e.g. \"${{data.preset}}-${{data.seed}}\"",
                                   jobs[i].key["dataset"]));
    }
  }
  return plan;
}

Result<Plan> load_sweep(const fs::path& path, const ExpandOptions& opts) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return expand_sweep(text, path.string(), opts);
}

fs::path job_dir_for(const fs::path& root, const PlannedJob& job) { return schema::job_dir(root, job.stage, job.job_id); }

YAML::Node json_to_yaml(const json& j) {
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (auto& [k, v] : j.items()) n[k] = json_to_yaml(v);
    return n;
  }
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (auto& v : j) n.push_back(json_to_yaml(v));
    return n;
  }
  if (j.is_null()) return YAML::Node(YAML::NodeType::Null);
  if (j.is_boolean()) return YAML::Node(j.get<bool>());
  if (j.is_number_integer()) return YAML::Node(j.get<int64_t>());
  if (j.is_number()) return YAML::Node(j.dump());  // shortest round-trip text
  return YAML::Node(j.get<std::string>());
}

schema::JobSpec job_spec_for(const Plan& plan, size_t i, const fs::path& root) {
  const PlannedJob& j = plan.jobs[i];
  fs::path abs = fs::absolute(root).lexically_normal();
  schema::JobSpec s;
  s.job_id = j.job_id;
  s.hash = j.hash;
  s.stage = j.stage;
  s.sweep = plan.sweep;
  s.key = j.key;
  s.seed = j.seed;
  s.params = json_to_yaml(j.params);
  if (j.stage != "data") {
    auto d = j.upstream.find("data");
    if (d != j.upstream.end()) s.inputs["dataset"] = (job_dir_for(abs, plan.jobs[d->second]) / "dataset.h5").string();
  }
  for (auto& st : input_stages(j.stage)) {
    auto it = j.upstream.find(st);
    if (it != j.upstream.end()) s.inputs[st] = job_dir_for(abs, plan.jobs[it->second]).string();
  }
  for (auto& [st, idx] : j.upstream) s.upstream[st] = plan.jobs[idx].job_id;
  s.resources = j.resources;
  return s;
}

std::string plan_to_text(const Plan& plan) {
  std::string out = fmt::format("sweep {}\n", plan.sweep);
  for (auto& [st, n] : plan.count_by_stage()) out += fmt::format("  {:<10} {} jobs\n", st, n);
  for (auto& j : plan.jobs) {
    std::vector<std::string> key, deps;
    for (auto& [k, v] : j.key) key.push_back(k + "=" + v);
    for (size_t d : j.deps) deps.push_back(plan.jobs[d].stage + ":" + plan.jobs[d].job_id);
    out += fmt::format("{} {} key[{}] seed={}{} deps[{}]\n    params {}\n", j.stage, j.job_id, fmt::join(key, ","),
                       j.seed, j.seed_given ? "" : "(derived)", fmt::join(deps, ","), j.params.dump());
  }
  return out;
}

}  // namespace migvis::sweeps
