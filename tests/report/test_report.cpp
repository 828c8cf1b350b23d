#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "scion/error.h"
#include "scion/report.h"

namespace fs = std::filesystem;
using namespace scion;

namespace {
fs::path make_run(const fs::path& root, const std::string& name, double scale) {
  fs::create_directories(root / name);
  std::ofstream o(root / name / "metrics.jsonl");
  for (int s = 1; s <= 20; ++s)
    o << "{\"step\":" << s << ",\"stage\":\"train\",\"loss\":" << scale * 10.0 / s << ",\"tokens\":" << s * 1024
      << ",\"flops\":" << s * 1e9 << ",\"lr\":0.001}\n";
  o << "{\"step\":20,\"ppl/news\":" << 40 * scale << "}\n";
  return root / name;
}
}  // namespace

TEST(Report, WritesOneChartPerMetricAndAxis) {
  const fs::path root = fs::temp_directory_path() / ("scion_report_" + std::to_string(::getpid()));
  const auto a = make_run(root, "scratch", 1.0), b = make_run(root, "ki", 0.8);
  const std::string out = (root / "report.html").string();
  report::write_html({a.string(), b.string()}, out);
  std::ifstream in(out);
  const std::string html((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(html.find("loss vs step"), std::string::npos);
  EXPECT_NE(html.find("loss vs tokens"), std::string::npos);
  EXPECT_NE(html.find("loss vs flops"), std::string::npos);
  EXPECT_NE(html.find("ppl/news vs step"), std::string::npos);
  EXPECT_EQ(html.find("lr vs"), std::string::npos);  // the schedule is not a result
  EXPECT_NE(html.find(">scratch<"), std::string::npos);
  EXPECT_NE(html.find(">ki<"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // self-contained, static
  // One SVG picture of the chosen metrics: a row (step, tokens, flops) per metric.
  const std::string svg = (root / "loss.svg").string();
  report::write({a.string(), b.string()}, svg, {"ppl/news"});
  std::ifstream sin(svg);
  const std::string pic((std::istreambuf_iterator<char>(sin)), {});
  EXPECT_EQ(pic.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1680\" height=\"320\"", 0), 0u) << pic.substr(0, 200);
  EXPECT_NE(pic.find("ppl/news vs step"), std::string::npos);  // its lines carry no flops: one chart
  EXPECT_EQ(pic.find("loss vs step"), std::string::npos);  // not asked for
  try {
    report::write({a.string()}, (root / "x.svg").string(), {"ppl/nope"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no run has metric 'ppl/nope'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root / "x.svg"));
  // A malformed metrics line names the file and line; nothing is written.
  std::ofstream(a / "metrics.jsonl", std::ios::app) << "{\"step\": 21, \"loss\": }\n";
  const std::string out2 = (root / "report2.html").string();
  try {
    report::write_html({a.string(), b.string()}, out2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:22"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out2));
  EXPECT_THROW(report::write_html({(root / "nope").string()}, out2), Error);
  fs::remove_all(root);
}

TEST(Report, NonFiniteValuesAreGapsAndCounted) {
  // A diverged step logs NaN (as the executor writes it, like Python's json); the report reads
  // the line, leaves a gap in that curve and says how many values were not finite.
  const fs::path root = fs::temp_directory_path() / ("scion_report_nan_" + std::to_string(::getpid()));
  fs::create_directories(root / "r");
  std::ofstream(root / "r" / "metrics.jsonl") << "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.0}\n"
                                              << "{\"step\":3,\"loss\":NaN}\n{\"step\":4,\"loss\":1.5}\n"
                                              << "{\"step\":5,\"loss\":Infinity}\n{\"step\":6,\"loss\":1.0}\n";
  const std::string out = (root / "report.html").string();
  report::write_html({(root / "r").string()}, out);
  std::ifstream in(out);
  const std::string html((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(html.find("r (6 lines, 2 values not finite, left as gaps)"), std::string::npos) << html.substr(0, 600);
  EXPECT_NE(html.find(">r (2 not finite)<"), std::string::npos);
  // The loss-vs-step chart: three pieces of line (1-2, 4, 6), not one drawn across the gaps.
  const size_t chart = html.find("loss vs step"), end = html.find("</svg>", chart);
  size_t lines = 0;
  for (size_t p = html.find("<polyline", chart); p < end; p = html.find("<polyline", p + 1)) ++lines;
  EXPECT_EQ(lines, 3u);
  fs::remove_all(root);
}
