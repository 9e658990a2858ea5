#include "results/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "results/render.h"

namespace migvis::catalog {
namespace {

struct Job {
  std::string id, stage, animal, config;  // config = key + params without seed
  json params;
  std::map<std::string, double> metrics;
};

const std::vector<std::string> kModels = {"vae", "beta_vae", "tcvae", "migvis", "migvis_unsup"};
const std::vector<std::pair<std::string, std::string>> kVaeColumns = {
    {"test_r2", "R²"},          {"test_mse", "MSE"},  {"test_bits_per_spike", "bits/spike"},
    {"mig", "MIG"},             {"mig_group", "MIG (group)"}, {"factorvae", "FactorVAE"},
    {"factorvae_group", "FactorVAE (group)"}, {"sap", "SAP"}, {"sap_group", "SAP (group)"}};
const std::vector<std::string> kFactors = {"pose", "category", "identity", "position", "size"};
const std::vector<std::string> kAblated = {"w_tc", "w_kl", "w_guid", "group_rank"};

std::string str_of(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{}", v.get<double>());
  return v.dump();
}

Result<std::vector<Job>> load_jobs(const Catalog& cat) {
  MIGVIS_ASSIGN_OR_RETURN(
      QueryResult r,
      cat.query("SELECT j.job_id, j.stage, j.key, j.params, m.name, m.value FROM jobs j "
                "JOIN metrics m ON m.job_id = j.job_id AND m.step IS NULL "
                "WHERE j.status = 'done' AND j.stage IN ('vae', 'eval') ORDER BY j.job_id"));
  std::vector<Job> jobs;
  for (auto& row : r.rows) {
    std::string id = value_to_string(row[0]);
    if (jobs.empty() || jobs.back().id != id) {
      Job j;
      j.id = id;
      j.stage = value_to_string(row[1]);
      json key = json::parse(value_to_string(row[2]), nullptr, false);
      json params = json::parse(value_to_string(row[3]), nullptr, false);
      if (!key.is_object() || !params.is_object())
        return Status::DataLoss("catalog: job " + id + " has a non-object key or params");
      j.animal = key.contains("animal") ? str_of(key["animal"]) : "";
      key.erase("seed");
      params.erase("seed");
      j.config = json{{"key", key}, {"params", params}}.dump();
      j.params = std::move(params);
      jobs.push_back(std::move(j));
    }
    if (auto* d = std::get_if<double>(&row[5])) jobs.back().metrics[value_to_string(row[4])] = *d;
    else if (auto* n = std::get_if<int64_t>(&row[5])) jobs.back().metrics[value_to_string(row[4])] = double(*n);
  }
  return jobs;
}

// The cell's jobs: the largest configuration group among `cands` (see tables.h).
std::vector<const Job*> pick_group(const std::vector<const Job*>& cands, const std::string& what,
                                   std::vector<std::string>* notes) {
  std::map<std::string, std::vector<const Job*>> groups;
  for (auto* j : cands) groups[j->config].push_back(j);
  const std::vector<const Job*>* best = nullptr;
  for (auto& [cfg, js] : groups)
    if (!best || js.size() > best->size()) best = &js;
  if (!best) return {};
  if (groups.size() > 1)
    notes->push_back(fmt::format("{}: {} configurations match; used the one with the most seeds (n={})", what,
                                 groups.size(), best->size()));
  return *best;
}

Cell stats(const std::vector<const Job*>& js, const std::string& metric) {
  Cell c;
  std::vector<double> v;
  for (auto* j : js) {
    auto it = j->metrics.find(metric);
    if (it != j->metrics.end() && std::isfinite(it->second)) v.push_back(it->second);
  }
  c.n = static_cast<int>(v.size());
  if (v.empty()) return c;
  double s = 0;
  for (double x : v) s += x;
  c.mean = s / v.size();
  double ss = 0;
  for (double x : v) ss += (x - c.mean) * (x - c.mean);
  c.std = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0;
  return c;
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

// Fills row `r` for every animal from `pick(animal)` over `metrics`.
template <typename Pick>
void fill_row(PaperTable& t, const std::string& row_label, const std::vector<std::string>& metrics, Pick pick) {
  t.rows.push_back(row_label);
  std::vector<std::vector<Cell>> row;
  for (auto& a : t.animals) {
    std::vector<const Job*> js = pick(a);
    std::vector<Cell> cells;
    std::vector<std::string> lacking;
    for (auto& m : metrics) {
      cells.push_back(stats(js, m));
      if (!js.empty() && cells.back().n == 0) lacking.push_back(m);
    }
    if (js.empty()) t.missing.push_back(fmt::format("{} / {}: no done jobs", a, row_label));
    else if (!lacking.empty())
      t.missing.push_back(fmt::format("{} / {}: no {}", a, row_label, fmt::join(lacking, ", ")));
    row.push_back(std::move(cells));
  }
  t.cells.push_back(std::move(row));
  t.marked.emplace_back(t.animals.size(), -1);
}

std::vector<const Job*> select(const std::vector<Job>& jobs, const std::string& stage, const std::string& animal,
                               const std::function<bool(const Job&)>& pred) {
  std::vector<const Job*> out;
  for (auto& j : jobs)
    if (j.stage == stage && j.animal == animal && pred(j)) out.push_back(&j);
  return out;
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
  if (c.n == 1) return num(c.mean);
  return num(c.mean) + " ± " + num(c.std);
}

Result<std::vector<PaperTable>> build_paper_tables(const Catalog& cat) {
  MIGVIS_ASSIGN_OR_RETURN(std::vector<Job> jobs, load_jobs(cat));
  std::set<std::string> animal_set;
  for (auto& j : jobs)
    if (!j.animal.empty()) animal_set.insert(j.animal);
  std::vector<std::string> animals(animal_set.begin(), animal_set.end());
  std::vector<std::string> vae_metrics, vae_labels;
  for (auto& [m, label] : kVaeColumns) {
    vae_metrics.push_back(m);
    vae_labels.push_back(label);
  }
  std::vector<PaperTable> out;

  // ---- Table 1
  PaperTable t1 = empty_table("table1_reconstruction", "Table 1: Reconstruction and disentanglement",
                              "Held-out reconstruction and disentanglement of each VAE (vae jobs by param `model`), "
                              "mean ± std over seeds.",
                              "model", animals);
  t1.columns = vae_labels;
  for (auto& model : kModels)
    fill_row(t1, model, vae_metrics, [&](const std::string& a) {
      return pick_group(select(jobs, "vae", a, [&](const Job& j) { return param_is(j, "model", model); }),
                        a + " / " + model, &t1.notes);
    });
  out.push_back(std::move(t1));

  // Eval jobs per animal: one configuration group each, shared by tables 2 and 3.
  std::map<std::string, std::vector<const Job*>> eval_of;
  std::vector<std::string> eval_notes;
  int groups = 0;
  std::set<double> gammas;
  std::set<std::string> extra_factors;
  // Table 2 uses the most informative measure the eval jobs report: transfer.*
  // (how specific each factor is to the guiding target, relative to two random
  // stimuli), else nchange.* (the change relative to two random stimuli,
  // comparable across factors), else change.* (label units).
  bool has_transfer = false, normalized = false;
  for (auto& j : jobs)
    if (j.stage == "eval")
      for (auto& [name, v] : j.metrics) {
        if (name.rfind("transfer.g", 0) == 0) has_transfer = true;
        if (name.rfind("nchange.g", 0) == 0) normalized = true;
      }
  const std::string change_prefix = has_transfer ? "transfer" : normalized ? "nchange" : "change";
  for (auto& a : animals) {
    eval_of[a] = pick_group(select(jobs, "eval", a, [](const Job&) { return true; }), a + " / eval", &eval_notes);
    for (auto* j : eval_of[a])
      for (auto& [name, v] : j->metrics) {
        int g = 0;
        char factor[64];
        if (name.rfind(change_prefix + ".g", 0) == 0 &&
            std::sscanf(name.c_str() + change_prefix.size(), ".g%d.%63s", &g, factor) == 2) {
          groups = std::max(groups, g);
          if (std::find(kFactors.begin(), kFactors.end(), factor) == kFactors.end()) extra_factors.insert(factor);
        }
        for (const char* prefix : {"mi.gamma", "guided_change.gamma", "quality.gamma"})
          if (name.rfind(prefix, 0) == 0) {
            char* e = nullptr;
            std::string rest = name.substr(std::strlen(prefix));
            double gm = std::strtod(rest.c_str(), &e);
            if (!rest.empty() && *e == '\0') gammas.insert(gm);
          }
      }
  }

  // ---- Table 2
  PaperTable t2 = empty_table(
      "table2_selectivity", "Table 2: Group selectivity",
      has_transfer
          ? "Transfer: how specific each semantic factor of the images guided by each latent group of the MIG-Vis "
            "VAE is to the guiding target image (the factor read-out's distance to the other pairs' targets minus "
            "the distance to its own), relative to the difference between two random stimuli, at the eval job's "
            "reported γ (metric report_gamma; eval metric transfer.g<g>.<factor>; 0 = chance, 1 = as far as two "
            "unrelated images), mean ± std over seeds; the factor each group moves most is marked. Table 3's γ = 0 "
            "row gives the unguided value. Judges: a CNN and a pixel model trained only on stimuli the critic and "
            "the diffusion model never saw; \"unread\" marks a factor whose read-out score is below min_readout; "
            "the last rows give each judge's read-out score and their agreement (correlation of per-item changes)."
      : normalized
          ? "Change of each semantic factor when guiding each latent group of the MIG-Vis VAE, at the eval job's "
            "reported γ (metric report_gamma; default the grid value nearest 100), relative to the change between "
            "two random stimuli (eval metric nchange.g<g>.<factor>; 1 = as different as unrelated images), mean ± "
            "std over seeds; the dominant factor of each group is marked."
          : "Change of each semantic factor when guiding each latent group of the MIG-Vis VAE, at the eval job's "
            "reported γ (metric report_gamma) (eval metric change.g<g>.<factor>), mean ± std over seeds; the "
            "dominant factor of each group is marked.",
      "group", animals);
  // Columns: the factors the eval jobs report (a factor dropped at eval as
  // constant, or absent from the dataset, is no column), in table order.
  std::set<std::string> reported;
  for (auto& [a, js] : eval_of)
    for (auto* j : js)
      for (auto& [name, v] : j->metrics) {
        int g = 0;
        char factor[64];
        if (name.rfind(change_prefix + ".g", 0) == 0 &&
            std::sscanf(name.c_str() + change_prefix.size(), ".g%d.%63s", &g, factor) == 2)
          reported.insert(factor);
        if (name.rfind("unread.", 0) == 0) reported.insert(name.substr(7));
      }
  std::vector<std::string> factors;
  for (auto& f : kFactors)
    if (reported.count(f) || groups == 0) factors.push_back(f);
  factors.insert(factors.end(), extra_factors.begin(), extra_factors.end());
  t2.columns = factors;
  t2.notes = eval_notes;
  // Cells of a factor the judge cannot read (eval metric [pixel.]unread.<f>:
  // its held-out read-out score is below min_readout) say so instead of a number.
  auto mark_unread = [&](const std::string& judge_prefix) {
    for (size_t a = 0; a < animals.size(); ++a)
      for (size_t c = 0; c < factors.size(); ++c) {
        Cell& cell = t2.cells.back()[a][c];
        if (cell.n) continue;
        for (auto* j : eval_of[animals[a]])
          if (j->metrics.count(judge_prefix + "unread." + factors[c])) cell.text = "unread";
      }
  };
  auto group_rows = [&](const std::string& judge_prefix, const std::string& label) {
    for (int g = 1; g <= groups; ++g) {
      std::vector<std::string> ms;
      for (auto& f : factors) ms.push_back(fmt::format("{}{}.g{}.{}", judge_prefix, change_prefix, g, f));
      const size_t missing_before = t2.missing.size();
      fill_row(t2, fmt::format("group {}{}", g, label), ms, [&](const std::string& a) { return eval_of[a]; });
      mark_unread(judge_prefix);
      // An unread cell is not missing data: list only the cells that lack both.
      t2.missing.resize(missing_before);
      for (size_t a = 0; a < animals.size(); ++a) {
        std::vector<std::string> lacking;
        for (size_t c = 0; c < factors.size(); ++c) {
          const Cell& cell = t2.cells.back()[a][c];
          if (cell.n == 0 && cell.text.empty()) lacking.push_back(ms[c]);
        }
        if (eval_of[animals[a]].empty()) t2.missing.push_back(fmt::format("{} / {}: no done jobs", animals[a], t2.rows.back()));
        else if (!lacking.empty())
          t2.missing.push_back(fmt::format("{} / {}: no {}", animals[a], t2.rows.back(), fmt::join(lacking, ", ")));
      }
      for (size_t a = 0; a < animals.size(); ++a) {
        int best = -1;
        for (size_t c = 0; c < factors.size(); ++c) {
          const Cell& cell = t2.cells.back()[a][c];
          if (cell.n && (best < 0 || cell.mean > t2.cells.back()[a][best].mean)) best = static_cast<int>(c);
        }
        t2.marked.back()[a] = best;
      }
    }
  };
  group_rows("", "");
  // The second, independent judge (eval metrics pixel.*), its rows only when reported.
  bool has_pixel = false, has_judge = false, has_agreement = false;
  for (auto& [a, js] : eval_of)
    for (auto* j : js)
      for (auto& [name, v] : j->metrics) {
        if (name.rfind("pixel." + change_prefix + ".g", 0) == 0) has_pixel = true;
        if (name.rfind("judge.", 0) == 0) has_judge = true;
        if (name.rfind("agreement.", 0) == 0) has_agreement = true;
      }
  if (has_pixel) group_rows("pixel.", " (pixel judge)");
  // Judge quality: each factor's read-out score on stimuli the judge never saw
  // (chance-corrected; 0 = chance, 1 = perfect), and the two judges' agreement.
  auto extra_row = [&](const std::string& prefix, const std::string& label) {
    std::vector<std::string> ms;
    for (auto& f : factors) ms.push_back(prefix + f);
    fill_row(t2, label, ms, [&](const std::string& a) { return eval_of[a]; });
  };
  if (has_judge) {
    extra_row("judge.", "read-out score (CNN judge)");
    if (has_pixel) extra_row("pixel.judge.", "read-out score (pixel judge)");
  }
  if (has_agreement) extra_row("agreement.", "judge agreement (r)");
  if (groups == 0) t2.missing.push_back("no done eval jobs with transfer.g<g>.<factor> or change.g<g>.<factor> metrics");
  out.push_back(std::move(t2));

  // ---- Table 3
  PaperTable t3 = empty_table("table3_guidance", "Table 3: Guidance sweep",
                              "For each guidance strength γ: the change (from the "
                              "γ = 0 image) of the factor each guided group changes most and the transfer (table 2) of "
                              "the factor each group moves most at the reported γ, both relative to two random "
                              "stimuli and averaged over groups, and the image-quality proxy (feature distance to the "
                              "stimulus set; lower is better), mean ± std over seeds.",
                              "γ", animals);
  // No "MI reached": the guiding critic scoring its own objective is circular,
  // not evidence of selectivity (the eval metric mi.gamma<γ> stays for diagnosis).
  t3.columns = {"guided change", "guided transfer", "quality"};
  t3.notes = eval_notes;
  for (double gm : gammas) {
    std::string s = fmt::format("{:g}", gm);
    fill_row(t3, "γ = " + s, {"guided_change.gamma" + s, "guided_transfer.gamma" + s, "quality.gamma" + s},
             [&](const std::string& a) { return eval_of[a]; });
  }
  if (gammas.empty()) t3.missing.push_back("no done eval jobs with mi.gamma<γ> metrics");
  out.push_back(std::move(t3));

  // ---- Table 4
  PaperTable t4 = empty_table("table4_ablation", "Table 4: Ablations",
                              "MIG-Vis VAE (model=migvis) with one weight or the group size changed; table 1's "
                              "columns, mean ± std over seeds.",
                              "setting", animals);
  t4.columns = vae_labels;
  for (auto& p : kAblated) {
    std::map<double, std::string> values;  // numeric order
    std::set<std::string> texts;
    for (auto& j : jobs)
      if (j.stage == "vae" && param_is(j, "model", "migvis") && j.params.contains(p)) {
        std::string v = str_of(j.params[p]);
        texts.insert(v);
        values[std::strtod(v.c_str(), nullptr)] = v;
      }
    if (texts.size() < 2) {
      t4.notes.push_back(texts.empty() ? fmt::format("{}: no model=migvis jobs set it", p)
                                       : fmt::format("{}: not varied (only {} = {})", p, p, *texts.begin()));
      continue;
    }
    for (auto& [_, v] : values)
      fill_row(t4, p + " = " + v, vae_metrics, [&](const std::string& a) {
        return pick_group(select(jobs, "vae", a,
                                 [&](const Job& j) { return param_is(j, "model", "migvis") && param_is(j, p, v); }),
                          a + " / " + p + " = " + v, &t4.notes);
      });
  }
  if (t4.rows.empty()) t4.missing.push_back("no ablation: no model=migvis parameter among w_tc, w_kl, w_guid, group_rank has two values");
  out.push_back(std::move(t4));

  for (auto& t : out)
    if (animals.empty()) t.missing.insert(t.missing.begin(), "the catalog holds no done vae or eval jobs with metrics");
    else if (animals.size() == 1)
      t.notes.push_back("only one animal (" + animals[0] + ") in the catalog; the other macaque's columns are absent");
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
    o += "table,row,animal,column,mean,std,n\n";
    for (size_t r = 0; r < t.rows.size(); ++r)
      for (size_t a = 0; a < na; ++a)
        for (size_t c = 0; c < nc; ++c) {
          const Cell& x = t.cells[r][a][c];
          o += fmt::format("{},{},{},{},{},{},{}\n", t.id, csv_field(t.rows[r]), csv_field(t.animals[a]),
                           csv_field(t.columns[c]), x.n ? fmt::format("{}", x.mean) : "",
                           x.n ? fmt::format("{}", x.std) : "", x.n);
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
          std::string s = format_cell(t.cells[r][a][c]);
          size_t p = s.find(" ± ");
          if (p != std::string::npos) s = "$" + s.substr(0, p) + " \\pm " + s.substr(p + 4) + "$";
          if (s == "—") s = "--";
          o += " & " + mark(r, a, c, s);
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
        o += std::string(x.n ? "<td>" : "<td class=\"missing\">") + mark(r, a, c, html_escape(format_cell(x))) +
             "</td>";
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
