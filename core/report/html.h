// The report as one self-contained HTML page: the runs read, the summary table, the compute
// saved (with a baseline), and the charts, drawn by an inline script from report/page_data.h's
// JSON (report/page_assets.h holds the style and the script). No network, no CDN.
#pragma once
#include <string>
#include <vector>

#include "report/runs.h"
#include "report/savings.h"

namespace scion::report {

struct PageInput {
  const std::vector<Run>& runs;
  const Metrics& ms;
  const std::string& metric;  // the main validation metric
  bool baseline;              // whether the page has the compute-saved section
  const std::vector<Saving>& savings;
  const std::vector<LabelRow>& by_label;
};

std::string html_page(const PageInput& in);

}  // namespace scion::report
