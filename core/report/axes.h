// The axis rules of every chart, in one place: the SVG picture draws with them, and the page
// embeds the frames they give (report/page_data.cpp) so that its script only draws.
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace scion::report {

// Ticks at 1-2-5 steps (linear) or at powers of ten (log; with 2 and 5, or 3, between when
// the range is a few decades; linear ticks when it is about one). At most 21.
std::vector<double> nice_ticks(double lo, double hi, bool log_scale);
// A tick label: at most 4 significant digits, SI suffixes from 1000 up (1.5k, 20M, 3G).
std::string si(double v);

// One axis of a chart.
struct Axis {
  bool log = false;
  double min = 0, max = 0;    // the drawn points' extent, in values
  double lo = 0, hi = 1;      // the drawn range, in the axis's coordinate (log10 of the value on a log axis)
  std::vector<double> ticks;  // in values
  // Where v lies along the axis: 0 at lo, 1 at hi.
  double position(double v) const;
};

struct Frame {
  Axis x, y;
};

// The frame of a chart's points. A point is drawn when both its values are finite (and
// positive on a log axis); the range is the drawn points' extent, widened by 0.5 either side
// when it is one value, the y range padded by 5% either side.
class Extent {
 public:
  Extent(bool log_x, bool log_y) : log_x_(log_x), log_y_(log_y) {}
  bool drawn(double x, double y) const;
  void add(double x, double y);      // a point that is not drawn is left out
  std::optional<Frame> frame() const;  // none when no point is drawn

 private:
  bool log_x_, log_y_;
  double x0_ = INFINITY, x1_ = -INFINITY, y0_ = INFINITY, y1_ = -INFINITY;
};

}  // namespace scion::report
