// Sweep parsing: YAML -> internal::Sweep. Strict: unknown keys, wrong types,
// unsafe names and bad references are errors naming file:line and the key
// path (schemas/sweep.md). Nothing here expands or hashes.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "schemas/stages.h"
#include "sweeps/defaults.h"
#include "sweeps/sweep.h"
#include "sweeps/sweep_internal.h"

namespace migvis::sweeps::internal {

Status SweepErrors::err(int line, const std::string& path, const std::string& msg) const {
  if (line > 0) return Status::InvalidArgument(fmt::format("{}:{}: {}: {}", file_, line, path, msg));
  return Status::InvalidArgument(fmt::format("{}: {}: {}", file_, path, msg));
}

Status SweepErrors::err(const YAML::Node& n, const std::string& path, const std::string& msg) const {
  return err(line_of(n), path, msg);
}

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


namespace {

// The strict parser: every key checked, every value typed, errors with file:line.
class Parser : public SweepErrors {
 public:
  explicit Parser(std::string file) : SweepErrors(std::move(file)) {}
  using SweepErrors::err;

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
      if (b["resources"]) {
        MIGVIS_ASSIGN_OR_RETURN(blk.resources, resources(b["resources"], st + ".resources", {}));
        // A stage asked for GPUs it cannot use is refused now (the stage registry says which can).
        Status gpu = schema::check_stage_gpus(st, blk.resources.gpus);
        if (!gpu.ok()) return err(b["resources"], st + ".resources.gpus", gpu.message());
      }
      if (b["name"]) {
        if (!b["name"].IsScalar()) return err(b["name"], "data.name", "expected a name, got " + got_text(b["name"]));
        blk.name = Val{b["name"].Scalar(), line_of(b["name"]), "data.name"};
      }
      w.stages[st] = std::move(blk);
    }
    return w;
  }

};

}  // namespace

namespace {

// yaml-cpp keeps both entries of a duplicated key and lookups see only the
// first, so `vae: {...}` written twice would silently drop the second block.
// Walk every mapping once and refuse any key it holds twice, naming both lines.
Status reject_duplicate_keys(const YAML::Node& n, const std::string& path, const SweepErrors& errors) {
  if (n.IsMap()) {
    std::map<std::string, int> first_line;
    for (auto it : n) {
      const std::string k = it.first.IsScalar() ? it.first.Scalar() : std::string("?");
      const std::string sub = path.empty() ? k : path + "." + k;
      auto [seen, fresh] = first_line.emplace(k, line_of(it.first));
      if (!fresh)
        return errors.err(it.first, sub,
                          fmt::format("duplicate key (first at line {}); YAML would keep only one of them, so merge "
                                      "the two blocks",
                                      seen->second));
      MIGVIS_RETURN_IF_ERROR(reject_duplicate_keys(it.second, sub, errors));
    }
  } else if (n.IsSequence()) {
    size_t i = 0;
    for (auto e : n) MIGVIS_RETURN_IF_ERROR(reject_duplicate_keys(e, fmt::format("{}[{}]", path, i++), errors));
  }
  return Status::Ok();
}

}  // namespace

Result<Sweep> parse_sweep(const YAML::Node& root, const SweepErrors& errors) {
  MIGVIS_RETURN_IF_ERROR(reject_duplicate_keys(root, "", errors));
  Parser p(errors.file());
  return p.sweep(root);
}

}  // namespace migvis::sweeps::internal
