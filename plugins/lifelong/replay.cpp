#include "replay.h"

#include <algorithm>
#include <numeric>

#include "scion/error.h"
#include "scion/random.h"

namespace scion::lifelong {

std::string ReplaySampler::draw(const std::vector<std::string>& c) {
  SCION_CHECK(!c.empty(), "replay: no earlier domain to replay");
  double total = 0;
  for (const auto& d : c) total += weight(d);
  const double u = double(random_uniform(seed_, uint64_t(draws_++))) * total;
  double acc = 0;
  std::string pick = c.back();
  for (const auto& d : c) {
    acc += weight(d);
    if (u < acc) {
      pick = d;
      break;
    }
  }
  ++replayed_[pick];
  return pick;
}

void ReplaySampler::observe(const std::map<std::string, double>& losses) {
  std::vector<std::string> rose;
  double best = 0;
  bool any = false;
  for (const auto& [d, loss] : losses) {
    auto it = last_loss_.find(d);
    if (it != last_loss_.end()) {
      const double drop = it->second - loss;
      if (drop > 0) {
        const double w = std::max(drop / double(std::max<int64_t>(1, replayed(d))), 1e-9);
        weight_[d] = w;
        best = any ? std::max(best, w) : w;
        any = true;
      } else {
        rose.push_back(d);
      }
      replayed_[d] = 0;
    }
    last_loss_[d] = loss;
  }
  for (const auto& d : rose) weight_[d] = any ? best : 1.0;
}

void ReplaySampler::reset() { last_loss_.clear(), weight_.clear(), replayed_.clear(); }

double ReplaySampler::weight(const std::string& d) const {
  auto it = weight_.find(d);
  return it == weight_.end() ? 1.0 : it->second;
}
int64_t ReplaySampler::replayed(const std::string& d) const {
  auto it = replayed_.find(d);
  return it == replayed_.end() ? 0 : it->second;
}

Json ReplaySampler::state() const {
  Json j;
  j["draws"] = Json(draws_);
  Json last(Json::object_t{}), w(Json::object_t{}), r(Json::object_t{});
  for (const auto& [d, v] : last_loss_) last[d] = Json(v);
  for (const auto& [d, v] : weight_) w[d] = Json(v);
  for (const auto& [d, v] : replayed_) r[d] = Json(v);
  j["last_loss"] = last;
  j["weight"] = w;
  j["replayed"] = r;
  return j;
}

void ReplaySampler::restore(const Json& j) {
  draws_ = json_int(j.at("draws"));
  last_loss_.clear(), weight_.clear(), replayed_.clear();
  for (const auto& [d, v] : json_object(j.at("last_loss"))) last_loss_[d] = json_number(v);
  for (const auto& [d, v] : json_object(j.at("weight"))) weight_[d] = json_number(v);
  for (const auto& [d, v] : json_object(j.at("replayed"))) replayed_[d] = json_int(v);
}

std::vector<int64_t> sample_indices(int64_t n, int64_t count, uint64_t seed) {
  SCION_CHECK(count <= n, "replay: cannot draw ", count, " distinct windows of ", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = 0; i < count; ++i)
    std::swap(p[size_t(i)], p[size_t(i + int64_t(random_bits(seed, uint64_t(i)) % uint64_t(n - i)))]);
  p.resize(size_t(count));
  std::sort(p.begin(), p.end());
  return p;
}

}  // namespace scion::lifelong
