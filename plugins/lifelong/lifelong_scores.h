// AP and AP+ of a lifelong run (ELLE, §4 of arXiv 2203.06311, whose formula text was not at
// hand; docs/methods.md says what was chosen and why):
//   AP  = (1/|S|) Σ_{j∈S} ppl_j            over S, the domains seen so far (the current one
//                                         included), each the current model's perplexity;
//   AP+ = (1/|E|) Σ_{j∈E} (ppl_j − ref_j)  over E, the earlier domains (their stage is over),
//                                         ref_j the perplexity at the end of j's own stage.
// Both average perplexities linearly, as "average perplexity" reads; AP+ > 0 is forgetting.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace scion::lifelong {

struct LifelongScores {
  double ap = 0, ap_plus = 0;
  bool has_ap_plus = false;  // E is not empty
};

// `ppl`: current perplexity by domain (every seen domain); `ref`: perplexity at the end of each
// earlier domain's stage (every earlier domain).
LifelongScores lifelong_scores(const std::vector<std::string>& seen, const std::vector<std::string>& earlier,
                               const std::map<std::string, double>& ppl, const std::map<std::string, double>& ref);

}  // namespace scion::lifelong
