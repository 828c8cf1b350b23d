#include "masked_growth.h"

#include "growth.h"

#include <algorithm>
#include <map>

#include "scion/autograd.h"
#include "scion/random.h"

namespace scion::growth {

void place_old(const std::string& name, const Tensor& old, Tensor& dst) {
  SCION_CHECK(old.dim() == dst.dim(), "grow.masked: '", name, "' ", old.desc(), " cannot be placed in ", dst.desc());
  for (int64_t a = 0; a < old.dim(); ++a)
    SCION_CHECK(old.size(a) <= dst.size(a), "grow.masked: '", name, "' ", old.desc(), " does not fit in ", dst.desc());
  if (name.find("attn.c_attn.") != std::string::npos) {
    // GPT's fused [.., 3C] q|k|v: the old heads lead each of the three blocks.
    const int64_t last = old.dim() - 1, oc = old.size(last) / 3, nc = dst.size(last) / 3;
    for (int64_t j = 0; j < 3; ++j) {
      Tensor d = dst.narrow(last, j * nc, oc);
      if (old.dim() == 2) d = d.narrow(0, 0, old.size(0));
      d.copy_(old.narrow(last, j * oc, oc));
    }
    return;
  }
  Tensor d = dst;
  for (int64_t a = 0; a < old.dim(); ++a) d = d.narrow(a, 0, old.size(a));
  d.copy_(old);
}

namespace {

// New layer l copies old layer l mod `from` (old layers keep their own index).
std::vector<int64_t> stack_order(int64_t from, int64_t to) {
  std::vector<int64_t> o;
  for (int64_t l = 0; l < to; ++l) o.push_back(l % from);
  return o;
}

template <class C>
C grown_config(const C& c, const MaskedOptions& o, const char* who) {
  C nc = c;
  const int64_t head = c.width / c.heads;
  nc.width = o.width > 0 ? o.width : c.width;
  nc.ffn = o.ffn > 0 ? o.ffn : c.ffn;
  nc.layers = o.layers > 0 ? o.layers : c.layers;
  nc.seed = derive_seed(o.seed, 0x356);
  SCION_CHECK(nc.width >= c.width, who, ": new width ", nc.width, " is smaller than the old ", c.width);
  SCION_CHECK(nc.width % head == 0, who, ": new width ", nc.width, " is not a multiple of the head size ", head,
              " (heads grow at a fixed head size)");
  nc.heads = nc.width / head;
  SCION_CHECK(nc.ffn >= c.ffn, who, ": new FFN width ", nc.ffn, " is smaller than the old ", c.ffn);
  SCION_CHECK(nc.layers >= c.layers, who, ": new layer count ", nc.layers, " is smaller than the old ", c.layers);
  SCION_CHECK(o.ramp_steps > 0, who, ": ramp_steps must be positive");
  return nc;
}

template <class M, class C>
MaskedGrowth<M> grow(const M& src, const MaskedOptions& o, const char* who) {
  NoGradGuard ng;
  const C& c = src.config();
  MaskedGrowth<M> g;
  g.model = std::make_unique<M>(grown_config(c, o, who));
  g.from = {c.width, c.heads, c.ffn, c.layers, o.ramp_steps};
  const nn::NamedTensors src_state = src.state_dict();
  std::map<std::string, Tensor> old(src_state.begin(), src_state.end());
  const std::vector<int64_t> stacked = stack_order(c.layers, g.model->config().layers);
  for (auto& [name, slot] : g.model->named_parameter_slots()) {
    auto it = old.find(name);
    if (it == old.end() && o.stack_new_layers) {
      // A new layer: its gate hides it, so any weights keep the function; stacking starts it
      // from old layer (l mod L) — the old weights placed in its leading slices, fresh ones
      // around them — instead of from scratch (MSG's stack_block).
      it = old.find(layer_source(name, stacked));
    }
    if (it != old.end()) place_old(name, it->second, *slot);  // else fresh weights behind the gate
  }
  set_mask_progress(*g.model, g.from, 0);
  return g;
}

// [1 × old, m × (n − old)], or undefined when nothing grew.
Tensor ramp_mask(int64_t old, int64_t n, float m) {
  if (n == old) return Tensor();
  Tensor mask = Tensor::ones({n});
  mask.narrow(0, old, n - old).fill_(m);
  return mask;
}

float progress(const MaskedFrom& f, int64_t t) {
  return std::min(1.f, float(std::max<int64_t>(t, 0)) / float(f.ramp_steps));
}

// Masks of the blocks (old layers: heads, FFN units; new layers: their gate) and of every
// LayerNorm (hidden width).
void set_block_masks(std::vector<std::shared_ptr<nn::TransformerBlock>>& blocks, const MaskedFrom& f,
                     const Tensor& hidden, float m, bool done) {
  for (size_t l = 0; l < blocks.size(); ++l) {
    nn::TransformerBlock& b = *blocks[l];
    b.ln_1->mask = hidden;
    b.ln_2->mask = hidden;
    if (int64_t(l) >= f.layers) {
      b.layer_gate = done ? Tensor() : Tensor::scalar(m);
      continue;
    }
    b.attn->head_mask = done ? Tensor() : ramp_mask(f.heads, b.cfg.heads, m);
    b.mlp->unit_mask = done ? Tensor() : ramp_mask(f.ffn, b.cfg.ffn, m);
  }
}
}  // namespace

MaskedGrowth<lm::GptModel> grow_masked(const lm::GptModel& src, const MaskedOptions& o) {
  return grow<lm::GptModel, lm::GptConfig>(src, o, "grow.masked (GPT)");
}
MaskedGrowth<lm::BertModel> grow_masked(const lm::BertModel& src, const MaskedOptions& o) {
  return grow<lm::BertModel, lm::BertConfig>(src, o, "grow.masked (BERT)");
}

void set_mask_progress(lm::GptModel& model, const MaskedFrom& f, int64_t t) {
  if (!f.active()) return;
  const float m = progress(f, t);
  const bool done = m >= 1.f;
  const Tensor hidden = done ? Tensor() : ramp_mask(f.width, model.config().width, m);
  set_block_masks(model.blocks, f, hidden, m, done);
  model.ln_f->mask = hidden;
}

void set_mask_progress(lm::BertModel& model, const MaskedFrom& f, int64_t t) {
  if (!f.active()) return;
  const float m = progress(f, t);
  const bool done = m >= 1.f;
  const Tensor hidden = done ? Tensor() : ramp_mask(f.width, model.config().width, m);
  set_block_masks(model.layers, f, hidden, m, done);
  model.emb_ln->mask = hidden;
  model.transform_ln->mask = hidden;
}

}  // namespace scion::growth
