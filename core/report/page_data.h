// The data the page's script draws, as JSON: the metrics in their groups; per run its name,
// colour, points (step, tokens, FLOPs, value) and stage starts; per chart the frames (ranges
// and labelled ticks) of each x axis it can switch to, and the label of every x value for the
// hover, all computed by the axis rules of report/axes.h so that the script applies none.
#pragma once
#include <string>
#include <vector>

#include "report/runs.h"

namespace scion::report {

// The JSON text, safe inside <script> ("</" written as "<\/").
std::string page_data(const std::vector<Run>& runs, const Metrics& ms);

}  // namespace scion::report
