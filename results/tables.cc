#include "results/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "results/render.h"

namespace migvis::catalog {
namespace {

// A job's table identity, flattened: "<stage>.<param>" and "<stage>.key.<field>"
// -> value text, over the job and its whole upstream chain (see tables.h).
using Ident = std::map<std::string, std::string>;

struct Job {
  std::string id, stage, animal, session, status, note;
  std::optional<int64_t> seed;
  json key, params, upstream;
  std::map<std::string, double> metrics;  // finite scalar metrics
  std::set<std::string> nonfinite;        // scalar metrics stored as NaN (NULL) or +-inf
  Ident ident;
};

const std::vector<std::string> kModels = {"vae", "beta_vae", "tcvae", "migvis", "migvis_unsup"};
// Disentanglement: the supervised SAP / FactorVAE on the dataset's factors
// (they separate models on planted data), then the reference definitions
// (docs/METRICS.md says why those do not), then the reference's pose read-out.
const std::vector<std::pair<std::string, std::string>> kVaeColumns = {
    {"test_r2", "R²"},
    {"test_mse", "MSE"},
    {"test_bits_per_spike", "bits/spike"},
    {"mig", "MIG"},
    {"mig_group", "MIG (group)"},
    {"sap_factors", "SAP"},
    {"sap_factors_group", "SAP (group)"},
    {"factorvae_factors", "FactorVAE"},
    {"factorvae_factors_group", "FactorVAE (group)"},
    {"sap", "SAP (ref.)"},
    {"factorvae", "FactorVAE (ref.)"},
    {"pose_test_r2", "pose R²"},
    {"pose_test_rmse", "pose RMSE"}};
const std::vector<std::string> kFactors = {"pose", "category", "identity", "position", "size"};
const std::vector<std::string> kAblated = {"w_tc", "w_kl", "w_guid", "group_rank"};
const char* kUnset = "(unset)";

std::string str_of(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{}", v.get<double>());
  return v.dump();
}

// Numbers compare as numbers, anything else as text (row order, ties).
bool value_less(const std::string& a, const std::string& b) {
  char *ea = nullptr, *eb = nullptr;
  double x = std::strtod(a.c_str(), &ea), y = std::strtod(b.c_str(), &eb);
  bool na = !a.empty() && *ea == '\0', nb = !b.empty() && *eb == '\0';
  if (na && nb && x != y) return x < y;
  if (na != nb) return na;  // numbers first
  return a < b;
}

std::string value_in(const Ident& id, const std::string& path) {
  auto it = id.find(path);
  return it == id.end() ? kUnset : it->second;
}

struct Catalogue {
  std::vector<Job> jobs;
  std::map<std::string, size_t> index;
  std::set<std::string> unknown_upstream;  // ids named in jobs.upstream but not in the catalog
};

// Fills jobs[i].ident and .session from the job and its upstream chain.
void resolve_chain(Catalogue& c, size_t i, std::vector<int>& state) {
  if (state[i] == 2) return;
  Job& j = c.jobs[i];
  state[i] = 1;
  Ident id;
  for (auto& [k, v] : j.params.items())
    if (k != "seed" || j.stage == "data") id[j.stage + "." + k] = str_of(v);
  for (auto& [k, v] : j.key.items())
    if (k != "animal" && k != "session") id[j.stage + ".key." + k] = str_of(v);
  std::string session = j.key.contains("session") ? str_of(j.key["session"]) : "";
  for (auto& [name, v] : j.upstream.items()) {
    std::string up = str_of(v);
    auto it = c.index.find(up);
    if (it == c.index.end()) {
      id[name + ".job"] = "(not in catalog)";
      c.unknown_upstream.insert(up);
      continue;
    }
    if (state[it->second] == 1) continue;  // a cycle: never planned, do not loop
    resolve_chain(c, it->second, state);
    const Job& u = c.jobs[it->second];
    for (auto& [k, val] : u.ident) {
      auto [pos, fresh] = id.emplace(k, val);
      if (!fresh && pos->second != val) pos->second += "|" + val;  // two ancestors disagree: keep both
    }
    if (session.empty()) session = u.session;
  }
  j.ident = std::move(id);
  j.session = std::move(session);
  state[i] = 2;
}

Result<Catalogue> load_jobs(const Catalog& cat) {
  MIGVIS_ASSIGN_OR_RETURN(QueryResult r, cat.query("SELECT job_id, stage, key, params, seed, status, upstream, note "
                                                   "FROM jobs ORDER BY job_id"));
  Catalogue c;
  for (auto& row : r.rows) {
    Job j;
    j.id = value_to_string(row[0]);
    j.stage = value_to_string(row[1]);
    j.key = json::parse(value_to_string(row[2]), nullptr, false);
    j.params = json::parse(value_to_string(row[3]), nullptr, false);
    if (!j.key.is_object() || !j.params.is_object())
      return Status::DataLoss("catalog: job " + j.id + " has a non-object key or params");
    if (auto* s = std::get_if<int64_t>(&row[4])) j.seed = *s;
    j.status = value_to_string(row[5]);
    j.upstream = json::parse(value_to_string(row[6]), nullptr, false);
    if (!j.upstream.is_object()) j.upstream = json::object();
    j.note = value_to_string(row[7]);
    j.animal = j.key.contains("animal") ? str_of(j.key["animal"]) : "";
    c.index[j.id] = c.jobs.size();
    c.jobs.push_back(std::move(j));
  }
  std::vector<int> state(c.jobs.size(), 0);
  for (size_t i = 0; i < c.jobs.size(); ++i) resolve_chain(c, i, state);
  MIGVIS_ASSIGN_OR_RETURN(
      QueryResult m,
      cat.query("SELECT m.job_id, m.name, m.value FROM metrics m JOIN jobs j ON j.job_id = m.job_id "
                "WHERE m.step IS NULL AND j.stage IN ('vae', 'eval')"));
  for (auto& row : m.rows) {
    auto it = c.index.find(value_to_string(row[0]));
    if (it == c.index.end()) continue;
    Job& j = c.jobs[it->second];
    std::string name = value_to_string(row[1]);
    std::optional<double> v;
    if (auto* d = std::get_if<double>(&row[2])) v = *d;
    else if (auto* n = std::get_if<int64_t>(&row[2])) v = double(*n);
    // SQLite stores a NaN as NULL: a NULL scalar is a non-finite value.
    if (v && std::isfinite(*v)) j.metrics[name] = *v;
    else if (!std::holds_alternative<std::string>(row[2])) j.nonfinite.insert(name);
  }
  return c;
}

// The part of a row that comes from the session: "" (sessions aggregated),
// "pooled", or the session itself with --per-session.
std::string session_part(const Job& j, const TableOptions& o) {
  if (j.session == "pooled") return "pooled";
  return o.per_session ? j.session : "";
}

bool session_part_less(const std::string& a, const std::string& b) {
  auto rank = [](const std::string& s) { return s.empty() ? 0 : s == "pooled" ? 2 : 1; };
  if (rank(a) != rank(b)) return rank(a) < rank(b);
  return value_less(a, b);
}

// How an identity path reads in a label: "w_tc" when no other path of `paths`
// ends the same, else "vae.w_tc"; key fields by their name ("dataset").
std::map<std::string, std::string> display_names(const std::set<std::string>& paths) {
  auto bare = [](const std::string& p) {
    size_t k = p.find(".key.");
    if (k != std::string::npos) return p.substr(k + 5);
    if (p.size() > 4 && p.compare(p.size() - 4, 4, ".job") == 0) return p;  // "<stage>.job"
    size_t d = p.find('.');
    return d == std::string::npos ? p : p.substr(d + 1);
  };
  std::map<std::string, int> count;
  for (auto& p : paths) count[bare(p)]++;
  std::map<std::string, std::string> out;
  for (auto& p : paths) out[p] = count[bare(p)] > 1 && p.find(".key.") == std::string::npos ? p : bare(p);
  return out;
}

// The paths on which `ids` do not all agree. When the dataset's name differs,
// the data params that come with it are left out of labels (the name says it).
std::vector<std::string> differing_paths(const std::vector<const Ident*>& ids) {
  std::set<std::string> all;
  for (auto* id : ids)
    for (auto& [k, v] : *id) all.insert(k);
  std::vector<std::string> out;
  for (auto& p : all) {
    std::string first = value_in(*ids.front(), p);
    for (auto* id : ids)
      if (value_in(*id, p) != first) {
        out.push_back(p);
        break;
      }
  }
  bool dataset = std::find(out.begin(), out.end(), "data.key.dataset") != out.end();
  if (dataset)
    out.erase(std::remove_if(out.begin(), out.end(),
                             [](const std::string& p) { return p.rfind("data.", 0) == 0 && p != "data.key.dataset"; }),
              out.end());
  // Key fields (the dataset's name) first, then by path.
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    bool ka = a.find(".key.") != std::string::npos, kb = b.find(".key.") != std::string::npos;
    return ka != kb ? ka : a < b;
  });
  return out;
}

// One row's jobs (every status, every animal) and the label suffix that tells
// it from the other rows of its kind: " (w_tc=0.1, pooled)".
struct RowGroup {
  std::string suffix;
  std::vector<const Job*> jobs;
};

// Splits `cands` into one group per (identity, session part); see tables.h.
// `label_sessions`: the table holds more than one session part, so say which.
std::vector<RowGroup> split_rows(const std::vector<const Job*>& cands, const TableOptions& o, bool label_sessions) {
  std::map<Ident, std::map<std::string, std::vector<const Job*>>> by;
  for (auto* j : cands) by[j->ident][session_part(*j, o)].push_back(j);
  std::vector<const Ident*> ids;
  for (auto& [id, _] : by) ids.push_back(&id);
  std::vector<std::string> diff = ids.size() > 1 ? differing_paths(ids) : std::vector<std::string>{};
  auto names = display_names(std::set<std::string>(diff.begin(), diff.end()));
  std::stable_sort(ids.begin(), ids.end(), [&](const Ident* a, const Ident* b) {
    for (auto& p : diff) {
      std::string x = value_in(*a, p), y = value_in(*b, p);
      if (x != y) return value_less(x, y);
    }
    return false;
  });
  std::vector<RowGroup> out;
  for (auto* id : ids) {
    std::vector<std::string> parts;
    for (auto& p : diff) parts.push_back(names[p] + "=" + value_in(*id, p));
    std::vector<std::pair<std::string, std::vector<const Job*>>> sessions(by[*id].begin(), by[*id].end());
    std::sort(sessions.begin(), sessions.end(),
              [](auto& a, auto& b) { return session_part_less(a.first, b.first); });
    for (auto& [sp, js] : sessions) {
      std::vector<std::string> label = parts;
      if (label_sessions && !sp.empty()) label.push_back(sp == "pooled" ? "pooled" : "session " + sp);
      out.push_back({label.empty() ? "" : fmt::format(" ({})", fmt::join(label, ", ")), js});
    }
  }
  return out;
}

bool several_session_parts(const std::vector<const Job*>& js, const TableOptions& o) {
  std::set<std::string> parts;
  for (auto* j : js) parts.insert(session_part(*j, o));
  return parts.size() > 1;
}

std::string describe(const Job& j) {
  std::vector<std::string> what;
  if (j.seed) what.push_back(fmt::format("seed {}", *j.seed));
  if (!j.session.empty()) what.push_back("session " + j.session);
  return what.empty() ? "job " + j.id : fmt::format("job {} ({})", j.id, fmt::join(what, ", "));
}

std::string short_note(const std::string& note) {
  std::string s = note.substr(0, 100);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return note.size() > 100 ? s + "..." : s;
}

PaperTable empty_table(std::string id, std::string title, std::string caption, std::string row_header,
                       const std::vector<std::string>& animals) {
  PaperTable t;
  t.id = std::move(id);
  t.title = std::move(title);
  t.caption = std::move(caption);
  t.row_header = std::move(row_header);
  t.animals = animals;
  return t;
}

// Appends row `label` from `jobs` (one identity, every animal) over `metrics`
// (`labels` name them in notes), with its missing cells and notes.
// `jobs_label` names the jobs in failure notes when several rows share them
// (tables 2 and 3: "eval jobs (model=migvis)"); a note already given is not repeated.
// `unread(job, m)`: the job's judge cannot read column m's factor (eval metric
// [pixel.]unread.<factor>), so its lack of a value is neither missing nor a gap;
// a cell with no value and such jobs shows "unread" (Cell::text).
using UnreadFn = std::function<bool(const Job&, size_t)>;
void fill_row(PaperTable& t, const std::string& label, const std::vector<std::string>& metrics,
              const std::vector<std::string>& labels, const std::vector<const Job*>& jobs,
              const std::string& jobs_label = "", const UnreadFn& unread = nullptr) {
  auto note = [&t](std::string n) {
    if (std::find(t.notes.begin(), t.notes.end(), n) == t.notes.end()) t.notes.push_back(std::move(n));
  };
  const std::string& who = jobs_label.empty() ? label : jobs_label;
  t.rows.push_back(label);
  std::vector<std::vector<Cell>> row;
  for (auto& a : t.animals) {
    std::vector<const Job*> done, failed, unfinished;
    std::set<std::pair<std::string, int64_t>> done_seeds;  // (session, seed) with a done job
    for (auto* j : jobs)
      if (j->animal == a && j->status == "done") {
        done.push_back(j);
        done_seeds.insert({j->session, j->seed.value_or(-1)});
      }
    for (auto* j : jobs)
      if (j->animal == a && j->status != "done" && !done_seeds.count({j->session, j->seed.value_or(-1)}))
        (j->status == "failed" ? failed : unfinished).push_back(j);
    std::vector<Cell> cells;
    std::vector<std::string> lacking;
    for (size_t m = 0; m < metrics.size(); ++m) {
      Cell c;
      std::vector<double> v;
      std::vector<std::string> bad, absent, unread_by;
      for (auto* j : done) {
        auto it = j->metrics.find(metrics[m]);
        if (it != j->metrics.end()) v.push_back(it->second);
        else if (j->nonfinite.count(metrics[m])) bad.push_back(describe(*j));
        else if (unread && unread(*j, m)) unread_by.push_back(describe(*j));
        else absent.push_back(describe(*j));
      }
      c.n = static_cast<int>(v.size());
      if (v.empty() && !unread_by.empty()) c.text = "unread";
      else if (!unread_by.empty())  // read by some jobs' judges only: the cell averages those
        t.notes.push_back(fmt::format("{} / {} / {}: unread (judge below min_readout) by {}", a, label, labels[m],
                                      fmt::join(unread_by, ", ")));
      c.n_failed = static_cast<int>(failed.size() + bad.size());
      if (!v.empty()) {
        double s = 0;
        for (double x : v) s += x;
        c.mean = s / v.size();
        double ss = 0;
        for (double x : v) ss += (x - c.mean) * (x - c.mean);
        c.std = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0;
      }
      if (!bad.empty())
        t.notes.push_back(fmt::format("{} / {} / {}: non-finite value from {}", a, label, labels[m], fmt::join(bad, ", ")));
      if (!done.empty() && absent.size() == done.size()) lacking.push_back(metrics[m]);
      else if (!absent.empty())
        t.notes.push_back(fmt::format("{} / {} / {}: no value from {}", a, label, labels[m], fmt::join(absent, ", ")));
      cells.push_back(c);
    }
    if (done.empty()) t.missing.push_back(fmt::format("{} / {}: no done jobs", a, label));
    else if (!lacking.empty())
      t.missing.push_back(fmt::format("{} / {}: no {}", a, label, fmt::join(lacking, ", ")));
    for (auto* j : failed)
      note(fmt::format("{} / {}: {} failed{}", a, who, describe(*j), j->note.empty() ? "" : ": " + short_note(j->note)));
    for (auto* j : unfinished) note(fmt::format("{} / {}: {} is {}, not counted", a, who, describe(*j), j->status));
    row.push_back(std::move(cells));
  }
  t.cells.push_back(std::move(row));
  t.marked.emplace_back(t.animals.size(), -1);
}

bool param_is(const Job& j, const std::string& name, const std::string& value) {
  return j.params.contains(name) && str_of(j.params[name]) == value;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '%' || c == '&' || c == '#' || c == '$' || c == '{' || c == '}') out += '\\';
    out += c;
  }
  // Unicode in labels: plain LaTeX spellings.
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"R²", "$R^2$"}, {"γ", "$\\gamma$"}, {"±", "$\\pm$"}, {"<", "$<$"}, {">", "$>$"}, {"`", ""}}) {
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size()))
      out.replace(p, from.size(), to);
  }
  return out;
}

std::string num(double x) {
  double a = std::fabs(x);
  if (a == 0 || (a >= 0.001 && a < 10000)) return fmt::format("{:.3f}", x);
  return fmt::format("{:.2e}", x);
}

std::string latex_cell(const Cell& c) {
  if (!c.text.empty()) return latex_escape(c.text);
  if (c.n == 0) return "--";
  if (c.n == 1) return fmt::format("${}$ ($n$=1)", num(c.mean));
  return fmt::format("${} \\pm {}$ ($n$={})", num(c.mean), num(c.std), c.n);
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_cell(const Cell& c) {
  if (!c.text.empty()) return c.text;
  if (c.n == 0) return "—";
  if (c.n == 1) return num(c.mean) + " (n=1)";
  return fmt::format("{} ± {} (n={})", num(c.mean), num(c.std), c.n);
}

Result<std::vector<PaperTable>> build_paper_tables(const Catalog& cat, const TableOptions& opts) {
  MIGVIS_ASSIGN_OR_RETURN(Catalogue c, load_jobs(cat));
  const std::vector<Job>& jobs = c.jobs;
  std::set<std::string> animal_set;
  bool any_metrics = false;
  for (auto& j : jobs)
    if ((j.stage == "vae" || j.stage == "eval") && !j.animal.empty()) {
      animal_set.insert(j.animal);
      any_metrics = any_metrics || (j.status == "done" && (!j.metrics.empty() || !j.nonfinite.empty()));
    }
  std::vector<std::string> animals(animal_set.begin(), animal_set.end());
  std::vector<std::string> vae_metrics, vae_labels;
  for (auto& [m, label] : kVaeColumns) {
    vae_metrics.push_back(m);
    vae_labels.push_back(label);
  }
  auto of_stage = [&](const std::string& stage, const std::function<bool(const Job&)>& pred) {
    std::vector<const Job*> out;
    for (auto& j : jobs)
      if (j.stage == stage && !j.animal.empty() && pred(j)) out.push_back(&j);
    return out;
  };
  const std::string over = opts.per_session ? "seeds" : "sessions x seeds";
  std::vector<PaperTable> out;

  // ---- Table 1
  PaperTable t1 = empty_table(
      "table1_reconstruction", "Table 1: Reconstruction and disentanglement",
      "Held-out reconstruction, disentanglement and pose-label read-out of each VAE (vae jobs by param `model`), "
      "mean ± std over " + over + " of one configuration (n values); a configuration's rows say what differs "
      "from the others of its model, and VAEs on the pooled sessions are rows of their own.",
      "model", animals);
  t1.columns = vae_labels;
  {
    auto all = of_stage("vae", [](const Job& j) {
      return j.params.contains("model") && std::count(kModels.begin(), kModels.end(), str_of(j.params["model"]));
    });
    bool label_sessions = several_session_parts(all, opts);
    for (auto& model : kModels) {
      std::vector<const Job*> mine;
      for (auto* j : all)
        if (param_is(*j, "model", model)) mine.push_back(j);
      auto groups = split_rows(mine, opts, label_sessions);
      if (groups.empty()) fill_row(t1, model, vae_metrics, vae_labels, {});
      for (auto& g : groups) fill_row(t1, model + g.suffix, vae_metrics, vae_labels, g.jobs);
    }
  }
  out.push_back(std::move(t1));

  // Eval rows (one per identity and session part), shared by tables 2 and 3.
  auto evals = of_stage("eval", [](const Job&) { return true; });
  auto eval_groups = split_rows(evals, opts, several_session_parts(evals, opts));
  // Table 2 uses the most informative measure the eval jobs report: transfer.*
  // (how specific each factor is to the guiding target, relative to two random
  // stimuli), else nchange.* (the change relative to two random stimuli,
  // comparable across factors), else change.* (label units).
  bool has_transfer = false, normalized = false;
  for (auto* j : evals)
    for (auto& [name, v] : j->metrics) {
      if (name.rfind("transfer.g", 0) == 0) has_transfer = true;
      if (name.rfind("nchange.g", 0) == 0) normalized = true;
    }
  const std::string change_prefix = has_transfer ? "transfer" : normalized ? "nchange" : "change";
  // What each eval configuration reports: its groups (CNN judge; the pixel
  // judge's, metrics pixel.*), whether it gives the judges' read-out scores
  // (judge.<f>, pixel.judge.<f>) and their agreement (agreement.<f>), its γ grid.
  // Table 2's columns are the factors some eval job reports (a value, or an
  // unread mark): a factor dropped at eval as constant is no column.
  struct EvalShape {
    int groups = 0, pixel_groups = 0;
    bool judge = false, pixel_judge = false, agreement = false;
    std::set<double> gammas;
  };
  std::vector<EvalShape> shapes;
  std::set<std::string> reported, extra_factors;
  auto group_factor = [](const std::string& name, const std::string& prefix, int& gi, std::string& factor) {
    char f[64];
    if (name.rfind(prefix + ".g", 0) != 0 || std::sscanf(name.c_str() + prefix.size(), ".g%d.%63s", &gi, f) != 2)
      return false;
    factor = f;
    return true;
  };
  for (auto& g : eval_groups) {
    EvalShape s;
    for (auto* j : g.jobs)
      for (auto& [name, v] : j->metrics) {
        int gi = 0;
        std::string factor;
        if (group_factor(name, change_prefix, gi, factor)) s.groups = std::max(s.groups, gi);
        else if (group_factor(name, "pixel." + change_prefix, gi, factor)) s.pixel_groups = std::max(s.pixel_groups, gi);
        else if (name.rfind("unread.", 0) == 0) factor = name.substr(7);
        else if (name.rfind("pixel.unread.", 0) == 0) factor = name.substr(13);
        if (!factor.empty()) {
          reported.insert(factor);
          if (std::find(kFactors.begin(), kFactors.end(), factor) == kFactors.end()) extra_factors.insert(factor);
        }
        s.judge = s.judge || name.rfind("judge.", 0) == 0;
        s.pixel_judge = s.pixel_judge || name.rfind("pixel.judge.", 0) == 0;
        s.agreement = s.agreement || name.rfind("agreement.", 0) == 0;
        for (const char* prefix : {"guided_change.gamma", "guided_transfer.gamma", "quality.gamma"})
          if (name.rfind(prefix, 0) == 0) {
            char* e = nullptr;
            std::string rest = name.substr(std::strlen(prefix));
            double gm = std::strtod(rest.c_str(), &e);
            if (!rest.empty() && *e == '\0') s.gammas.insert(gm);
          }
      }
    shapes.push_back(s);
  }

  // ---- Table 2
  PaperTable t2 = empty_table(
      "table2_selectivity", "Table 2: Group selectivity",
      (has_transfer
           ? "Transfer: how specific each semantic factor of the images guided by each latent group of the MIG-Vis "
             "VAE is to the guiding target image (the factor read-out's distance to the other pairs' targets minus "
             "the distance to its own), relative to the difference between two random stimuli, at the eval job's "
             "reported γ (metric report_gamma; eval metric transfer.g<g>.<factor>; 0 = chance, 1 = as far as two "
             "unrelated images), mean ± std over " + over + "; the factor each group moves most is marked. Table "
             "3's γ = 0 row gives the unguided value. Judges: a CNN and a pixel model (ridge on random pixel and "
             "conv features), each the average of the eval job's judge_seeds members (metric judge_seeds), both "
             "trained only on stimuli the critic and the diffusion model never saw; rows \"(pixel)\" "
             "are the pixel judge's; \"unread\" marks a factor whose judge's chance-corrected read-out score is "
             "below min_readout (eval metric unread.<factor>), not a missing value; the last rows give each judge's "
             "read-out score (judge.<factor>, pixel.judge.<factor>; 0 = chance, 1 = perfect) and their agreement "
             "(agreement.<factor>: correlation of the two judges' per-item changes), when the eval jobs report them."
       : normalized
           ? "Change of each semantic factor when guiding each latent group of the MIG-Vis VAE, at the eval job's "
             "reported γ (metric report_gamma; default the grid value nearest 100), relative to the change between "
             "two random stimuli (eval metric nchange.g<g>.<factor>; 1 = as different as unrelated images), mean ± "
             "std over " + over + "; the dominant factor of each group is marked."
           : "Change of each semantic factor when guiding each latent group of the MIG-Vis VAE, at the eval job's "
             "reported γ (metric report_gamma) (eval metric change.g<g>.<factor>), mean ± std over " + over +
             "; the dominant factor of each group is marked.") +
          std::string(" Each row is one configuration of the whole chain (dataset, VAE, diffusion model, critic, "
                      "synthesis, eval); rows of several configurations say what differs."),
      "group", animals);
  std::vector<std::string> factors;
  for (auto& f : kFactors)
    if (reported.count(f) || reported.empty()) factors.push_back(f);
  factors.insert(factors.end(), extra_factors.begin(), extra_factors.end());
  t2.columns = factors;
  // "group 1" + " (model=migvis)" with tag "pixel" -> "group 1 (pixel, model=migvis)".
  auto tagged = [](const std::string& base, const std::string& tag, const std::string& suffix) {
    if (suffix.empty()) return base + " (" + tag + ")";
    return base + " (" + tag + ", " + suffix.substr(2);
  };
  // A job's judge cannot read a factor: eval metric <judge>unread.<factor>.
  auto unread_by = [&](std::vector<std::string> judges) -> UnreadFn {
    return [&factors, judges](const Job& j, size_t col) {
      for (auto& p : judges)
        if (j.metrics.count(p + "unread." + factors[col]) || j.nonfinite.count(p + "unread." + factors[col]))
          return true;
      return false;
    };
  };
  for (size_t gi = 0; gi < eval_groups.size(); ++gi) {
    const std::string& suffix = eval_groups[gi].suffix;
    const std::string who = "eval jobs" + suffix;
    auto group_rows = [&](const std::string& judge, int groups, const std::string& tag) {
      for (int g = 1; g <= groups; ++g) {
        std::vector<std::string> ms;
        for (auto& f : factors) ms.push_back(fmt::format("{}{}.g{}.{}", judge, change_prefix, g, f));
        const std::string base = fmt::format("group {}", g);
        fill_row(t2, tag.empty() ? base + suffix : tagged(base, tag, suffix), ms, factors, eval_groups[gi].jobs, who,
                 unread_by({judge}));
        for (size_t a = 0; a < animals.size(); ++a) {
          int best = -1;
          for (size_t col = 0; col < factors.size(); ++col) {
            const Cell& cell = t2.cells.back()[a][col];
            if (cell.n && (best < 0 || cell.mean > t2.cells.back()[a][best].mean)) best = static_cast<int>(col);
          }
          t2.marked.back()[a] = best;
        }
      }
    };
    group_rows("", shapes[gi].groups, "");
    group_rows("pixel.", shapes[gi].pixel_groups, "pixel");
    // Judge quality: each factor's chance-corrected read-out score on stimuli
    // the judge never saw (0 = chance, 1 = perfect; shown even when below
    // min_readout), and the two judges' agreement (unread when either cannot read).
    auto per_factor = [&](const std::string& prefix) {
      std::vector<std::string> ms;
      for (auto& f : factors) ms.push_back(prefix + f);
      return ms;
    };
    if (shapes[gi].judge)
      fill_row(t2, tagged("read-out score", "CNN judge", suffix), per_factor("judge."), factors, eval_groups[gi].jobs, who);
    if (shapes[gi].pixel_judge)
      fill_row(t2, tagged("read-out score", "pixel judge", suffix), per_factor("pixel.judge."), factors,
               eval_groups[gi].jobs, who);
    if (shapes[gi].agreement)
      fill_row(t2, tagged("judge agreement", "r", suffix), per_factor("agreement."), factors, eval_groups[gi].jobs, who,
               unread_by({"", "pixel."}));
  }
  if (t2.rows.empty())
    t2.missing.push_back("no done eval jobs with transfer.g<g>.<factor> or change.g<g>.<factor> metrics");
  out.push_back(std::move(t2));

  // ---- Table 3
  PaperTable t3 = empty_table("table3_guidance", "Table 3: Guidance sweep",
                              "For each guidance strength γ: the change (from the γ = 0 image) of the factor each "
                              "guided group changes most and the transfer (table 2) of the factor each group moves "
                              "most at the reported γ, both relative to two random stimuli and averaged over groups, "
                              "and the image-quality proxy (feature distance to the stimulus set; lower is better), "
                              "mean ± std over " + over + " of one configuration. "
                              "The critic's own MI estimate (eval metric mi.gamma<γ>) is not shown: the guiding "
                              "critic scoring its own objective is circular, not evidence of selectivity.",
                              "γ", animals);
  t3.columns = {"guided change", "guided transfer", "quality"};
  for (size_t gi = 0; gi < eval_groups.size(); ++gi)
    for (double gm : shapes[gi].gammas) {
      std::string s = fmt::format("{:g}", gm);
      fill_row(t3, "γ = " + s + eval_groups[gi].suffix,
               {"guided_change.gamma" + s, "guided_transfer.gamma" + s, "quality.gamma" + s},
               t3.columns, eval_groups[gi].jobs, "eval jobs" + eval_groups[gi].suffix);
    }
  if (t3.rows.empty())
    t3.missing.push_back(
        "no done eval jobs with guided_change.gamma<γ>, guided_transfer.gamma<γ> or quality.gamma<γ> metrics");
  out.push_back(std::move(t3));

  // ---- Table 4
  PaperTable t4 = empty_table("table4_ablation", "Table 4: Ablations",
                              "MIG-Vis VAE (model=migvis) with one weight or the group size changed and every other "
                              "parameter (of the VAE and its dataset) at the base configuration given in the notes; "
                              "table 1's columns, mean ± std over " + over + ".",
                              "setting", animals);
  t4.columns = vae_labels;
  {
    auto migvis = of_stage("vae", [](const Job& j) { return param_is(j, "model", "migvis"); });
    bool label_sessions = several_session_parts(migvis, opts);
    std::set<Ident> idents;
    for (auto* j : migvis) idents.insert(j->ident);
    std::set<std::string> paths;
    for (auto& id : idents)
      for (auto& [k, v] : id) paths.insert(k);
    // Base: the most common value of each path over the configurations; ties:
    // the middle one of the tied values (the centre of a full grid).
    Ident base;
    std::vector<std::string> varying;  // paths with more than one value
    for (auto& p : paths) {
      std::map<std::string, int> count;
      for (auto& id : idents) count[value_in(id, p)]++;
      int best = 0;
      for (auto& [v, n] : count) best = std::max(best, n);
      std::vector<std::string> tied;
      for (auto& [v, n] : count)
        if (n == best) tied.push_back(v);
      std::sort(tied.begin(), tied.end(), value_less);
      base[p] = tied[(tied.size() - 1) / 2];
      if (count.size() > 1) varying.push_back(p);
    }
    auto names = display_names(paths);
    for (auto& p : kAblated) {
      const std::string path = "vae." + p;
      std::set<std::string> all_values;
      for (auto& id : idents)
        if (id.count(path)) all_values.insert(id.at(path));
      if (all_values.size() < 2) {
        t4.notes.push_back(all_values.empty() ? fmt::format("{}: no model=migvis jobs set it", p)
                                              : fmt::format("{}: not varied (only {} = {})", p, p, *all_values.begin()));
        continue;
      }
      std::map<std::string, std::vector<const Job*>> by_value;
      for (auto* j : migvis) {
        bool at_base = true;
        for (auto& q : paths)
          if (q != path && value_in(j->ident, q) != base[q]) {
            at_base = false;
            break;
          }
        if (at_base) by_value[value_in(j->ident, path)].push_back(j);
      }
      if (by_value.size() < 2) {
        t4.notes.push_back(fmt::format("{}: varied ({}), but never with every other parameter at base", p,
                                       fmt::join(all_values, ", ")));
        continue;
      }
      std::vector<std::string> values;
      for (auto& [v, _] : by_value) values.push_back(v);
      std::sort(values.begin(), values.end(), value_less);
      for (auto& v : values) {
        std::string label = p + " = " + v;
        for (auto& g : split_rows(by_value[v], opts, label_sessions)) {
          std::string suffix = g.suffix;  // " (pooled)" -> " (base, pooled)"
          if (v == base[path]) suffix = suffix.empty() ? " (base)" : " (base, " + suffix.substr(2);
          fill_row(t4, label + suffix, vae_metrics, vae_labels, g.jobs);
        }
      }
    }
    if (!idents.empty()) {
      std::vector<std::string> b;
      for (auto& p : kAblated)
        if (base.count("vae." + p)) b.push_back(p + " = " + base["vae." + p]);
      for (auto& p : varying)
        if (std::find(kAblated.begin(), kAblated.end(), p.substr(p.find('.') + 1)) == kAblated.end() ||
            p.rfind("vae.", 0) != 0)
          b.push_back(names[p] + " = " + base[p]);
      t4.notes.insert(t4.notes.begin(),
                      fmt::format("base: {} (the most common value of each parameter over the {} model=migvis "
                                  "configurations; ties: the middle of the tied values)",
                                  fmt::join(b, ", "), idents.size()));
    }
  }
  if (t4.rows.empty()) t4.missing.push_back("no ablation: no model=migvis parameter among w_tc, w_kl, w_guid, group_rank has two values with the others at base");
  out.push_back(std::move(t4));

  for (auto& t : out)
    if (animals.empty() || !any_metrics) t.missing.insert(t.missing.begin(), "the catalog holds no done vae or eval jobs with metrics");
    else if (animals.size() == 1)
      t.notes.push_back("only one animal (" + animals[0] + ") in the catalog; the other macaque's columns are absent");
  if (!c.unknown_upstream.empty())
    for (auto& t : out)
      t.notes.push_back(fmt::format("{} upstream job(s) named by jobs.upstream are not in the catalog (e.g. {}); jobs "
                                    "downstream of them form configurations of their own",
                                    c.unknown_upstream.size(), *c.unknown_upstream.begin()));
  return out;
}

Result<TableFormat> parse_table_format(const std::string& name) {
  if (name == "md" || name == "markdown") return TableFormat::kMarkdown;
  if (name == "latex" || name == "tex") return TableFormat::kLatex;
  if (name == "csv") return TableFormat::kCsv;
  return Status::InvalidArgument(fmt::format("--format {}: expected md, latex or csv", name));
}

const char* table_file_extension(TableFormat f) {
  switch (f) {
    case TableFormat::kMarkdown: return "md";
    case TableFormat::kLatex: return "tex";
    case TableFormat::kCsv: return "csv";
    case TableFormat::kHtml: return "html";
  }
  return "txt";
}
std::string render_table(const PaperTable& t, TableFormat f) {
  std::string o;
  const size_t na = t.animals.size(), nc = t.columns.size();
  if (f == TableFormat::kCsv) {
    o += "table,row,animal,column,mean,std,n,n_failed\n";
    for (size_t r = 0; r < t.rows.size(); ++r)
      for (size_t a = 0; a < na; ++a)
        for (size_t c = 0; c < nc; ++c) {
          const Cell& x = t.cells[r][a][c];
          o += fmt::format("{},{},{},{},{},{},{},{}\n", t.id, csv_field(t.rows[r]), csv_field(t.animals[a]),
                           csv_field(t.columns[c]), x.n ? fmt::format("{}", x.mean) : "",
                           x.n ? fmt::format("{}", x.std) : "", x.n, x.n_failed);
        }
    return o;
  }
  auto mark = [&](size_t r, size_t a, size_t c, const std::string& s) {
    bool m = t.marked[r][a] == static_cast<int>(c);
    if (!m) return s;
    if (f == TableFormat::kMarkdown) return "**" + s + "**";
    if (f == TableFormat::kLatex) return "\\textbf{" + s + "}";
    return "<strong>" + s + "</strong>";
  };
  if (f == TableFormat::kMarkdown) {
    o += "### " + t.title + "\n\n" + t.caption + "\n\n| " + t.row_header;
    for (auto& a : t.animals)
      for (auto& c : t.columns) o += " | " + a + " " + c;
    o += " |\n|---";
    for (size_t i = 0; i < na * nc; ++i) o += "|---:";
    o += "|\n";
    for (size_t r = 0; r < t.rows.size(); ++r) {
      o += "| " + t.rows[r];
      for (size_t a = 0; a < na; ++a)
        for (size_t c = 0; c < nc; ++c) o += " | " + mark(r, a, c, format_cell(t.cells[r][a][c]));
      o += " |\n";
    }
    if (t.rows.empty()) o += "| (no rows) |\n";
    if (!t.missing.empty()) {
      o += "\nMissing:\n";
      for (auto& m : t.missing) o += "- " + m + "\n";
    }
    if (!t.notes.empty()) {
      o += "\nNotes:\n";
      for (auto& n : t.notes) o += "- " + n + "\n";
    }
    return o + "\n";
  }
  if (f == TableFormat::kLatex) {
    o += "% " + t.title + "\n\\begin{table}[t]\n\\centering\n\\caption{" + latex_escape(t.caption) + "}\n";
    o += "\\label{tab:" + t.id + "}\n\\begin{tabular}{l";
    for (size_t a = 0; a < na; ++a) o += "|" + std::string(nc, 'c');
    o += "}\n\\hline\n";
    for (auto& a : t.animals) o += fmt::format(" & \\multicolumn{{{}}}{{c}}{{{}}}", nc, latex_escape(a));
    o += " \\\\\n" + latex_escape(t.row_header);
    for (size_t a = 0; a < na; ++a)
      for (auto& c : t.columns) o += " & " + latex_escape(c);
    o += " \\\\\n\\hline\n";
    for (size_t r = 0; r < t.rows.size(); ++r) {
      o += latex_escape(t.rows[r]);
      for (size_t a = 0; a < na; ++a)
        for (size_t c = 0; c < nc; ++c) {
          o += " & " + mark(r, a, c, latex_cell(t.cells[r][a][c]));
        }
      o += " \\\\\n";
    }
    o += "\\hline\n\\end{tabular}\n";
    for (auto& m : t.missing) o += "% missing: " + m + "\n";
    for (auto& n : t.notes) o += "% note: " + n + "\n";
    return o + "\\end{table}\n\n";
  }
  // HTML
  o += "<table class=\"paper\">\n<caption>" + html_escape(t.caption) + "</caption>\n<thead><tr><th rowspan=\"2\">" +
       html_escape(t.row_header) + "</th>";
  for (auto& a : t.animals) o += fmt::format("<th colspan=\"{}\" class=\"animal\">{}</th>", nc, html_escape(a));
  o += "</tr>\n<tr>";
  for (size_t a = 0; a < na; ++a)
    for (auto& c : t.columns) o += "<th>" + html_escape(c) + "</th>";
  o += "</tr></thead>\n<tbody>\n";
  for (size_t r = 0; r < t.rows.size(); ++r) {
    o += "<tr><th>" + html_escape(t.rows[r]) + "</th>";
    for (size_t a = 0; a < na; ++a)
      for (size_t c = 0; c < nc; ++c) {
        const Cell& x = t.cells[r][a][c];
        const char* td = x.n ? "<td>" : !x.text.empty() ? "<td class=\"unread\">" : "<td class=\"missing\">";
        o += td + mark(r, a, c, html_escape(format_cell(x))) + "</td>";
      }
    o += "</tr>\n";
  }
  o += "</tbody>\n</table>\n";
  if (!t.missing.empty()) {
    o += "<p class=\"missing\">Missing: ";
    for (size_t i = 0; i < t.missing.size(); ++i) o += (i ? "; " : "") + html_escape(t.missing[i]);
    o += ".</p>\n";
  }
  for (auto& n : t.notes) o += "<p class=\"note\">" + html_escape(n) + "</p>\n";
  return o;
}

}  // namespace migvis::catalog

