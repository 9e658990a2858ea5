#include "results/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "results/tables.h"
#include "schemas/job_spec.h"

namespace migvis::catalog {
namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string tick(double v) { return fmt::format("{:.3g}", v); }

// File-name-safe: letters, digits, '-', '_' and '.'; anything else -> '_'.
std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out;
}

const char* kCss = R"css(
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 1180px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.lead { color: #555; } nav a { margin-right: 1em; }
table.paper { border-collapse: collapse; font-size: 0.78em; margin: 1em 0; }
table.paper caption { caption-side: top; text-align: left; color: #444; padding-bottom: 0.4em; }
table.paper th, table.paper td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
table.paper th { background: #f3f3f3; } table.paper th.animal { background: #e4ecf7; text-align: center; }
table.paper tbody th { text-align: left; } td.missing { color: #aaa; } td strong { color: #b00; }
p.missing { color: #a40; font-size: 0.85em; } p.note { color: #777; font-size: 0.8em; margin: 0.1em 0; }
div.wide { overflow-x: auto; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } .plots figure { margin: 0; }
figure.grid img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }
div.pairs { display: flex; overflow-x: auto; scroll-snap-type: x mandatory; scroll-behavior: smooth; gap: 16px; }
div.pairs figure.pair { flex: 0 0 100%; scroll-snap-align: start; margin: 0; }
div.pairs figure.pair img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
div.pairs p.stepper a { margin-right: 1em; }
.summary td, .summary th { border: 1px solid #ddd; padding: 2px 8px; } .summary { border-collapse: collapse; }
)css";

struct ReportJob {
  std::string id, stage, animal, model, dir;
};

fs::path resolve_job_dir(const ReportJob& j, const fs::path& root) {
  if (j.dir.empty()) return job_dir_for(root, j.stage, j.id);
  fs::path d(j.dir);
  return d.is_absolute() ? d : root / d;
}

}  // namespace

std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                          int w, int h) {
  const double ml = 56, mr = 12, mt = 26, mb = 40;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (auto& s : series)
    for (auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"#fff\"/>\n"
      "<text x=\"{2}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{3}</text>\n",
      w, h, ml, html_escape(title));
  if (!std::isfinite(x0)) return o + fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#999\">no data</text>\n</svg>\n", ml, h / 2);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  double pw = w - ml - mr, ph = h - mt - mb;
  auto px = [&](double x) { return ml + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return mt + (1 - (y - y0) / (y1 - y0)) * ph; };
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", ml, mt, pw, ph);
  for (int k = 0; k <= 4; ++k) {  // grid + tick labels
    double fy = y0 + (y1 - y0) * k / 4, fx = x0 + (x1 - x0) * k / 4;
    o += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>"
                     "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\" fill=\"#555\">{5}</text>\n",
                     ml, ml + pw, py(fy), ml - 4, py(fy) + 4, tick(fy));
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n", px(fx), mt + ph + 14,
                     tick(fx));
  }
  o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>\n", ml + pw / 2, h - 6,
                   html_escape(x_label));
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % (sizeof kColors / sizeof *kColors)];
    std::string pts;
    for (auto& [x, y] : series[i].points)
      if (std::isfinite(x) && std::isfinite(y)) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>\n", color, pts);
    o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"3\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                     ml + pw - 130, mt + 8 + 14 * i, color, ml + pw - 116, mt + 12 + 14 * i, html_escape(series[i].label));
  }
  return o + "</svg>\n";
}

Status write_report(const Catalog& cat, const fs::path& root, const fs::path& out_dir) {
  MIGVIS_ASSIGN_OR_RETURN(std::vector<PaperTable> tables, build_paper_tables(cat));
  // Job summary per stage and status.
  MIGVIS_ASSIGN_OR_RETURN(QueryResult summary,
                          cat.query("SELECT stage, status, count(*) FROM jobs GROUP BY stage, status ORDER BY stage, status"));
  MIGVIS_ASSIGN_OR_RETURN(
      QueryResult jobs_q,
      cat.query("SELECT j.job_id, j.stage, j.key, j.params, j.dir FROM jobs j WHERE j.status = 'done' ORDER BY j.job_id"));
  std::map<std::string, ReportJob> jobs;
  std::set<std::string> animals;
  std::vector<std::string> datasets;
  for (auto& row : jobs_q.rows) {
    ReportJob j{value_to_string(row[0]), value_to_string(row[1]), "", "", value_to_string(row[4])};
    json key = json::parse(value_to_string(row[2]), nullptr, false);
    json params = json::parse(value_to_string(row[3]), nullptr, false);
    if (key.is_object() && key.contains("animal") && key["animal"].is_string()) j.animal = key["animal"];
    if (params.is_object() && params.contains("model") && params["model"].is_string()) j.model = params["model"];
    if (j.stage == "data" && key.is_object() && key.contains("dataset")) datasets.push_back(key["dataset"].dump());
    if (!j.animal.empty()) animals.insert(j.animal);
    jobs[j.id] = j;
  }
  // Training curves: per animal, one plot per curve name; one line per model
  // (the first done job of that model that has the curve).
  MIGVIS_ASSIGN_OR_RETURN(QueryResult curves,
                          cat.query("SELECT m.job_id, m.name, m.step, m.value FROM metrics m JOIN jobs j ON j.job_id = "
                                    "m.job_id WHERE m.step IS NOT NULL AND j.status = 'done' AND j.stage = 'vae' "
                                    "ORDER BY m.job_id, m.name, m.step"));
  // animal -> curve name -> model -> points
  std::map<std::string, std::map<std::string, std::map<std::string, Series>>> plots;
  std::map<std::string, std::string> chosen;  // animal|name|model -> job
  for (auto& row : curves.rows) {
    auto it = jobs.find(value_to_string(row[0]));
    if (it == jobs.end()) continue;
    const ReportJob& j = it->second;
    std::string name = value_to_string(row[1]);
    std::string model = j.model.empty() ? "vae" : j.model;
    std::string slot = j.animal + "|" + name + "|" + model;
    auto c = chosen.emplace(slot, j.id).first;
    if (c->second != j.id) continue;
    double step = std::holds_alternative<int64_t>(row[2]) ? double(std::get<int64_t>(row[2])) : 0;
    double v = std::holds_alternative<double>(row[3]) ? std::get<double>(row[3]) : NAN;
    Series& s = plots[j.animal][name][model];
    s.label = model;
    s.points.emplace_back(step, v);
  }
  // Synthesis grids.
  MIGVIS_ASSIGN_OR_RETURN(QueryResult grids, cat.query("SELECT a.job_id, a.path FROM artifacts a JOIN jobs j ON "
                                                       "j.job_id = a.job_id WHERE a.kind = 'grid' AND j.status = 'done' "
                                                       "ORDER BY a.job_id, a.path"));
  struct Img {
    std::string animal, rel, caption, bytes;
  };
  std::vector<Img> images;
  std::vector<std::string> image_problems;
  for (auto& row : grids.rows) {
    auto it = jobs.find(value_to_string(row[0]));
    if (it == jobs.end()) continue;
    std::string rel = value_to_string(row[1]);
    // Ingest refuses such paths; a catalog written before it checked may hold them.
    if (std::string p = schema::artifact_path_problem(resolve_job_dir(it->second, root), rel); !p.empty()) {
      image_problems.push_back(fmt::format("grid \"{}\" of job {} not copied: its path {}", rel, it->first, p));
      continue;
    }
    fs::path src = resolve_job_dir(it->second, root) / rel;
    auto bytes = read_file(src);
    if (!bytes.ok()) {
      image_problems.push_back(fmt::format("grid {} of job {} not found at {}", rel, it->first, src.string()));
      continue;
    }
    std::string name = safe_name(it->second.animal + "_" + it->first + "_" + fs::path(rel).filename().string());
    images.push_back({it->second.animal, "img/" + name,
                      fmt::format("{} · job {} · {}", it->second.animal, it->first, rel), std::move(bytes).value()});
  }

  // Labelled pair figures of eval jobs (source | target | groups x gammas) and
  // their captions (figure_pair<p>.json next to each PNG).
  MIGVIS_ASSIGN_OR_RETURN(QueryResult figs_q, cat.query("SELECT a.job_id, a.path FROM artifacts a JOIN jobs j ON "
                                                        "j.job_id = a.job_id WHERE a.kind = 'figure' AND j.status = "
                                                        "'done' ORDER BY a.job_id, length(a.path), a.path"));
  std::vector<Img> pair_figs;
  for (auto& row : figs_q.rows) {
    auto it = jobs.find(value_to_string(row[0]));
    if (it == jobs.end()) continue;
    std::string rel = value_to_string(row[1]);
    fs::path src = resolve_job_dir(it->second, root) / rel;
    auto bytes = read_file(src);
    if (!bytes.ok()) {
      image_problems.push_back(fmt::format("figure {} of job {} not found at {}", rel, it->first, src.string()));
      continue;
    }
    std::string caption = fmt::format("{} · eval job {} · {}", it->second.animal, it->first, rel);
    auto cap = read_file(fs::path(src).replace_extension(".json"));
    if (cap.ok()) {
      json c = json::parse(*cap, nullptr, false);
      if (c.is_object() && c.contains("pair") && c.contains("source") && c.contains("target")) {
        std::string rows;
        if (c.contains("rows") && c["rows"].is_array())
          for (auto& r : c["rows"]) rows += (rows.empty() ? "" : "; ") + (r.is_string() ? r.get<std::string>() : r.dump());
        caption = fmt::format("{}, pair {}: source stimulus {} (left), target stimulus {} (right of it); rows: latent "
                              "groups ({}; the factor each group moves toward its target most, by the CNN judge); "
                              "columns: guidance strength γ. Eval job {}.",
                              it->second.animal, c["pair"].dump(), c["source"].dump(), c["target"].dump(), rows,
                              it->first);
      }
    }
    std::string name = safe_name(it->second.animal + "_" + it->first + "_" + fs::path(rel).filename().string());
    pair_figs.push_back({it->second.animal, "img/" + name, caption, std::move(bytes).value()});
  }

  // ---- HTML
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<title>MIG-Vis results</title>\n<style>" + std::string(kCss) + "</style>\n</head>\n<body>\n";
  h += "<h1>MIG-Vis: semantic selectivity of latent groups in macaque IT</h1>\n";
  h += fmt::format("<p class=\"lead\">Generated by <code>migvis report</code> from <code>{}</code> on {}. Animals: {}.</p>\n",
                   html_escape(cat.path().string()), schema::utc_now_iso8601(),
                   animals.empty() ? std::string("none yet") : html_escape(fmt::format("{}", fmt::join(animals, ", "))));
  h += "<nav><a href=\"#data\">1 Data</a><a href=\"#vae\">2 Neural VAE</a><a href=\"#selectivity\">3 Selectivity</a>"
       "<a href=\"#guidance\">4 Guidance</a><a href=\"#ablations\">5 Ablations</a><a href=\"#missing\">6 Missing</a></nav>\n";

  h += "<h2 id=\"data\">1. Data and jobs</h2>\n<p>Spike counts of IT neurons of each macaque to the stimulus images, "
       "with the images' semantic factors (pose, category, identity, position, size). What the catalog holds:</p>\n";
  h += "<table class=\"summary\"><tr><th>stage</th><th>status</th><th>jobs</th></tr>\n";
  for (auto& row : summary.rows)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", html_escape(value_to_string(row[0])),
                     html_escape(value_to_string(row[1])), html_escape(value_to_string(row[2])));
  h += "</table>\n";
  if (!datasets.empty()) h += "<p>Datasets: " + html_escape(fmt::format("{}", fmt::join(datasets, ", "))) + ".</p>\n";

  h += "<h2 id=\"vae\">2. A neural VAE with latent groups</h2>\n<p>Each VAE maps a population response to latent "
       "groups; MIG-Vis adds a total-correlation penalty and partial supervision so that groups become "
       "disentangled. Reconstruction and disentanglement per model:</p>\n";
  h += "<div class=\"wide\">" + render_table(tables[0], TableFormat::kHtml) + "</div>\n";
  for (auto& [animal, by_name] : plots) {
    h += "<h3>Training curves, " + html_escape(animal) + "</h3>\n<div class=\"plots\">\n";
    for (auto& [name, by_model] : by_name) {
      std::vector<Series> ss;
      for (auto& [model, s] : by_model) ss.push_back(s);
      h += "<figure>" + svg_line_plot(animal + ": " + name, "step", ss) + "</figure>\n";
    }
    h += "</div>\n";
  }
  if (plots.empty()) h += "<p class=\"missing\">No training curves (metrics with a step) in the catalog yet.</p>\n";

  h += "<h2 id=\"selectivity\">3. What each latent group encodes</h2>\n<p>Guiding image synthesis to raise the "
       "mutual information with one latent group changes some semantic factors more than others; the dominant "
       "factor of each group is in bold red.</p>\n";
  h += render_table(tables[1], TableFormat::kHtml);

  h += "<h2 id=\"guidance\">4. Mutual-information guided synthesis</h2>\n<p>Stronger guidance (γ) reaches higher "
       "mutual information and larger changes in the guided group's factor, at some cost in image quality.</p>\n";
  h += render_table(tables[2], TableFormat::kHtml);
  for (auto& a : animals) {
    std::string figs;
    for (auto& img : images)
      if (img.animal == a)
        figs += fmt::format("<figure class=\"grid\"><img src=\"{}\" alt=\"synthesis grid\"><figcaption>{} (rows: "
                            "latent groups, columns: γ)</figcaption></figure>\n",
                            html_escape(img.rel), html_escape(img.caption));
    h += "<h3>Synthesis grids, " + html_escape(a) + "</h3>\n" +
         (figs.empty() ? "<p class=\"missing\">No synthesis grid for this animal yet.</p>\n" : figs);
  }
  // Pair figures: a row of figures the reader steps through with previous /
  // next links (plain anchors into a scroll-snapping row: no script).
  for (auto& a : animals) {
    std::vector<const Img*> mine;
    for (auto& img : pair_figs)
      if (img.animal == a) mine.push_back(&img);
    h += "<h3>Guided pairs, " + html_escape(a) + "</h3>\n";
    if (mine.empty()) {
      h += "<p class=\"missing\">No labelled pair figure (eval job) for this animal yet.</p>\n";
      continue;
    }
    const int n = static_cast<int>(mine.size());
    auto fig_id = [&](int k) { return "pair-" + safe_name(a) + "-" + std::to_string((k + n) % n + 1); };
    h += "<div class=\"pairs\">\n";
    for (int k = 0; k < n; ++k)
      h += fmt::format("<figure class=\"pair\" id=\"{0}\"><p class=\"stepper\"><a href=\"#{1}\">&larr; previous "
                       "pair</a><a href=\"#{2}\">next pair &rarr;</a>pair figure {3} of {4}</p><img src=\"{5}\" "
                       "alt=\"{6}\"><figcaption>{7}</figcaption></figure>\n",
                       fig_id(k), fig_id(k - 1), fig_id(k + 1), k + 1, n, html_escape(mine[k]->rel),
                       html_escape("pair figure: " + mine[k]->caption), html_escape(mine[k]->caption));
    h += "</div>\n";
  }
  for (auto& p : image_problems) h += "<p class=\"missing\">" + html_escape(p) + "</p>\n";

  h += "<h2 id=\"ablations\">5. Ablations</h2>\n";
  h += "<div class=\"wide\">" + render_table(tables[3], TableFormat::kHtml) + "</div>\n";

  h += "<h2 id=\"missing\">6. What is missing</h2>\n<ul>\n";
  size_t n_missing = 0;
  for (auto& t : tables)
    for (auto& m : t.missing) {
      h += "<li>" + html_escape(t.title) + ": " + html_escape(m) + "</li>\n";
      ++n_missing;
    }
  if (n_missing == 0) h += "<li>Nothing: every cell of every table has data.</li>\n";
  h += "</ul>\n";
  h += "</body>\n</html>\n";

  // ---- write (everything is in memory now)
  for (auto& img : images) MIGVIS_RETURN_IF_ERROR(write_file_atomic(out_dir / img.rel, img.bytes));
  for (auto& img : pair_figs) MIGVIS_RETURN_IF_ERROR(write_file_atomic(out_dir / img.rel, img.bytes));
  return write_file_atomic(out_dir / "index.html", h);
}

}  // namespace migvis::catalog
