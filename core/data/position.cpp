// data::Position (scion/data.h): a data source's resumable position.
#include "scion/data.h"
#include "scion/error.h"

namespace scion::data {

void Position::put_tokens(std::span<const int32_t> tokens) {
  values_.push_back(int64_t(tokens.size()));
  values_.insert(values_.end(), tokens.begin(), tokens.end());
}

int64_t Position::take() {
  SCION_CHECK(next_ < values_.size(), who_, ": the saved position is truncated (", values_.size(), " values)");
  return values_[next_++];
}

std::vector<int32_t> Position::take_tokens() {
  const int64_t n = take();
  SCION_CHECK(n >= 0 && uint64_t(n) <= values_.size() - next_, who_, ": the saved position holds a run of ", n,
              " tokens where ", values_.size() - next_, " values are left");
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = int32_t(values_[next_++]);
  return out;
}

Json Position::to_json() const {
  Json::array_t a;
  a.reserve(values_.size());
  for (int64_t v : values_) a.push_back(Json(v));
  return Json(std::move(a));
}

Position Position::from_json(const Json& j, std::string who) {
  std::vector<int64_t> v;
  for (const Json& x : json_array(j)) v.push_back(json_int(x));
  return Position(std::move(v), std::move(who));
}

}  // namespace scion::data
