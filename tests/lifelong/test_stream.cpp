// data.domains: a domain's stage reads only its own data (plus the replayed share), a warmup
// stage only memories, memories are a seeded sample of the domain's windows kept at the end
// of its stage, and the whole state resumes.
#include <gtest/gtest.h>

#include <set>

#include "byte_tokenizer.h"
#include "domain_stream.h"

using namespace scion;
using namespace scion::lifelong;

namespace {
class Tokenizers final : public NodeResolver {
 public:
  std::shared_ptr<Plugin> node(const std::string&) const override { return tok; }
  std::shared_ptr<text::ByteTokenizer> tok = std::make_shared<text::ByteTokenizer>(true);
};

Params stream_params(double replay = 0.25, int64_t memory_tokens = 32 * 40, bool two_before_warmup = false) {
  Json j;
  j["domains"] = Json(Json::array_t{Json("news"), Json("cs"), Json("literature")});
  j["root"] = Json(std::string(SCION_SOURCE_DIR) + "/data/corpus");
  Json sched;
  sched["first"] = Json("news");
  sched["recover"] = Json("warmup");
  sched["second"] = Json("cs");
  std::vector<std::string> stages = {"first", "recover", "second"};
  if (two_before_warmup) {  // news, cs, warmup, literature
    sched = Json();
    sched["first"] = Json("news");
    sched["second"] = Json("cs");
    sched["recover"] = Json("warmup");
    sched["third"] = Json("literature");
    stages = {"first", "second", "recover", "third"};
  }
  j["schedule"] = sched;
  j["memory_tokens"] = Json(memory_tokens);
  j["replay"] = Json(replay);
  j["evaluator"] = Json("ll");
  j["seq_len"] = Json(int64_t(32));
  j["batch_size"] = Json(int64_t(8));
  j["shuffle"] = Json(true);
  j["shuffle_buffer"] = Json(int64_t(64));
  j["mlm_prob"] = Json(0.0);
  j["mask_id"] = Json(int64_t(103));
  j["never_mask"] = Json(Json::array_t{});
  j["tokenizer"] = Json("tok");
  return Params(j, "stream", NodeContext{11, 0, 1, stages});
}

StepContext at(const std::string& stage, int64_t step) {
  StepContext c;
  c.stage = stage;
  c.step = step;
  return c;
}

std::vector<int64_t> row(const Tensor& t, int64_t r) {
  auto v = t.to_vector_i64();
  const int64_t T = t.size(1);
  return {v.begin() + r * T, v.begin() + (r + 1) * T};
}

// The windows of a memory as the (tokens, targets) rows they give.
std::set<std::vector<int64_t>> memory_rows(const DomainStream& s, const std::string& d) {
  std::set<std::vector<int64_t>> out;
  for (const auto& w : s.memory(d)) {
    std::vector<int64_t> r(w.begin(), w.end());  // tokens then the last target: the whole window
    out.insert(r);
  }
  return out;
}
std::vector<int64_t> window_of(const TensorMap& b, int64_t r) {
  auto x = row(b.at("tokens"), r), y = row(b.at("targets"), r);
  x.push_back(y.back());
  return x;
}
}  // namespace

TEST(DomainStream, WarmupReadsOnlyMemoriesAndDomainStagesReplayTheirShare) {
  Tokenizers r;
  DomainStream s(stream_params(), r);
  int64_t step = 0;
  for (int i = 0; i < 5; ++i, ++step) {
    TensorMap b = s.next(at("first", step));
    for (int64_t d : b.at("domain").to_vector_i64()) EXPECT_EQ(d, 0);  // news only: nothing to replay yet
  }
  EXPECT_TRUE(s.memory_order().empty());
  s.end_stage(at("first", step));
  ASSERT_EQ(s.memory_order(), (std::vector<std::string>{"news"}));
  EXPECT_EQ(int64_t(s.memory("news").size()), 40);  // memory_tokens / seq_len windows
  const auto news = memory_rows(s, "news");
  EXPECT_EQ(news.size(), 40u);  // distinct windows

  // The warmup stage: every row is a window of news's memory; the cs stream never moves.
  const Json cs_before = s.state().at("streams").at("cs");
  for (int i = 0; i < 10; ++i, ++step) {
    TensorMap b = s.next(at("recover", step));
    for (int64_t r = 0; r < 8; ++r) {
      EXPECT_EQ(b.at("domain").to_vector_i64()[size_t(r)], 0);
      EXPECT_TRUE(news.count(window_of(b, r))) << "row " << r << " is not from the memory";
    }
  }
  EXPECT_EQ(s.state().at("streams").at("cs"), cs_before);
  s.end_stage(at("recover", step));  // a warmup keeps no memory
  EXPECT_EQ(s.memory_order().size(), 1u);

  // cs's stage: a quarter of the rows (running share) are news memory windows, the rest cs.
  int64_t replayed = 0;
  for (int i = 0; i < 20; ++i, ++step) {
    TensorMap b = s.next(at("second", step));
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t d = b.at("domain").to_vector_i64()[size_t(r)];
      if (d == 0) {
        ++replayed;
        EXPECT_TRUE(news.count(window_of(b, r)));
      } else {
        EXPECT_EQ(d, 1);
      }
    }
  }
  EXPECT_EQ(replayed, 40);  // 0.25 * 8 rows * 20 batches
  // The sampler counts the draws since the stage began (the warmup had no older domain to
  // draw from: all its rows were news, the domain learned last).
  EXPECT_EQ(s.sampler().replayed("news"), 40);
  s.end_stage(at("second", step));
  EXPECT_EQ(s.memory_order(), (std::vector<std::string>{"news", "cs"}));
}

TEST(DomainStream, MemoryIsASeededSampleAndTheStateResumes) {
  Tokenizers r;
  DomainStream a(stream_params(0.5), r), b(stream_params(0.5), r);
  int64_t step = 0;
  for (; step < 3; ++step) a.next(at("first", step)), b.next(at("first", step));
  a.end_stage(at("first", step));
  b.end_stage(at("first", step));
  EXPECT_EQ(a.memory("news"), b.memory("news"));
  for (; step < 6; ++step) a.next(at("second", step));
  a.observe({{"ll/news/loss", 3.0}});
  // A third node restored from a's state continues exactly as a does.
  DomainStream c(stream_params(0.5), r);
  c.restore(json_parse(json_dump(a.state())));
  EXPECT_EQ(c.memory("news"), a.memory("news"));
  for (int i = 0; i < 5; ++i, ++step) {
    TensorMap x = a.next(at("second", step)), y = c.next(at("second", step));
    EXPECT_EQ(x.at("tokens").to_vector_i64(), y.at("tokens").to_vector_i64());
    EXPECT_EQ(x.at("domain").to_vector_i64(), y.at("domain").to_vector_i64());
  }
  EXPECT_EQ(json_dump(a.state()), json_dump(c.state()));
}

TEST(DomainStream, ForgettingFromTheNamedEvaluatorWeightsReplay) {
  Tokenizers r;
  DomainStream s(stream_params(), r);
  int64_t step = 0;
  s.next(at("first", step++));
  s.end_stage(at("first", step));
  s.next(at("second", step++));  // the stage starts with every weight at 1
  s.observe({{"ll/news/loss", 3.0}, {"other/news/loss", 0.1}});
  for (int i = 0; i < 4; ++i) s.next(at("second", step++));
  const int64_t n = s.sampler().replayed("news");
  ASSERT_GT(n, 0);
  s.observe({{"ll/news/loss", 2.5}});
  EXPECT_DOUBLE_EQ(s.sampler().weight("news"), 0.5 / double(n));
}

TEST(DomainStream, AWarmupReplaysOnlyTheDomainsBeforeTheLastAndANewDomainResetsTheWeights) {
  Tokenizers r;
  DomainStream s(stream_params(0.25, 32 * 40, true), r);
  int64_t step = 0;
  s.next(at("first", step++));
  s.end_stage(at("first", step));
  s.next(at("second", step++));
  s.observe({{"ll/news/loss", 3.0}});
  for (int i = 0; i < 4; ++i) s.next(at("second", step++));
  s.observe({{"ll/news/loss", 2.9}});
  EXPECT_NE(s.sampler().weight("news"), 1.0);
  s.end_stage(at("second", step));
  // Warmup after cs: 3/4 of the rows from cs's memory, the replayed quarter from news only.
  int64_t news = 0, cs = 0;
  for (int i = 0; i < 10; ++i)
    for (int64_t d : s.next(at("recover", step++)).at("domain").to_vector_i64()) (d == 0 ? news : cs) += 1;
  EXPECT_EQ(news, 20);
  EXPECT_EQ(cs, 60);
  EXPECT_EQ(s.sampler().replayed("cs"), 0);
  // literature's stage starts with every earlier domain's weight back at 1, no loss remembered.
  s.end_stage(at("recover", step));
  s.next(at("third", step++));
  EXPECT_EQ(s.sampler().weight("news"), 1.0);
  EXPECT_EQ(s.sampler().weight("cs"), 1.0);
  s.observe({{"ll/news/loss", 2.0}, {"ll/cs/loss", 2.0}});
  EXPECT_EQ(s.sampler().weight("news"), 1.0);  // a first observation sets no weight
}

TEST(DomainStream, ValidationBatchesCarryTheirDomain) {
  Tokenizers r;
  DomainStream s(stream_params(), r);
  const auto& v = s.validation_of("cs", 2);
  ASSERT_EQ(v.size(), 2u);
  for (int64_t d : v[0].at("domain").to_vector_i64()) EXPECT_EQ(d, 1);
  EXPECT_EQ(s.seen("first"), (std::vector<std::string>{"news"}));
  EXPECT_EQ(s.seen("recover"), (std::vector<std::string>{"news"}));
  EXPECT_EQ(s.earlier("recover"), (std::vector<std::string>{"news"}));
  EXPECT_EQ(s.seen("second"), (std::vector<std::string>{"news", "cs"}));
  EXPECT_EQ(s.earlier("second"), (std::vector<std::string>{"news"}));
  EXPECT_EQ(s.stage_of("cs"), "second");
}
