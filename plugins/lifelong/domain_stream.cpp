#include "domain_stream.h"

#include <algorithm>

#include "scion/random.h"

namespace scion::lifelong {

namespace {
Json ints_json(const std::vector<int32_t>& v) {
  Json::array_t a;
  a.reserve(v.size());
  for (int32_t x : v) a.push_back(Json(int64_t(x)));
  return Json(std::move(a));
}
std::vector<int32_t> json_ints(const Json& j) {
  std::vector<int32_t> v;
  for (const Json& x : json_array(j)) v.push_back(int32_t(json_int(x)));
  return v;
}
}  // namespace

DomainStream::DomainStream(const Params& p, const NodeResolver& r)
    : root_(p.string("root")),
      evaluator_(p.string("evaluator")),
      domains_(p.strings("domains")),
      stages_(p.context().stages),
      seq_len_(p.integer("seq_len")),
      batch_(p.integer("batch_size")),
      seed_(p.context().seed),
      sampler_(derive_seed(p.context().seed, 0x4e91a7)) {
  tok_ = r.get<scion::Tokenizer>(p.string("tokenizer"));
  SCION_CHECK(tok_->eot_id() >= 0, "data.domains: the tokenizer has no end-of-text id to separate documents");
  auto t = tok_;
  tokenize_ = [t](std::string_view s) { return t->encode(s); };
  for (const auto& [stage, what] : json_object(p.raw("schedule"))) schedule_[stage] = json_string(what);
  memory_windows_ = p.integer("memory_tokens") / seq_len_;
  share_.fraction = p.number("replay");
  mlm_.prob = float(p.number("mlm_prob"));
  mlm_.mask_id = p.integer("mask_id");
  mlm_.vocab = tok_->vocab_size();
  for (int64_t id : p.integers("never_mask")) mlm_.never_mask.push_back(id);
  for (const auto& d : domains_) {
    data::TextStreamConfig c;
    c.files = {root_ + "/" + d + "/train.txt"};
    c.seq_len = seq_len_;
    c.batch_size = batch_;
    c.seed = derive_seed(seed_, hash_name(d));
    c.shuffle = p.boolean("shuffle");
    c.shuffle_buffer = p.integer("shuffle_buffer");
    c.rank = p.context().rank;
    c.world = p.context().world;
    streams_[d] = std::make_unique<data::TextStream>(c, tokenize_, tok_->eot_id());
  }
}

int64_t DomainStream::index_of(const std::string& d) const {
  auto it = std::find(domains_.begin(), domains_.end(), d);
  SCION_CHECK(it != domains_.end(), "data.domains: unknown domain '", d, "'");
  return int64_t(it - domains_.begin());
}

std::string DomainStream::reads(const std::string& stage) const {
  auto it = schedule_.find(stage);
  return it == schedule_.end() ? "" : it->second;
}

std::vector<std::string> DomainStream::seen(const std::string& stage) const {
  std::vector<std::string> out;
  for (const auto& s : stages_) {
    const std::string r = reads(s);
    if (!r.empty() && r != kWarmup) out.push_back(r);
    if (s == stage) break;
  }
  return out;
}

std::vector<std::string> DomainStream::earlier(const std::string& stage) const {
  std::vector<std::string> out;
  for (const auto& s : stages_) {
    if (s == stage) break;
    const std::string r = reads(s);
    if (!r.empty() && r != kWarmup) out.push_back(r);
  }
  return out;
}

std::string DomainStream::stage_of(const std::string& domain) const {
  for (const auto& s : stages_)
    if (reads(s) == domain) return s;
  return "";
}

const std::vector<int32_t>& DomainStream::pick(const std::string& domain) {
  const auto& m = memories_.at(domain);
  return m[size_t(random_bits(derive_seed(seed_, 0x9c4), uint64_t(picks_++)) % m.size())];
}

TensorMap DomainStream::finish(const data::Batch& b, Tensor d, uint64_t seed) const {
  if (mlm_.prob <= 0.f) return {{"tokens", b.tokens}, {"targets", b.targets}, {"domain", d}};
  data::MlmBatch m = data::mask_tokens(b.tokens, mlm_, seed);
  return {{"tokens", m.inputs}, {"targets", m.targets}, {"domain", d}};
}

TensorMap DomainStream::next(const StepContext& ctx) {
  const std::string what = reads(ctx.stage);
  SCION_CHECK(!what.empty(), "data.domains: stage '", ctx.stage, "' is not in the schedule");
  data::Batch b = data::empty_batch(batch_, seq_len_);
  Tensor d = Tensor::empty({batch_}, DType::i64);
  auto put = [&](int64_t row, const std::vector<int32_t>& w, const std::string& domain) {
    data::put_row(b, row, w);
    d.data<int64_t>()[row] = index_of(domain);
  };
  if (what != kWarmup && replay_stage_ != ctx.stage) {
    sampler_.reset();
    replay_stage_ = ctx.stage;
  }
  // The domains replayed: those with a memory, but in a warmup not the last one (its own rows).
  std::vector<std::string> past;
  for (const auto& m : memory_order_)
    if (m != what) past.push_back(m);
  if (what == kWarmup && !past.empty()) past.pop_back();
  const int64_t replayed = past.empty() ? 0 : std::min(batch_, share_.rows(batch_));
  const int64_t fresh = batch_ - replayed;
  if (what == kWarmup) {
    SCION_CHECK(!memory_order_.empty(), "data.domains: warmup stage '", ctx.stage, "' comes before any domain has a memory");
    const std::string& last = memory_order_.back();
    for (int64_t r = 0; r < fresh; ++r) put(r, pick(last), last);
  } else {
    const data::Batch s = streams_.at(what)->next();
    std::copy_n(s.tokens.data<int64_t>(), fresh * seq_len_, b.tokens.data<int64_t>());
    std::copy_n(s.targets.data<int64_t>(), fresh * seq_len_, b.targets.data<int64_t>());
    std::fill_n(d.data<int64_t>(), fresh, index_of(what));
  }
  for (int64_t r = fresh; r < batch_; ++r) {
    const std::string dom = sampler_.draw(past);
    put(r, pick(dom), dom);
  }
  return finish(b, d, derive_seed(seed_, 0x6d6c6d00ull + uint64_t(ctx.step)));
}

void DomainStream::end_stage(const StepContext& ctx) {
  const std::string what = reads(ctx.stage);
  if (what.empty() || what == kWarmup || memories_.count(what)) return;
  auto windows = data::TextStream::all_windows({root_ + "/" + what + "/train.txt"}, tokenize_, tok_->eot_id(), seq_len_);
  SCION_CHECK(int64_t(windows.size()) >= memory_windows_, "data.domains: memory_tokens asks for ", memory_windows_,
              " windows of domain '", what, "', which has only ", windows.size(), " (of ", seq_len_, " tokens)");
  std::vector<std::vector<int32_t>> keep;
  for (int64_t i : sample_indices(int64_t(windows.size()), memory_windows_, derive_seed(seed_, hash_name("memory:" + what))))
    keep.push_back(std::move(windows[size_t(i)]));
  memories_[what] = std::move(keep);
  memory_order_.push_back(what);
}

void DomainStream::observe(const std::map<std::string, double>& metrics) {
  if (evaluator_.empty()) return;
  std::map<std::string, double> losses;
  for (const auto& d : memory_order_) {
    auto it = metrics.find(evaluator_ + "/" + d + "/loss");
    if (it != metrics.end()) losses[d] = it->second;
  }
  sampler_.observe(losses);
}

const std::vector<TensorMap>& DomainStream::validation_of(const std::string& domain, int64_t max_batches) {
  auto it = valid_.find(domain);
  if (it != valid_.end()) return it->second;
  const int64_t idx = index_of(domain);
  auto windows = data::TextStream::all_windows({root_ + "/" + domain + "/valid.txt"}, tokenize_, tok_->eot_id(), seq_len_);
  std::vector<TensorMap> out;
  uint64_t k = 0;
  for (const data::Batch& b : data::batches_from_windows(windows, batch_, seq_len_, max_batches)) {
    Tensor d = Tensor::full({b.tokens.size(0)}, float(idx), DType::i64);
    out.push_back(finish(b, d, 0x7a11dull + k++));  // a fixed mask per validation batch
  }
  SCION_CHECK(!out.empty(), "data.domains: domain '", domain, "' has no validation window of ", seq_len_, " tokens");
  return valid_[domain] = std::move(out);
}

Json DomainStream::state() const {
  Json j;
  Json streams(Json::object_t{}), mem(Json::object_t{});
  for (const auto& [d, s] : streams_) streams[d] = s->state().to_json();
  for (const auto& [d, windows] : memories_) {
    Json::array_t a;
    for (const auto& w : windows) a.push_back(ints_json(w));
    mem[d] = Json(std::move(a));
  }
  Json::array_t order;
  for (const auto& d : memory_order_) order.push_back(Json(d));
  j["streams"] = streams;
  j["memories"] = mem;
  j["memory_order"] = Json(std::move(order));
  j["sampler"] = sampler_.state();
  j["replay_carry"] = Json(share_.carry);
  j["picks"] = Json(picks_);
  j["replay_stage"] = Json(replay_stage_);
  return j;
}

void DomainStream::restore(const Json& j) {
  for (const auto& [d, s] : streams_) {
    SCION_CHECK(j.at("streams").contains(d), "data.domains: the checkpoint has no stream position for domain '", d, "'");
    s->restore(data::Position::from_json(j.at("streams").at(d), "data.domains"));
  }
  memories_.clear();
  for (const auto& [d, windows] : json_object(j.at("memories")))
    for (const Json& w : json_array(windows)) memories_[d].push_back(json_ints(w));
  memory_order_.clear();
  for (const Json& d : json_array(j.at("memory_order"))) memory_order_.push_back(json_string(d));
  sampler_.restore(j.at("sampler"));
  share_.carry = json_number(j.at("replay_carry"));
  picks_ = json_int(j.at("picks"));
  replay_stage_ = j.contains("replay_stage") ? json_string(j.at("replay_stage")) : "";
}

}  // namespace scion::lifelong
