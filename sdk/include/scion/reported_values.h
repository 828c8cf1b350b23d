// A node with values of its own to log beside each evaluation: a data mixture's domain
// weights. The executor writes them into the evaluation's metrics line as
// "<node>/<key>", after every node has observed the evaluation's results, so a value that an
// evaluation changed is logged as it now is (and `scion report` charts it like any metric).
#pragma once
#include <map>
#include <string>

namespace scion {

class ReportsValues {
 public:
  virtual ~ReportsValues() = default;
  virtual std::map<std::string, double> reported_values() const = 0;
};

}  // namespace scion
