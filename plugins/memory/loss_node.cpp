// loss.trime: the node around trime_loss (variants, CE warmup, ext's random local memory).
#include "scion/ops.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "trime_loss.h"

namespace scion::memory {
namespace {

MemoryKind kind_of(const std::string& s) {
  if (s == "long") return MemoryKind::long_;
  if (s == "ext") return MemoryKind::ext;
  return MemoryKind::local;
}

class TrimeLossNode final : public Loss {
 public:
  explicit TrimeLossNode(const Params& p)
      : kind_(kind_of(p.string("memory"))), warmup_(p.integer("ce_warmup")), no_local_(p.number("cross_segment_ratio")),
        ignore_(p.integer("ignore_index")), same_document_(p.boolean("same_document")), seed_(p.context().seed) {}

  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& metrics) override {
    const Tensor& logits = in.at("logits");
    const Tensor& targets = in.at("targets");
    // The reference trains plain cross-entropy first (--ce-warmup-epoch): the memory's
    // similarities mean nothing until the representations have some structure.
    if (ctx.step < warmup_) {
      metrics["memory_on"] = 0;
      return ops::cross_entropy(logits, targets, ignore_);
    }
    SCION_CHECK(targets.dim() == 2, "loss.trime: targets must be [B, T] (segments × tokens), got ", targets.desc());
    MemorySpec m;
    m.kind = kind_;
    m.rows = targets.size(0);
    m.len = targets.size(1);
    auto docs = in.find("docs");
    // The reference's long memory is every earlier segment of the block; same_document keeps
    // only those of the query's document.
    if (kind_ == MemoryKind::long_ && same_document_ && docs != in.end() && docs->second.defined())
      m.docs = docs->second.to_vector_i64();
    // ext: the local memory is off with probability cross_segment_ratio (0.9 in the reference),
    // drawn per update from the node's seed, so a resumed run draws the same.
    if (kind_ == MemoryKind::ext) m.local = random_uniform(derive_seed(seed_, 0x10ca1), uint64_t(ctx.step)) >= no_local_;
    TrimeStats st;
    Tensor loss = trime_loss(logits, in.at("reps"), targets, m, ignore_, &st);
    metrics["memory_on"] = 1;
    metrics["memory_size"] = st.memory_size;
    metrics["memory_hit_rate"] = st.hit_rate;
    metrics["memory_mass"] = st.memory_mass;
    return loss;
  }

 private:
  MemoryKind kind_;
  int64_t warmup_;
  double no_local_;
  int64_t ignore_;
  bool same_document_;
  uint64_t seed_;
};

PluginEntry trime_entry() {
  PluginEntry e;
  e.name = "loss.trime";
  e.kind = PluginKind::loss;
  e.version = "1.0.0";
  e.description = "TRIME: next-token loss normalised jointly over the vocabulary and an in-batch memory of "
                  "representations (local, long, ext)";
  e.params = {str_param("memory", "local", "local: earlier tokens of the segment; long: also the batch's earlier "
                                           "segments (data.segments order = consecutive); ext: the "
                                           "batch's other segments (order = bm25)")
                  .one_of({"local", "long", "ext"}),
              int_param("ce_warmup", 0, "updates of plain cross-entropy before the memory is used (run-wide count)")
                  .at_least(0),
              bool_param("same_document", false, "long: earlier segments count only where they hold the query's "
                                                 "document (needs docs); false: every earlier segment of the batch, "
                                                 "as the reference"),
              num_param("cross_segment_ratio", 0.9, "ext: probability that an update uses no local memory")
                  .in_range(0, 1),
              {"ignore_index", ParamType::integer, Json(int64_t(-100)), false,
               "target id that does not count and is never memory"}};
  e.inputs = {{"logits", "logits:f32[B,T,V]", false, "model logits [B, T, V]"},
              {"reps", "hidden:f32[B,T,C]", false, "memory representation: model.gpt's ffn_input [B, T, C]"},
              {"targets", "targets:i64[B,T]", false, "next-token ids [B, T]: the memory's values"},
              {"docs", "docs:i64[B,T]", true, "document id per position (long: data.segments.docs)"}};
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    const std::string mem = self.params.string("memory");
    auto reps = self.inputs.find("reps");
    if (reps != self.inputs.end() && reps->second.ends_with(".hidden"))
      out.push_back({"reps", "reps reads '" + reps->second + "', the model's final hidden states",
                     "TRIME's representation is the last layer's FFN input: reps = \"<model>.ffn_input\""});
    if (mem == "long" && self.params.boolean("same_document") && !self.inputs.count("docs"))
      out.push_back({"same_document", "same_document = true without docs: the documents are unknown",
                     "connect docs = \"<data.segments node>.docs\" (order = \"consecutive\")"});
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<TrimeLossNode>(p); };
  return e;
}

}  // namespace
}  // namespace scion::memory

using scion::memory::trime_entry;
SCION_REGISTER_PLUGIN(trime_entry)
