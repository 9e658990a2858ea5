// Sweep expansion: per-stage parameter combinations (grid, zip, union,
// excludes) -> jobs stage by stage (upstream fan-out, interpolation, defaults,
// type checks) -> hashes and derived seeds. Parsing is in parse.cc, the job
// file in job_file.cc. See schemas/sweep.md.
#include "sweeps/sweep.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/hash.h"
#include "schemas/code_identity.h"
#include "schemas/stages.h"
#include "sweeps/defaults.h"
#include "sweeps/sweep_internal.h"

namespace migvis::sweeps {
using namespace internal;
namespace {

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

// The science identity (derived seeds, --keep-cache-on-code-change) holds what
// the job hash held before code fingerprints replaced them: the release string
// and the hand-kept stage revisions of that time. Frozen, so the seeds of
// existing sweeps stayed the same; not part of the cache key, never bumped.
constexpr const char* kSeedLineageRelease = "migvis-0.1.0";
int seed_lineage_revision(const std::string& stage) {
  static const std::map<std::string, int> k = {{"data", 2}, {"eval", 2}, {"synthesis", 2}};
  auto it = k.find(stage);
  return it == k.end() ? 1 : it->second;
}

struct Expander {
  const SweepErrors& p;
  const Sweep& w;
  const std::vector<PlannedJob>& jobs;
  const schema::CodeFingerprints& code;
  const ExpandOptions& opts;

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
      case ParamType::kStringList: {
        if (!v.is_array()) return bad();
        for (auto& e : v)
          if (!e.is_string()) return bad();
        break;
      }
      case ParamType::kImport: {
        if (!v.is_object() || v.size() != 2 || !v.contains("format") || !v.contains("path") ||
            !v["format"].is_string() || !v["path"].is_string())
          return bad();
        break;
      }
    }
    // Ranges (element-wise for lists): a bad value is found now, not when the
    // job that reads it fails hours into a sweep.
    if (const ParamRange* r = param_range(stage, name)) {
      auto in_range = [&](const json& e) {
        if (!e.is_number()) return true;
        const double d = e.get<double>();
        return (r->min_exclusive ? d > r->min : d >= r->min) && d <= r->max;
      };
      const bool ok = v.is_array() ? std::all_of(v.begin(), v.end(), in_range) : in_range(v);
      if (!ok) return p.err(at.line, at.path, fmt::format("expected a value {}, got {}", r->describe(), v.dump()));
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
    auto fp = code.find(stage);
    if (fp == code.end() || fp->second.empty())
      return Status::InvalidArgument(fmt::format("{}: no code fingerprint for stage {} in the fingerprint table", p.file(), stage));
    // An imported dataset's identity is its file's content, not its path alone.
    std::string data_content;
    if (stage == "data" && j.params.contains("import")) {
      const std::string path = j.params["import"]["path"].get<std::string>();
      const Val& at = raw["import"];
      if (!fs::path(path).is_absolute())
        return p.err(at.line, "data.params.import.path",
                     fmt::format("\"{}\" is relative; give an absolute path (the file's content is hashed when the "
                                 "sweep is planned)", path));
      auto digest = opts.file_digest ? opts.file_digest(path) : file_sha256(path);
      if (!digest.ok()) return p.err(at.line, "data.params.import.path", digest.status().message());
      data_content = "sha256:" + *digest;
    }
    // Cache identity (job hash, id, directory): everything that decides the
    // outputs, the code that computes them included.
    json h = json::object();
    h["stage"] = stage;
    h["params"] = j.params;
    h["key"] = j.key;
    h["code"] = fp->second;
    if (!data_content.empty()) h["data_content"] = data_content;
    // Science identity: the same without code fingerprints, over the upstream
    // jobs' science identities, so no code edit anywhere upstream moves a seed.
    json sci = json::object();
    sci["stage"] = stage;
    sci["params"] = j.params;
    sci["key"] = j.key;
    sci["code"] = kSeedLineageRelease;
    if (int rev = seed_lineage_revision(stage); rev > 1) sci["revision"] = rev;
    if (!data_content.empty()) sci["data_content"] = data_content;
    json ups = json::object(), sci_ups = json::object();
    for (auto& s : direct_upstream(stage)) {
      auto it = j.upstream.find(s);
      if (it != j.upstream.end()) {
        ups[s] = jobs[it->second].hash;
        sci_ups[s] = jobs[it->second].science_hash;
        j.deps.push_back(it->second);
      }
    }
    std::sort(j.deps.begin(), j.deps.end());
    h["upstream"] = ups;
    sci["upstream"] = sci_ups;
    if (combo.seed) {
      h["seed"] = *combo.seed;
      sci["seed"] = *combo.seed;
    }
    j.hash = sha256_hex(h.dump());
    j.job_id = j.hash.substr(0, 16);
    j.hash_inputs = std::move(h);
    j.science_hash = sha256_hex(sci.dump());
    if (combo.seed) {
      j.seed = *combo.seed;
      j.seed_given = true;
    } else {
      j.seed = std::stoull(j.science_hash.substr(0, 8), nullptr, 16) & 0x7fffffffULL;
    }
    // Opt-out for cosmetic code changes: a completed job of the same science
    // identity built by other code stands in for this one (and downstream jobs
    // hash against it).
    if (opts.kept_cache) {
      if (std::optional<KeptJob> kept = opts.kept_cache(j)) {
        j.kept_from_code = j.hash_inputs.value("code", "");
        j.hash = kept->hash;
        j.job_id = kept->hash.substr(0, 16);
        j.hash_inputs = kept->hash_inputs;
      }
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
  SweepErrors p(file);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: invalid YAML: {}", file, e.mark.line + 1, e.msg));
  }
  MIGVIS_ASSIGN_OR_RETURN(Sweep w, parse_sweep(root, p));

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
  const schema::CodeFingerprints& code = opts.code.empty() ? schema::built_in_code_fingerprints() : opts.code;
  Expander ex{p, w, jobs, code, opts};
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

}  // namespace migvis::sweeps
