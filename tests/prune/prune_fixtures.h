// What the pruning tests share: the largest difference of two tensors, a tiny stand-in for a
// model an earlier run trained (its vocabulary, 2 layers of width 16), and a checkpoint's
// tensor shapes.
#pragma once
#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "lm_nodes.h"
#include "scion/checkpoint.h"
#include "scion/safetensors.h"

namespace prune_fixtures {

inline double max_diff(const scion::Tensor& a, const scion::Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double d = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i]));
  return d;
}

// A checkpoint of a model node (GPT-2 family by default) of `vocab` ids, 2 layers of width 16
// and `heads` heads, at dir/file: a stand-in for gpt_pretrain's or bert_pretrain's model.
template <class Node = scion::lm::DecoderNode, class Config = scion::lm::DecoderConfig>
std::string stand_in(const std::filesystem::path& dir, int64_t vocab, const char* file, int64_t heads = 2) {
  Config c;
  c.vocab = vocab, c.context = 128, c.layers = 2, c.width = 16, c.heads = heads, c.seed = 4;
  Node n(c);
  const std::string path = (dir / file).string();
  scion::safetensors::save(path, n.module().state_dict(), {{scion::checkpoint::kConfigKey, scion::json_dump(n.config())}});
  return path;
}

inline std::map<std::string, scion::Shape> shapes_of(const std::filesystem::path& file) {
  std::map<std::string, scion::Shape> out;
  for (const auto& [name, t] : scion::safetensors::load(file.string()).tensors) out[name] = t.shape();
  return out;
}

}  // namespace prune_fixtures
