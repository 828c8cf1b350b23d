#include <gtest/gtest.h>

#include <cmath>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "report/axes.h"
#include "report/report.h"
#include "scion/error.h"

namespace fs = std::filesystem;
using namespace scion;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

fs::path tmp(const std::string& what) {
  const fs::path p = fs::temp_directory_path() / ("scion_report_" + what + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

fs::path make_run(const fs::path& root, const std::string& name, double scale) {
  fs::create_directories(root / name);
  std::ofstream o(root / name / "metrics.jsonl");
  for (int s = 1; s <= 20; ++s)
    o << "{\"step\":" << s << ",\"stage\":\"train\",\"loss\":" << scale * 10.0 / s << ",\"tokens\":" << s * 1024
      << ",\"flops\":" << s * 1e9 << ",\"lr\":0.001,\"grad_norm\":1.5}\n";
  o << "{\"step\":20,\"stage\":\"train\",\"ppl/news\":" << 40 * scale << ",\"ppl/loss\":" << 3 * scale << "}\n";
  std::ofstream(root / name / "graph.toml") << "[run]\nname = \"" << name << "\"\nseed = 1\n[[stages]]\nsteps = 20\n"
                                            << "optimizer = { lr = " << scale * 1e-3 << " }\n";
  return root / name;
}

// A run evaluated every 10 steps, its validation loss falling linearly from `from` to `to`
// over `steps` steps, `flops_per_step` FLOPs a step.
fs::path eval_run(const fs::path& dir, int steps, double flops_per_step, double from, double to) {
  fs::create_directories(dir);
  std::ofstream o(dir / "metrics.jsonl");
  for (int s = 10; s <= steps; s += 10)
    o << "{\"step\":" << s << ",\"stage\":\"train\",\"tokens\":" << s * 1000 << ",\"flops\":" << s * flops_per_step
      << ",\"ppl/loss\":" << from + (to - from) * (s - 10) / double(steps - 10) << "}\n";
  return dir;
}
}  // namespace

TEST(Report, AxisRules) {
  EXPECT_EQ(report::nice_ticks(0, 10, false), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  auto labels = [](double lo, double hi, bool lg) {
    std::string s;
    for (double v : report::nice_ticks(lo, hi, lg)) s += (s.empty() ? "" : " ") + report::si(v);
    return s;
  };
  EXPECT_EQ(labels(0.93, 1.07, false), "0.94 0.96 0.98 1 1.02 1.04 1.06");
  EXPECT_EQ(labels(7.6, 10.9, false), "8 8.5 9 9.5 10 10.5");
  EXPECT_EQ(labels(0, 4.2e12, false), "0 1T 2T 3T 4T");
  EXPECT_EQ(report::nice_ticks(10, 10000, true), (std::vector<double>{10, 30, 100, 300, 1000, 3000, 10000}));
  EXPECT_EQ(report::nice_ticks(1e9, 1e12, true), (std::vector<double>{1e9, 3e9, 1e10, 3e10, 1e11, 3e11, 1e12}));
  EXPECT_EQ(report::nice_ticks(1e9, 1e16, true).front(), 1e9);
  EXPECT_LE(report::nice_ticks(1e9, 1e16, true).size(), 8u);
  EXPECT_EQ(labels(3, 7, true), "3 4 5 6 7");  // less than a decade, one round value: linear ticks
  EXPECT_EQ(labels(2, 30, true), "2 5 10 20");
  // Fuzzing finding: a range below the values' precision (a metric at 1e17 that moves by a few
  // units) made the tick loop add a step that never moved it, until memory ran out.
  EXPECT_EQ(report::nice_ticks(1e17, 1e17 + 16, false), (std::vector<double>{1e17, 1e17 + 16}));
  EXPECT_LE(report::nice_ticks(1e300, std::nextafter(1e300, 2e300), false).size(), 2u);
  // The 10^6-run campaign found another range that still looped (an OOM), tiny and
  // near-equal bounds where k0 + 1 did not move k0 although k0 * step and (k0 + 1) * step
  // differ:
  EXPECT_LE(report::nice_ticks(1e-285, 1.0000000000000004e-285, false).size(), 21u);
  EXPECT_LE(report::nice_ticks(-1e-263, -9.999999999999997e-264, false).size(), 21u);
  // Every pair of
  // extreme, tiny, subnormal, near-equal and far-apart bounds gives at most 21 ticks.
  for (int e = -320; e <= 308; e += 7)
    for (const double rel : {0.0, 1e-17, 1e-15, 1e-12, 1e-6, 0.3, 1.0, 1e3, 1e30})
      for (const double sign : {-1.0, 1.0})
        for (const bool lg : {false, true}) {
          const double lo = sign * std::pow(10.0, e);
          const double hi = lo + std::fabs(lo) * rel;
          ASSERT_LE(report::nice_ticks(lo, hi, lg).size(), 21u) << lo << " " << hi << " " << lg;
          ASSERT_LE(report::nice_ticks(std::nextafter(lo, -1e308), hi, lg).size(), 21u) << lo << " " << hi;
        }
  EXPECT_EQ(report::si(0), "0");
  EXPECT_EQ(report::si(1500), "1.5k");
  EXPECT_EQ(report::si(2e7), "20M");
  EXPECT_EQ(report::si(4.53e11), "453G");
  EXPECT_EQ(report::si(0.95), "0.95");
  EXPECT_EQ(report::si(10240), "10.24k");
}

TEST(Report, SummaryTableAndPageData) {
  const fs::path root = tmp("page");
  const auto a = make_run(root, "scratch", 1.0), b = make_run(root, "ki", 0.8);
  const std::string out = (root / "report.html").string();
  report::write_html({a.string(), b.string()}, out);
  const std::string html = slurp(out);
  // The summary: one row per run, the final and best of the validation metric with its step,
  // the final training loss; the better run's cells marked; the graph key they differ in.
  EXPECT_NE(html.find("<th>final ppl/<wbr>loss</th><th>best ppl/<wbr>loss</th>"), std::string::npos);
  const size_t ki = html.find("<tr data-run=\"ki\">"), sc = html.find("<tr data-run=\"scratch\">");
  ASSERT_NE(ki, std::string::npos);
  ASSERT_NE(sc, std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\" data-v=\"2.4\">2.4 <small>@20</small></td>", ki), std::string::npos)
      << html.substr(ki, 600);
  EXPECT_NE(html.find("<td data-v=\"3.0\">3 <small>@20</small></td>", sc), std::string::npos) << html.substr(sc, 600);
  EXPECT_NE(html.find("<th>differs in</th>"), std::string::npos);
  EXPECT_NE(html.find("stages.0.optimizer.lr = 0.0008"), std::string::npos);
  EXPECT_EQ(html.find("run.name ="), std::string::npos);
  // The charts' data: validation first, then the loss; the schedule is not a result; grad_norm folded.
  // The validation loss first, then the training loss; the other validation metric and grad_norm folded.
  EXPECT_NE(html.find("{\"validation\":[\"ppl/loss\"],\"loss\":[\"loss\"],\"other\":[\"ppl/news\",\"grad_norm\"]"),
            std::string::npos);
  EXPECT_EQ(html.find("\"lr\""), std::string::npos);
  // Self-contained: an inline script, nothing fetched.
  EXPECT_NE(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // One SVG picture of the chosen metrics: a row (step, tokens, flops) per metric.
  const std::string svg = (root / "loss.svg").string();
  report::write({a.string(), b.string()}, svg, {"ppl/news"});
  const std::string pic = slurp(svg);
  EXPECT_EQ(pic.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1680\" height=\"320\"", 0), 0u) << pic.substr(0, 200);
  EXPECT_NE(pic.find("ppl/news vs step"), std::string::npos);  // its lines carry no flops: one chart
  EXPECT_EQ(pic.find("loss vs step"), std::string::npos);      // not asked for
  EXPECT_NE(pic.find("<circle"), std::string::npos);           // a lone point is a dot, not nothing
  report::write({a.string(), b.string()}, svg, {"loss"});
  const std::string pic2 = slurp(svg);
  EXPECT_NE(pic2.find("loss vs flops"), std::string::npos);
  EXPECT_NE(pic2.find("flops (log)"), std::string::npos);
  EXPECT_NE(pic2.find(">2G<"), std::string::npos);  // FLOPs 1e9..2e10 on a log axis: 1G 2G 5G 10G 20G
  EXPECT_NE(pic2.find(">10G<"), std::string::npos);
  try {
    report::write({a.string()}, (root / "x.svg").string(), {"ppl/nope"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no run has metric 'ppl/nope'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root / "x.svg"));
  EXPECT_THROW(report::write_html({(root / "nope").string()}, out), Error);
  fs::remove_all(root);
}

TEST(Report, TheSvgMarksStageBoundariesAsThePageDoes) {
  const fs::path root = tmp("stages");
  fs::create_directories(root / "r");
  {
    std::ofstream o(root / "r" / "metrics.jsonl");
    for (int s = 1; s <= 20; ++s)
      o << "{\"step\":" << s << ",\"stage\":\"" << (s <= 10 ? "small" : "grown") << "\",\"loss\":" << 10.0 / s
        << ",\"tokens\":" << s * 1000 << ",\"flops\":" << s * 1e9 << "}\n";
  }
  report::write({(root / "r").string()}, (root / "r.svg").string(), {"loss"});
  const std::string pic = slurp(root / "r.svg");
  // One boundary (small -> grown) on each of the three charts (steps, tokens, FLOPs).
  size_t n = 0;
  for (size_t at = pic.find("class=\"stage\""); at != std::string::npos; at = pic.find("class=\"stage\"", at + 1)) ++n;
  EXPECT_EQ(n, 3u);
  EXPECT_NE(pic.find(">grown<"), std::string::npos);
  EXPECT_EQ(pic.find(">small<"), std::string::npos);  // the first stage starts the chart: no mark
  fs::remove_all(root);
}

TEST(Report, BadLinesNeverBlockAndInputsAreNotOverwritten) {
  const fs::path root = tmp("bad");
  const auto a = make_run(root, "a", 1.0);
  std::ofstream(a / "metrics.jsonl", std::ios::app) << "{\"step\": 21, \"loss\": }\n[1,2]\n{\"loss\":1}\n";
  const std::string out = (root / "r.html").string();
  report::write_html({a.string()}, out);
  EXPECT_NE(slurp(out).find("a (21 lines, 3 malformed lines skipped (22, 23, 24))"), std::string::npos);
  // A value the run could not write as a number (the executor writes null for NaN/Inf) is a gap.
  std::ofstream(a / "metrics.jsonl", std::ios::app) << "{\"step\": 22, \"stage\": \"train\", \"loss\": null}\n";
  report::write_html({a.string()}, out);
  EXPECT_NE(slurp(out).find("a (22 lines, 1 values not finite, left as gaps"), std::string::npos) << slurp(out).substr(0, 900);
  const std::string before = slurp(a / "metrics.jsonl");
  for (const fs::path& p : {a / "metrics.jsonl", a / "graph.toml", a / ".." / "a" / "metrics.jsonl", a}) {
    try {
      report::write_html({a.string()}, p.string());
      FAIL() << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("report: --out"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(slurp(a / "metrics.jsonl"), before);
  fs::remove_all(root);
}

TEST(Report, NonFiniteValuesAreGapsAndCounted) {
  // A diverged step logs NaN (as the executor writes it, like Python's json); the report reads
  // the line, leaves a gap in that curve and says how many values were not finite.
  const fs::path root = tmp("nan");
  fs::create_directories(root / "r");
  std::ofstream(root / "r" / "metrics.jsonl") << "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.0}\n"
                                              << "{\"step\":3,\"loss\":NaN}\n{\"step\":4,\"loss\":1.5}\n"
                                              << "{\"step\":5,\"loss\":Infinity}\n{\"step\":6,\"loss\":1.0}\n";
  const std::string out = (root / "report.html").string();
  report::write_html({(root / "r").string()}, out);
  const std::string html = slurp(out);
  EXPECT_NE(html.find("r (6 lines, 2 values not finite, left as gaps)"), std::string::npos) << html.substr(0, 600);
  EXPECT_NE(html.find("[3.0,null,null,null]"), std::string::npos);  // the page's data: a gap
  // The SVG: a line 1-2 and dots at 4 and 6, not one line drawn across the gaps.
  report::write({(root / "r").string()}, (root / "r.svg").string());
  const std::string pic = slurp(root / "r.svg");
  EXPECT_NE(pic.find(">r (2 not finite)<"), std::string::npos);
  const size_t chart = pic.find("loss vs step"), end = pic.find("</svg>", chart);
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t p = pic.find(what, chart); p < end; p = pic.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<polyline"), 1u);
  EXPECT_EQ(count("<circle"), 2u);
  fs::remove_all(root);
}

TEST(Report, ComputeSavedAgainstABaselineFamily) {
  // Two seeds, each with from-scratch runs at 1x, 2x and 4x a budget and a variant "ki" at 2x.
  // As bench/experiments/compare.py: the FLOPs scratch needs for ki's final loss, interpolated
  // in log FLOPs; the first crossing of the equal-compute scratch's final loss.
  const fs::path root = tmp("save");
  std::vector<std::string> base, runs;
  for (const std::string seed : {"seed1", "seed2"}) {
    base.push_back(eval_run(root / seed / "scratch-s", 50, 2e10, 6, 4.0).string());
    base.push_back(eval_run(root / seed / "scratch", 100, 2e10, 6, 3.5).string());
    base.push_back(eval_run(root / seed / "scratch-l", 200, 2e10, 6, 3.0).string());
  }
  runs.push_back(eval_run(root / "seed1" / "ki", 100, 2e10, 5, 3.25).string());  // 2√2 e12 needed: 29.3%; crosses at 90
  runs.push_back(eval_run(root / "seed2" / "ki", 100, 2e10, 5, 3.0).string());   // 4e12 needed: 50%; crosses at 80
  runs.push_back(eval_run(root / "seed1" / "grow", 100, 2e10, 5, 2.5).string());  // better than every budget
  report::Options o;
  o.baseline = base;
  const std::string out = (root / "r.html").string();
  const std::string md = report::write(runs, out, o);
  EXPECT_NE(md.find("| ki | 2 | -0.375 (-0.500 … -0.250) | 39.6% (29.3% … 50.0%) | 15.0% (10.0% … 20.0%) | "
                    "15.0% (10.0% … 20.0%) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| grow | 1 | -1.000 | 50.0% (> bound) |"), std::string::npos) << md;
  const std::string html = slurp(out);
  EXPECT_NE(html.find("<h2>Compute saved</h2>"), std::string::npos);
  EXPECT_NE(html.find("<tr data-label=\"ki\"><td>ki</td><td>2</td>"), std::string::npos);
  EXPECT_NE(html.find("seed1/scratch <small>(baseline)</small>"), std::string::npos);
  fs::remove_all(root);
}

// The page as a user sees it: headless Chromium loads it, the script runs without errors, the
// summary table has the runs' numbers, the first chart one series per run.
TEST(Report, LoadsInHeadlessChromium) {
  std::string browser;
  for (const char* b : {"chromium", "chromium-browser", "google-chrome"})
    if (std::system(("command -v " + std::string(b) + " >/dev/null 2>&1").c_str()) == 0) {
      browser = b;
      break;
    }
  if (browser.empty()) GTEST_SKIP() << "no chromium installed (scripts/install-deps.sh installs Debian's chromium)";
  const fs::path root = tmp("browser");
  std::vector<std::string> runs = {make_run(root, "scratch", 1.0).string(), make_run(root, "ki", 0.8).string(),
                                   make_run(root, "grow", 0.9).string()};
  // grow has a second stage from step 11: a boundary in its charts.
  {
    std::ifstream in(fs::path(runs[2]) / "metrics.jsonl");
    std::string all, line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (n > 10) line.replace(line.find("\"train\""), 7, "\"grown\"");
      all += line + "\n";
    }
    in.close();
    std::ofstream(fs::path(runs[2]) / "metrics.jsonl") << all;
  }
  const fs::path out = root / "report.html";
  report::write_html(runs, out.string());
  // What a user does, scripted in a copy of the page: hide a run in the legend, hover the
  // first chart, smooth the training loss, switch its chart to FLOPs.
  {
    std::string page = slurp(out);
    page.insert(page.rfind("</body>"), R"(<script>(function () {
  const out = [], q = function (s) { return document.querySelector(s); };
  const n0 = function () { return q("#chart-0").querySelectorAll("g.series").length; };
  out.push("series=" + n0());
  q('#legend .item[data-run="ki"]').click();
  out.push("hidden=" + n0());
  q('#legend .item[data-run="ki"]').click();
  const svg = q("#chart-0 svg"), r = svg.getBoundingClientRect();
  svg.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + r.width * 0.9, clientY: r.top + 40, bubbles: true }));
  out.push("tip=" + q("#tip").textContent);
  const sl = q("#smooth"); sl.value = "0.6"; sl.dispatchEvent(new Event("input"));
  out.push("loss-lines=" + q('.chart[data-metric="loss"]').querySelectorAll("polyline").length);
  out.push("stages=" + q('.chart[data-metric="loss"]').querySelectorAll("line.stage").length);
  const lc = q('.chart[data-metric="loss"]'), sel = lc.querySelector("select");
  sel.value = "flops"; sel.dispatchEvent(new Event("change"));
  out.push("flops-ticks=" + Array.from(lc.querySelectorAll(".xtick")).map(function (e) { return e.textContent; }).join(","));
  document.body.setAttribute("data-probe", out.join(";"));
})();</script>)");
    std::ofstream(root / "probe.html") << page;
  }
  const fs::path dom = root / "dom.html", profile = root / "profile";
  const std::string cmd = "timeout 25 " + browser + " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run " +
                          "--user-data-dir=" + profile.string() + " --virtual-time-budget=2000 --dump-dom file://" +
                          out.string() + " > " + dom.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string d = slurp(dom);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d.find("data-error="), std::string::npos) << d.substr(0, 400);
  // ppl/loss, ppl/news, loss (main), grad_norm (folded): four charts drawn.
  EXPECT_NE(d.find("data-ready=\"4\""), std::string::npos) << d.substr(0, 400);
  const size_t c0 = d.find("id=\"chart-0\""), c1 = d.find("id=\"chart-1\"");
  ASSERT_NE(c0, std::string::npos);
  ASSERT_NE(c1, std::string::npos);
  EXPECT_NE(d.find("data-metric=\"ppl/loss\"", c0), std::string::npos);
  size_t series = 0;
  for (size_t p = d.find("class=\"series\"", c0); p < c1; p = d.find("class=\"series\"", p + 1)) ++series;
  EXPECT_EQ(series, 3u);
  EXPECT_NE(d.find(">2.4 <small>@20</small>"), std::string::npos);  // ki's final ppl/loss in the summary
  EXPECT_NE(d.find(">2.7 <small>@20</small>"), std::string::npos);  // grow's
  EXPECT_NE(d.find("class=\"xtick\">10</text>"), std::string::npos);  // ticks at round steps
  EXPECT_NE(d.find("<span class=\"item\" data-run=\"grow\">"), std::string::npos);  // the legend
  // The scripted session: the hidden run leaves the first chart; the hover lists every run's
  // value at the nearest point; smoothing draws each training curve twice (faint raw, EMA);
  // the stage boundary is marked; FLOPs (1G..20G, log) are ticked at 1-2-5 with SI suffixes.
  const std::string pcmd = "timeout 25 " + browser + " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run " +
                           "--user-data-dir=" + profile.string() + " --virtual-time-budget=2000 --dump-dom file://" +
                           (root / "probe.html").string() + " > " + dom.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(pcmd.c_str()), 0) << pcmd;
  const std::string pd = slurp(dom);
  EXPECT_EQ(pd.find("data-error="), std::string::npos) << pd.substr(0, 400);
  EXPECT_NE(pd.find("data-probe=\"series=3;hidden=2;tip=ppl/loss · steps 20scratch: 3 @20ki: 2.4 @20grow: 2.7 @20;"
                    "loss-lines=6;stages=1;flops-ticks=1G,2G,5G,10G,20G\""),
            std::string::npos)
      << pd.substr(std::min(pd.find("<body"), pd.size()), 400);
  fs::remove_all(root);
}
