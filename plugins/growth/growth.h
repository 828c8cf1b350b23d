// Model growth by parameter reuse, as pure functions from a trained model to a larger one.
//
//  * widen():   Net2WiderNet / bert2BERT width growth. The residual width grows by a global
//               unit map g (shared by embeddings, every layer and the head), attention grows
//               by whole heads at a fixed head size, each layer's FFN by its own map. A new
//               unit copies its source's outgoing weights ("out" axes); weights reading from a
//               duplicated unit are divided by the copy count ("in" axes). With method = aki
//               (bert2BERT's advanced knowledge initialisation) the new out-units of layer l
//               copy layer l+1's weights instead of layer l's.
//  * deepen():  depth growth from a layer order: StackingBERT's [0..L-1, 0..L-1],
//               bert2BERT's stacking with the top layers repeated, or Net2DeeperNet's identity
//               blocks (order entry -1) — exact only for pre-LN models (GPT).
//
// What is exact (checked in tests/growth): widen with uniform duplication (new width a
// multiple of the old) in fpi mode, for GPT (pre-LN) and BERT (post-LN); deepen with identity
// blocks in GPT. What is not: random duplication under LayerNorm (mean and variance change),
// AKI, stacking, identity blocks in post-LN BERT. Tied input/output embeddings cannot both
// be copied and divided, so widening unties the output head.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bert_model.h"
#include "gpt_model.h"
#include "masked_growth.h"

namespace scion::growth {

// g[j] = the old unit that new unit j copies; count[i] = how many new units copy old unit i.
struct UnitMap {
  std::vector<int64_t> g;
  std::vector<int64_t> count;
  int64_t old_size() const { return int64_t(count.size()); }
  int64_t new_size() const { return int64_t(g.size()); }
};
// New units 0..old-1 keep their index; units beyond copy unit (j mod old) when `uniform`,
// else a unit drawn uniformly at random (seeded), as Net2Net does.
UnitMap make_map(int64_t old_size, int64_t new_size, bool uniform, uint64_t seed);

enum class Method { fpi, aki };

struct WidthOptions {
  int64_t width = 0;     // new residual width; a multiple of the head size
  int64_t ffn = 0;       // new FFN width (0 = keep the FFN/width ratio)
  bool uniform = true;   // uniform duplication (exact under LayerNorm when width is a multiple)
  Method method = Method::fpi;
  float noise = 0.f;     // std of symmetry-breaking noise on divided copies, zero-sum over
                         // each unit's copies, so exactness is kept
  uint64_t seed = 0;
};

std::unique_ptr<lm::GptModel> widen(const lm::GptModel& src, const WidthOptions& opt);
std::unique_ptr<lm::BertModel> widen(const lm::BertModel& src, const WidthOptions& opt);

// order[i] = the source layer that new layer i copies, or -1 for an identity block (a block
// whose residual writes are zero: attention and FFN output projections zeroed).
std::unique_ptr<lm::GptModel> deepen(const lm::GptModel& src, const std::vector<int64_t>& order);
std::unique_ptr<lm::BertModel> deepen(const lm::BertModel& src, const std::vector<int64_t>& order);

std::vector<int64_t> stacking_order(int64_t layers);                   // [0..L-1, 0..L-1]
std::vector<int64_t> bert2bert_depth_order(int64_t from, int64_t to);  // floor(to/from) stacks + top layers
// Identity blocks inserted after each listed source layer (-1 = at the bottom).
std::vector<int64_t> identity_insertion_order(int64_t layers, const std::vector<int64_t>& after);

// The source parameter of `param` after deepen(order): a layer parameter
// ("transformer.h.<i>." or "bert.encoder.layer.<i>.") names layer order[i], "" for an identity
// block; any other parameter is its own source. Depth ops' optimizer state follows it
// (Op::state_source), and MSG's stacked new layers take their weights from it.
std::string layer_source(const std::string& param, const std::vector<int64_t>& order);

}  // namespace scion::growth
