// The KL of knowledge inheritance from a teacher cache's sparse targets (plugins/inherit/
// cached_kl.cpp) against the online KL it stands for, and the cache's shards on disk.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "inherit.h"
#include "scion/files.h"
#include "scion/ops.h"
#include "scion/teacher_cache.h"
#include "test_files.h"

using namespace scion;
namespace tc = scion::teacher_cache;
namespace fs = std::filesystem;

namespace {

// Loss and gradient of the online KL term (inherit_loss with alpha = 1) and of the cached one.
struct LossGrad {
  float loss;
  std::vector<float> grad;
};
LossGrad online(const Tensor& s0, const Tensor& t, const Tensor& targets, float tau) {
  Tensor s = s0.detach().clone().set_requires_grad(true);
  Tensor kl = inherit::inherit_loss(s, t, targets, 1.0, tau).kl;
  kl.backward();
  return {kl.item(), s.grad().to_vector()};
}
LossGrad cached(const Tensor& s0, const tc::Targets& c, tc::Format f, const Tensor& targets, float tau,
                inherit::TopkRest rest = inherit::TopkRest::bucket) {
  Tensor s = s0.detach().clone().set_requires_grad(true);
  Tensor kl = inherit::cached_kl(s, c, f, targets, tau, rest);
  kl.backward();
  return {kl.item(), s.grad().to_vector()};
}

}  // namespace

// K = V: the cache holds the whole distribution, and cached distillation is online distillation.
TEST(CachedKl, FullVocabularyTopKEqualsOnlineDistillation) {
  const int64_t B = 2, T = 3, V = 13;
  const float tau = 2.f;
  Tensor s = Tensor::randn({B, T, V}, 1), t = Tensor::randn({B, T, V}, 2, 0.f, 3.f);
  Tensor targets = Tensor::from_vector_i64({1, -100, 3, 4, 5, -100}, {B, T});
  const tc::Targets c = tc::make_targets(t.reshape({B * T, V}), {tc::Format::topk, V, DType::f32}, tau, 0);
  const LossGrad want = online(s, t, targets, tau);
  for (auto rest : {inherit::TopkRest::bucket, inherit::TopkRest::renormalize}) {
    const LossGrad got = cached(s, c, tc::Format::topk, targets, tau, rest);
    EXPECT_NEAR(got.loss, want.loss, 1e-5f * std::max(1.f, want.loss));
    ASSERT_EQ(got.grad.size(), want.grad.size());
    for (size_t i = 0; i < got.grad.size(); ++i) EXPECT_NEAR(got.grad[i], want.grad[i], 1e-6f) << i;
  }
}

// K < V: bucket keeps the teacher's mass outside the K as one outcome; renormalize drops it.
TEST(CachedKl, TopKModesMatchTheirFormulas) {
  const int64_t N = 4, V = 9, K = 3;
  const float tau = 1.5f;
  Tensor s = Tensor::randn({N, V}, 5), t = Tensor::randn({N, V}, 6, 0.f, 2.f);
  Tensor targets = Tensor::from_vector_i64({0, 1, 2, 3}, {N});
  const tc::Targets c = tc::make_targets(t, {tc::Format::topk, K, DType::f32}, tau, 0);
  auto sv = s.to_vector(), tv = t.to_vector();
  double bucket = 0, renorm = 0;
  for (int64_t i = 0; i < N; ++i) {
    double zs = 0, zt = 0;
    for (int64_t v = 0; v < V; ++v) zs += std::exp(sv[size_t(i * V + v)] / tau), zt += std::exp(tv[size_t(i * V + v)] / tau);
    double pk = 0, qk = 0, zk = 0;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t id = c.ids[size_t(i * K + j)];
      pk += std::exp(tv[size_t(i * V + id)] / tau) / zt, qk += std::exp(sv[size_t(i * V + id)] / tau) / zs;
      zk += std::exp(tv[size_t(i * V + id)] / tau);
    }
    for (int64_t j = 0; j < K; ++j) {
      const int64_t id = c.ids[size_t(i * K + j)];
      const double p = std::exp(tv[size_t(i * V + id)] / tau) / zt, q = std::exp(sv[size_t(i * V + id)] / tau) / zs;
      bucket += p * std::log(p / q);
      const double pr = std::exp(tv[size_t(i * V + id)] / tau) / zk;
      renorm += pr * std::log(pr / q);
    }
    bucket += (1 - pk) * std::log((1 - pk) / (1 - qk));
    // The K are the teacher's most likely ids, most likely first.
    for (int64_t j = 1; j < K; ++j) EXPECT_GE(c.logp[size_t(i * K + j - 1)], c.logp[size_t(i * K + j)]);
  }
  EXPECT_NEAR(cached(s, c, tc::Format::topk, targets, tau).loss, bucket / N * tau * tau, 1e-5);
  EXPECT_NEAR(cached(s, c, tc::Format::topk, targets, tau, inherit::TopkRest::renormalize).loss, renorm / N * tau * tau, 1e-5);
}

// The sampled estimator is unbiased: over every sequence of K draws from the teacher's
// distribution (V^K of them, each with its probability), the expected loss and gradient are the
// full KL's.
TEST(CachedKl, SampledEstimatorExpectationIsTheFullKlByEnumeration) {
  const int64_t V = 4, K = 3;
  const float tau = 1.3f;
  Tensor s = Tensor::randn({1, V}, 7), t = Tensor::randn({1, V}, 8, 0.f, 1.5f);
  Tensor targets = Tensor::from_vector_i64({2}, {1});
  const LossGrad want = online(s, t, targets, tau);
  const tc::Targets full = tc::make_targets(t, {tc::Format::topk, V, DType::f32}, tau, 0);
  std::vector<double> logp(static_cast<size_t>(V));
  for (int64_t j = 0; j < V; ++j) logp[size_t(full.ids[size_t(j)])] = full.logp[size_t(j)];
  double loss = 0, total_p = 0;
  std::vector<double> grad(size_t(V), 0.0);
  std::vector<int32_t> draws(static_cast<size_t>(K));
  std::function<void(int64_t)> each = [&](int64_t d) {
    if (d < K) {
      for (int32_t v = 0; v < V; ++v) draws[size_t(d)] = v, each(d + 1);
      return;
    }
    double p = 1;
    std::map<int32_t, uint16_t> counts;
    for (int32_t v : draws) p *= std::exp(logp[size_t(v)]), ++counts[v];
    tc::Targets c;
    c.rows = 1, c.k = K;
    c.ids.assign(size_t(K), 0), c.counts.assign(size_t(K), 0), c.logp.assign(size_t(K), 0.f);
    int64_t j = 0;
    for (const auto& [id, n] : counts) c.ids[size_t(j)] = id, c.counts[size_t(j)] = n, c.logp[size_t(j)] = float(logp[size_t(id)]), ++j;
    const LossGrad got = cached(s, c, tc::Format::sample, targets, tau);
    loss += p * got.loss;
    for (int64_t v = 0; v < V; ++v) grad[size_t(v)] += p * got.grad[size_t(v)];
    total_p += p;
  };
  each(0);
  EXPECT_NEAR(total_p, 1.0, 1e-6);
  EXPECT_NEAR(loss, want.loss, 1e-5);
  for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(grad[size_t(v)], want.grad[size_t(v)], 1e-6) << v;
  // One draw alone is not the full gradient (the estimator is not trivially exact).
  const tc::Targets one = tc::make_targets(t, {tc::Format::sample, K, DType::f32}, tau, 3);
  EXPECT_GT(std::fabs(cached(s, one, tc::Format::sample, targets, tau).grad[0] - want.grad[0]), 1e-4);
}

// make_targets' draws follow the teacher's distribution, and each position's counts sum to K.
TEST(CachedKl, SampledDrawsFollowTheTeacher) {
  const int64_t V = 5, K = 64, N = 200;
  Tensor row = Tensor::randn({1, V}, 9);
  std::vector<float> rows;
  for (int64_t i = 0; i < N; ++i)
    for (float x : row.to_vector()) rows.push_back(x);
  const tc::Targets c = tc::make_targets(Tensor::from_vector(rows, {N, V}), {tc::Format::sample, K, DType::f32}, 1.f, 11);
  std::vector<double> freq(static_cast<size_t>(V), 0.0), p(static_cast<size_t>(V));
  for (int64_t i = 0; i < N; ++i) {
    int64_t sum = 0;
    for (int64_t j = 0; j < K; ++j) sum += c.counts[size_t(i * K + j)], freq[size_t(c.ids[size_t(i * K + j)])] += c.counts[size_t(i * K + j)];
    EXPECT_EQ(sum, K);
  }
  const auto x = row.to_vector();
  double z = 0;
  for (float v : x) z += std::exp(v);
  for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(freq[size_t(v)] / double(N * K), std::exp(x[size_t(v)]) / z, 0.02) << v;
}

namespace {

tc::Manifest small_manifest(tc::Format f, DType d) {
  Json m;
  m["format"] = Json(tc::format_name(f));
  m["k"] = Json(3);
  m["temperature"] = Json(2.0);
  m["dtype"] = Json(dtype_name(d));
  m["vocab"] = Json(11);
  m["seq_len"] = Json(2);
  m["batch_size"] = Json(2);
  m["world"] = Json(1);
  m["steps"] = Json(4);
  m["steps_per_shard"] = Json(2);
  Json shards = Json::array();
  for (int first : {0, 2}) {
    Json s;
    s["rank"] = Json(0);
    s["first"] = Json(first);
    s["records"] = Json(2);
    shards.push_back(s);
  }
  m["shards"] = shards;
  return tc::Manifest::from_json(m, "test");
}

fs::path write_cache(const std::string& tag, tc::Format f, DType d, std::vector<tc::Targets>& steps, std::vector<Tensor>& targets) {
  const fs::path dir = scion::tests::temp(tag);
  const tc::Manifest m = small_manifest(f, d);
  scion::files::write_atomic((dir / tc::kManifestFile).string(), json_dump(m.json));
  for (int64_t first : {0, 2}) {
    tc::ShardWriter w(m, (dir / tc::shard_name(0, first)).string(), 0, first, 2);
    for (int64_t step = first; step < first + 2; ++step) {
      Tensor logits = Tensor::randn({4, 11}, uint64_t(100 + step));
      steps.push_back(tc::make_targets(logits, m.layout, 2.f, uint64_t(step)));
      targets.push_back(Tensor::randint({2, 2}, uint64_t(200 + step), 0, 11));
      w.add(step, tc::targets_hash(targets.back()), steps.back());
    }
    w.commit();
  }
  return dir;
}

}  // namespace

TEST(TeacherCacheFiles, ShardsReadBackWhatWasWrittenInEachFormatAndDtype) {
  for (tc::Format f : {tc::Format::topk, tc::Format::sample})
    for (DType d : {DType::f32, DType::bf16, DType::f16}) {
      std::vector<tc::Targets> steps;
      std::vector<Tensor> targets;
      const fs::path dir = write_cache("tcache", f, d, steps, targets);
      tc::Reader r(dir.string(), 0);
      // The layout's bytes per position: K ids (4 bytes) and K values, + the rest (topk) or K counts (sample).
      const int64_t v = int64_t(dtype_size(d));
      EXPECT_EQ(r.manifest().layout.slot_bytes(), f == tc::Format::topk ? 3 * (4 + v) + v : 3 * (4 + 2 + v));
      EXPECT_EQ(int64_t(fs::file_size(dir / tc::shard_name(0, 2))), tc::shard_bytes(r.manifest(), 2));
      const float tol = d == DType::f32 ? 0.f : d == DType::f16 ? 1e-2f : 5e-2f;
      for (int64_t step = 3; step >= 0; --step) {  // any order: a resumed run starts mid-cache
        const tc::Targets got = r.at(step, tc::targets_hash(targets[size_t(step)]));
        const tc::Targets& want = steps[size_t(step)];
        EXPECT_EQ(got.ids, want.ids);
        EXPECT_EQ(got.counts, want.counts);
        for (size_t i = 0; i < got.logp.size(); ++i) EXPECT_NEAR(got.logp[i], want.logp[i], tol * std::fabs(want.logp[i]) + 1e-6);
        for (size_t i = 0; i < got.log_rest.size(); ++i)
          EXPECT_NEAR(got.log_rest[i], want.log_rest[i], tol * std::fabs(want.log_rest[i]) + 1e-6);
      }
    }
}

TEST(TeacherCacheFiles, RefusesAnotherBatchAStepItDoesNotHoldAndDamagedShards) {
  std::vector<tc::Targets> steps;
  std::vector<Tensor> targets;
  const fs::path dir = write_cache("tcache_bad", tc::Format::topk, DType::bf16, steps, targets);
  tc::Reader r(dir.string(), 0);
  auto message = [&](int64_t step, uint64_t hash) {
    try {
      r.at(step, hash);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Another batch than the one the cache was written for (data or order changed).
  EXPECT_NE(message(1, tc::targets_hash(targets[0])).find("is not the one the cache was written for"), std::string::npos);
  // Past its end.
  EXPECT_NE(message(4, 0).find("covers the run's updates 0 to 3, not update 4"), std::string::npos);
  // Truncated (a copy cut short, a full disk): named with its size.
  fs::resize_file(dir / tc::shard_name(0, 2), fs::file_size(dir / tc::shard_name(0, 2)) - 5);
  EXPECT_NE(message(2, tc::targets_hash(targets[2])).find("is truncated"), std::string::npos) << message(2, 0);
  EXPECT_NE(message(2, 0).find(tc::shard_name(0, 2)), std::string::npos);
  // Missing.
  fs::remove(dir / tc::shard_name(0, 0));
  EXPECT_NE(message(0, tc::targets_hash(targets[0])).find("is missing"), std::string::npos);
  // Another rank than the cache was written for; no manifest; not a manifest.
  EXPECT_THROW(tc::Reader(dir.string(), 1), Error);
  EXPECT_THROW(tc::Reader((dir / "nowhere").string(), 0), Error);
  scion::files::write_atomic((dir / tc::kManifestFile).string(), "{\"k\": 3}");
  EXPECT_THROW(tc::Reader(dir.string(), 0), Error);
}
