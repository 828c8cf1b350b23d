#include "lifelong_scores.h"

#include "scion/error.h"

namespace scion::lifelong {

LifelongScores lifelong_scores(const std::vector<std::string>& seen, const std::vector<std::string>& earlier,
                               const std::map<std::string, double>& ppl, const std::map<std::string, double>& ref) {
  LifelongScores s;
  SCION_CHECK(!seen.empty(), "eval.lifelong: no domain seen yet");
  for (const auto& d : seen) {
    auto it = ppl.find(d);
    SCION_CHECK(it != ppl.end(), "eval.lifelong: no perplexity for seen domain '", d, "'");
    s.ap += it->second / double(seen.size());
  }
  for (const auto& d : earlier) {
    auto p = ppl.find(d), r = ref.find(d);
    SCION_CHECK(p != ppl.end() && r != ref.end(), "eval.lifelong: domain '", d,
                "' has no perplexity from the end of its stage (hint: evaluate with this evaluator in every stage "
                "of the stream)");
    s.ap_plus += (p->second - r->second) / double(earlier.size());
  }
  s.has_ap_plus = !earlier.empty();
  return s;
}

}  // namespace scion::lifelong
