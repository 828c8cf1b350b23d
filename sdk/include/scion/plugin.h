// The plugin SDK: what a Scion plugin is, what it declares about itself, and the interface
// of each kind. In-tree plugins use nothing but this SDK and the core library, exactly as a
// third party does (see docs/plugins.md).
//
// Vocabulary (after GStreamer): a *plugin* is a named, versioned factory (e.g. "model.gpt")
// living in a shared library; a *node* is one instance of a plugin in a graph, with
// parameters and *ports*: named inputs connected to other nodes' outputs ("student.logits").
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/dll/alias.hpp>

#include "scion/json.h"
#include "scion/nn.h"
#include "scion/tensor.h"

namespace scion {

// SDK ABI: a plugin built for another major version is refused; a plugin built against a
// newer minor version than the host's is refused too (it may use what the host lacks).
constexpr uint32_t kSdkAbiMajor = 11;  // 2: Op::carry_state; 3: Loss::idle_inputs and needed_metrics, Op::state_source;
                                      // 4: model surgery (scion/surgery.h), nn buffers and gates, parameter groups,
                                      //    plugin-owned parameters, schema checks, nlohmann JSON
                                      //    (ParamSpec choices/ranges/node kinds, PluginEntry::check; node_refs gone)
                                      //    (Tokenizer takes string_view / span<const int32_t>)
                                      // 5: Plugin::begin_step / end_step / end_stage, observe() on every kind,
                                      //    prompt nodes run in the step graph
                                      // 6: Model::lm_head (the fused LM head + loss), StepContext::wanted_outputs,
                                      //    GateKind::hidden_kept (CoFi's hidden gate), ParamLayout::hidden_fold
                                      // 7: NodeContext (Params::context(): seed, rank, world, stages) instead of
                                      //    the __seed/__rank/__world/__stages keys; Params getters integer,
                                      //    number, boolean, string, integers (were i, f, b, s, ints)
                                      //    7.1: GraphView::tokenizer, GraphView::input_source; 7.2: the
                                      //    Llama-family ops (rms_norm, silu, swiglu, rotary, repeat_kv,
                                      //    attention_grouped)
                                      // 8: one transformer description (scion/nn.h): TransformerNames,
                                      //    BlockConfig's family, kv_heads, norm, mlp, rotary and biases,
                                      //    BlockInputs, nn::Norm (LayerNorm | RMSNorm; was nn::LayerNorm);
                                      //    Unit::kv_head and Architecture::kv_heads (scion/surgery.h)
                                      //    8.1: Model::hf_config (scion export), scion/hf_directory.h,
                                      //    PluginEntry::hf_architectures
                                      // 9: GraphProblem::note (a check's notes, printed by validate);
                                      //    PluginEntry::check runs for ops too; GraphStageView::ops
                                      // 10: ragged key/value groups: Architecture::kv_map, BlockConfig::kv_map,
                                      //    repeat_kv / attention_grouped taking a query-head -> kv-head map
                                      // 11: StepContext::grad_scale, Optimizer::takes_grad_scale,
                                      //    ops::AdamWConfig::grad_scale, ops::clip_factor (the clip
                                      //    folded into the optimizer's pass)
constexpr uint32_t kSdkAbiMinor = 0;

enum class PluginKind { data, tokenizer, model, op, loss, prompt, optimizer, evaluator };
const char* kind_name(PluginKind k);

// ---- parameters -----------------------------------------------------------------------
// integer_list: a list of integers ([0, 101, 102]); node: the name of another node of the
// graph (a tokenizer, a teacher model), node_list: a list of such names.
enum class ParamType { integer, number, boolean, string, string_list, table, any, integer_list, node, node_list };
const char* param_type_name(ParamType t);

// What a graph may give a parameter. The validator refuses, with the value's file:line:column
// and a hint, a value of another type, a string (or each string of a list) outside `choices`,
// a number (or each integer of a list) outside [min, max] (an exclusive end excludes its
// bound), a path that matches no file, and a node name that does not exist or is not of
// `node_kind`. The builders below keep entries readable:
//   int_param("seq_len", 128, "tokens per window").at_least(1)
//   str_param("decay", "cosine", "learning-rate decay").one_of({"constant", "linear", "cosine"})
//   node_param("tokenizer", PluginKind::tokenizer, "the tokenizer node").needed()
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::string;
  Json default_value;  // null + required=false: optional with no default
  bool required = false;
  std::string doc;     // one line
  bool path = false;   // a file path or glob that must match an existing file at validation
  std::vector<std::string> choices{};  // string / string_list: the values allowed (empty: any)
  bool has_min = false, has_max = false, min_exclusive = false, max_exclusive = false;
  double min = 0, max = 0;           // integer / number / integer_list: the range allowed
  bool has_kind = false;             // node / node_list: the named nodes must be of node_kind
  PluginKind node_kind = PluginKind::data;

  ParamSpec one_of(std::vector<std::string> c) const { ParamSpec p = *this; p.choices = std::move(c); return p; }
  ParamSpec at_least(double v) const { ParamSpec p = *this; p.has_min = true, p.min = v, p.min_exclusive = false; return p; }
  ParamSpec above(double v) const { ParamSpec p = *this; p.has_min = true, p.min = v, p.min_exclusive = true; return p; }
  ParamSpec at_most(double v) const { ParamSpec p = *this; p.has_max = true, p.max = v, p.max_exclusive = false; return p; }
  ParamSpec below(double v) const { ParamSpec p = *this; p.has_max = true, p.max = v, p.max_exclusive = true; return p; }
  ParamSpec in_range(double lo, double hi) const { return at_least(lo).at_most(hi); }
  ParamSpec needed() const { ParamSpec p = *this; p.required = true, p.default_value = Json(); return p; }
  ParamSpec file() const { ParamSpec p = *this; p.path = true; return p; }
  // "in [0, 1]", "at least 1", "in (0, 1]": the range as the validator's hint writes it.
  std::string range_text() const;
};

inline ParamSpec int_param(std::string name, int64_t def, std::string doc) {
  return {std::move(name), ParamType::integer, Json(def), false, std::move(doc)};
}
inline ParamSpec num_param(std::string name, double def, std::string doc) {
  return {std::move(name), ParamType::number, Json(def), false, std::move(doc)};
}
inline ParamSpec bool_param(std::string name, bool def, std::string doc) {
  return {std::move(name), ParamType::boolean, Json(def), false, std::move(doc)};
}
inline ParamSpec str_param(std::string name, std::string def, std::string doc) {
  return {std::move(name), ParamType::string, Json(std::move(def)), false, std::move(doc)};
}
inline ParamSpec int_list_param(std::string name, std::vector<int64_t> def, std::string doc) {
  Json::array_t a;
  for (int64_t v : def) a.push_back(Json(v));
  return {std::move(name), ParamType::integer_list, Json(std::move(a)), false, std::move(doc)};
}
// Optional with no default unless .needed(); the executor passes the node's name.
inline ParamSpec node_param(std::string name, PluginKind kind, std::string doc) {
  ParamSpec p{std::move(name), ParamType::node, Json(), false, std::move(doc)};
  p.has_kind = true, p.node_kind = kind;
  return p;
}
// Empty by default.
inline ParamSpec node_list_param(std::string name, PluginKind kind, std::string doc) {
  ParamSpec p{std::move(name), ParamType::node_list, Json(Json::array_t{}), false, std::move(doc)};
  p.has_kind = true, p.node_kind = kind;
  return p;
}

// What the runtime tells a node about where it runs, beside its parameters: its own random
// stream's seed (derived from the run's seed and the node's name; an op's from its stage's),
// its data-parallel rank among `world`, and the graph's stage names in order (for nodes that
// act per stage: data.text's stage_files).
struct NodeContext {
  uint64_t seed = 0;
  int rank = 0, world = 1;
  std::vector<std::string> stages;
};

// A node's validated parameters: every key is in the schema, of the declared type, with
// defaults filled, and the node's context. Core-owned; no TOML type crosses the plugin
// boundary. A getter of a key that is not set (or null) throws, naming the node.
class Params {
 public:
  Params() = default;
  explicit Params(Json values, std::string node = "", NodeContext context = {})
      : v_(std::move(values)), node_(std::move(node)), context_(std::move(context)) {}
  bool has(const std::string& k) const { return v_.contains(k) && !v_.at(k).is_null(); }
  int64_t integer(const std::string& k) const;
  double number(const std::string& k) const;
  bool boolean(const std::string& k) const;
  std::string string(const std::string& k) const;
  std::vector<std::string> strings(const std::string& k) const;  // string_list, node_list
  std::vector<int64_t> integers(const std::string& k) const;      // integer_list
  const Json& raw(const std::string& k) const;
  const Json& all() const { return v_; }
  const std::string& node() const { return node_; }
  const NodeContext& context() const { return context_; }

 private:
  Json v_;
  std::string node_;
  NodeContext context_;
};

// ---- ports --------------------------------------------------------------------------------
// A port type is a name, optionally with dtype and shape: "tokens", "tokens:i64[B,T]",
// "logits:f32[B,T,{vocab}]" ({vocab}: the node's integer parameter; B, T: symbols equal
// across the node's ports; "?": any size), "loss:f32[]". Names in use: tokens i64[B,T],
// targets i64[B,T], logits f32[B,T,V], hidden f32[B,T,C], mask u8[B,T], loss f32[]. The
// validator checks names, then dtypes and shapes where both ends declare them
// (docs/plugins.md). A node parameter naming a port holds "node.port"; one naming a whole
// node (a tokenizer, a teacher model) holds "node".
struct PortSpec {
  std::string name;
  std::string type;
  bool optional = false;
  std::string doc;
};

// ---- run-time context -------------------------------------------------------------------
struct StepContext {
  int64_t step = 0;        // optimizer updates done so far in the whole run
  int64_t stage_step = 0;  // updates done so far in this stage
  std::string stage;
  bool training = true;
  uint64_t seed = 0;       // run seed
  Device device = Device::cpu();
  int rank = 0, world = 1;
  // Sums `n` doubles over every rank in place (an evaluator's loss sums and counts over its
  // share of the validation batches); empty on one rank.
  std::function<void(double* values, size_t n)> allreduce_sum;
  // The output ports of this node that something reads at this step (set by the runtime for a
  // model's forward in training); null = all of them. A model may skip an output nobody
  // reads: its logits when the loss applies the LM head itself (Model::lm_head).
  const std::set<std::string>* wanted_outputs = nullptr;
  bool wants(const std::string& port) const { return !wanted_outputs || wanted_outputs->count(port) > 0; }
  // For Optimizer::step of an optimizer that takes_grad_scale(): the factor every gradient is
  // to be multiplied by first (the global-norm clip's, 1 = none). The runtime then does not
  // scale the gradients itself, which saves a pass over all of them.
  float grad_scale = 1.f;
};

using TensorMap = std::map<std::string, Tensor>;

class Plugin;
// Looks other nodes up by name (for resources such as a tokenizer or a teacher model).
class NodeResolver {
 public:
  virtual ~NodeResolver() = default;
  virtual std::shared_ptr<Plugin> node(const std::string& name) const = 0;
  template <class T>
  std::shared_ptr<T> get(const std::string& name) const {
    auto p = std::dynamic_pointer_cast<T>(node(name));
    if (!p) throw Error("node '" + name + "' is not of the kind this parameter needs");
    return p;
  }
};

// ---- kinds --------------------------------------------------------------------------------
class Plugin {
 public:
  virtual ~Plugin() = default;
  // Extra state saved in checkpoints (a data position, an alpha switch). Null = none.
  virtual Json state() const { return Json(); }
  virtual void restore(const Json&) {}
  // Trainable tensors this node owns itself, by name: a loss's Lagrange multipliers, a gate's
  // log alpha, a prompt's embeddings. Leaves that require grad, returned as the tensors
  // themselves (not copies), their names and shapes fixed for the node's life. A stage that
  // lists the node in `train` trains them (parameter "<node>.<name>", optimizer state
  // "<node>.<name>.<what>"); checkpoints save them as <node>.safetensors and a resume copies
  // the values back into these same tensors. Models own theirs through module() instead.
  virtual nn::NamedTensors owned_parameters() { return {}; }

  // Hooks of the training loop, called on every node the stage runs (its losses, what they
  // read, the trained nodes), in graph order, on the executor's thread:
  //   begin_step: before the step's forward pass (a pruning loss samples its gates into the
  //               model here, so the forward sees them);
  //   end_step:   after the optimizer update (clamp a parameter, advance a schedule);
  //   end_stage:  after the stage's last update and evaluation, before the checkpoint that
  //               closes the stage (a domain stream keeps its memory here, so it is saved).
  // A resumed run calls them exactly where the uninterrupted run would have.
  virtual void begin_step(const StepContext&) {}
  virtual void end_step(const StepContext&) {}
  virtual void end_stage(const StepContext&) {}
  // Each evaluation's results ("<evaluator node>/<metric>"), given to every node the stage runs
  // after the stage's evaluators ran (loss.inherit's 'until surpassed', a replay sampler's
  // forgetting measure).
  virtual void observe(const std::map<std::string, double>& eval_metrics) {}
};

// The one tokenizer interface: the in-tree text tokenizers (plugins/lm/text: GPT-2 BPE,
// WordPiece, bytes) implement it directly and are the tokenizer.* nodes themselves.
class Tokenizer : public Plugin {
 public:
  // Token ids of UTF-8 text. Thread-safe (const) on every implementation.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of a sequence of ids; throws (std::out_of_range) on an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // End-of-text / separator id appended between documents, or -1 when there is none.
  virtual int32_t eot_id() const = 0;
};

class DataSource : public Plugin {
 public:
  // The next training batch on its output ports ("tokens", "targets", ...).
  virtual TensorMap next(const StepContext& ctx) = 0;
  // Validation batches (all of them, in order) for evaluators; empty if none.
  virtual std::vector<TensorMap> validation(int64_t max_batches) { return {}; }
  virtual std::string domain() const { return ""; }
  virtual int64_t tokens_per_batch() const = 0;
};

class Model : public Plugin {
 public:
  // Outputs by port name ("logits", "hidden") from inputs by port name ("tokens", ...).
  virtual TensorMap forward(const TensorMap& inputs, const StepContext& ctx) = 0;
  virtual nn::Module& module() = 0;
  virtual bool frozen() const { return false; }
  // FLOPs of one training step (forward + backward) per token of a sequence of `seq_len`
  // tokens, for the run's FLOP counter; the executor passes the length of the batch the
  // model read. In-tree transformers count 6N + 12*L*C*T (PaLM, appendix B: 6 per parameter,
  // plus attention's scores and weighted values, forward and backward); a forward alone is a
  // third of it. The default knows no architecture: 6N.
  virtual double flops_per_token(int64_t seq_len) { return 6.0 * double(module().parameter_count()); }
  virtual Json config() const { return Json(); }
  // The LM head as one linear map, for losses that fuse it with their cross-entropy
  // (ops::linear_cross_entropy, so the [B·T, V] logits are never stored): from the model's
  // `hidden` output, the rows the projection reads (BERT's MLM transform applied), its
  // weight [V, C] and its bias [V] (undefined when it has none). logits = input · weightᵀ +
  // bias, exactly the `logits` output. Undefined input: the model has no such head.
  struct LmHead {
    Tensor input, weight, bias;
  };
  virtual LmHead lm_head(const Tensor& /*hidden*/) { return {}; }
  // The model's config as a Hugging Face config.json (its family's "architectures",
  // "model_type" and fields), for `scion export`; its named_parameters() carry the Hugging
  // Face tensor names. The default: the model has no Hugging Face form.
  virtual Json hf_config() const {
    throw Error("this model cannot be exported to Hugging Face format (its plugin gives no hf_config)");
  }
};

class Loss : public Plugin {
 public:
  // A scalar loss; `metrics` may receive extra named values to log.
  virtual Tensor compute(const TensorMap& inputs, const StepContext& ctx, std::map<std::string, double>& metrics) = 0;
  // Input ports this loss will not read at this step (loss.inherit's teacher once α is 0).
  // The runtime then skips the nodes that only those ports need, a frozen teacher's forward
  // pass above all, and counts no FLOPs for them; compute() may then get no entry for such a
  // port (it does get one when its source runs anyway, e.g. for another loss).
  virtual std::vector<std::string> idle_inputs(const StepContext& ctx) const { return {}; }
  // The evaluator metrics ("<evaluator node>/<key>") the loss acts on through observe() and
  // is wrong without (loss.inherit's until_surpassed): a stage that uses the loss but does not
  // evaluate with each named evaluator is refused before anything runs.
  virtual std::vector<std::string> needed_metrics() const { return {}; }
};

class Op : public Plugin {
 public:
  // Transforms the model node `target` when a stage starts (grow, load, prune).
  virtual void apply(Model& target, const StepContext& ctx) = 0;
  // Optimizer state of a parameter whose shape this op changed: given the state tensor
  // `old_state` (shaped as the parameter was; `param` is its name after the op), return it mapped into `new_shape` the way the
  // op mapped the parameter, or an undefined tensor to let the optimizer start that
  // parameter afresh (the default). Called by the runtime after apply() for each such state
  // tensor of a carried-over optimizer.
  virtual Tensor carry_state(const std::string& param, const Tensor& old_state, const Shape& new_shape) const {
    return Tensor();
  }
  // The parameter (named as before apply()) whose optimizer state a parameter (named as
  // after it) continues: itself by default. Ops that move layers name the layer copied
  // (stacking continues layer i's moments in layer i + L); "" restarts the parameter (an
  // inserted identity block). carry_state() then maps that state if the shape changed.
  virtual std::string state_source(const std::string& param) const { return param; }
};

// An optimizer keeps its state per parameter name ("<node>.<param>.<what>", shaped as the
// parameter for per-element state) and must restart a parameter whose state no longer has
// its shape (a growth op resized it and did not carry the state over).
class Optimizer : public Plugin {
 public:
  virtual void step(const nn::NamedTensors& params, double lr, const StepContext& ctx) = 0;
  // True when step() multiplies every gradient by ctx.grad_scale (the clip factor) itself;
  // otherwise the runtime scales the gradients in place before step() and passes 1.
  virtual bool takes_grad_scale() const { return false; }
  // Moments by parameter name, for checkpoints.
  virtual nn::NamedTensors state_tensors() const = 0;
  virtual void load_state_tensors(const nn::NamedTensors& state) = 0;
};

class Evaluator : public Plugin {
 public:
  virtual std::map<std::string, double> evaluate(const StepContext& ctx) = 0;
};

// Sits between a data node and a model as a node of its own: rewrites the model's inputs
// (prepends a domain token, soft-prompt embeddings) and may own trainable tensors
// (owned_parameters()), trained when the stage lists the node in `train`. The executor runs
// it in the step graph like a model: with a tape when trained, without one otherwise.
class PromptInjector : public Plugin {
 public:
  virtual TensorMap inject(const TensorMap& inputs, const StepContext& ctx) = 0;
};

// ---- the descriptor a library exports ------------------------------------------------------
using Factory = std::function<std::shared_ptr<Plugin>(const Params&, const NodeResolver&)>;

// The whole graph as a plugin's check sees it at validation: every node that validated (its
// plugin, kind, parameters with defaults filled, inputs as "node.port") and every stage.
struct GraphNodeView {
  std::string name, plugin;
  PluginKind kind = PluginKind::data;
  Params params;
  std::map<std::string, std::string> inputs;  // input port -> "node.port"
};
struct GraphStageView {
  std::string name;
  int64_t steps = 0, eval_every = 0;
  std::vector<std::string> train, losses, evaluators, data;  // node names (data: empty = all)
  std::vector<std::pair<std::string, std::string>> ops;      // (op plugin, target node), in order
};
struct GraphView {
  std::vector<GraphNodeView> nodes;
  std::vector<GraphStageView> stages;
  const GraphNodeView* node(const std::string& name) const {
    for (const auto& n : nodes)
      if (n.name == name) return &n;
    return nullptr;
  }
  // The node whose output feeds input `port` of `n` ("node.port"), or null when the port is
  // not connected.
  const GraphNodeView* input_source(const GraphNodeView& n, const std::string& port) const {
    auto it = n.inputs.find(port);
    return it == n.inputs.end() ? nullptr : node(it->second.substr(0, it->second.find('.')));
  }
  // The tokenizer a tokenizer node makes, made by the host as the run will make it (the node's
  // plugin factory, its validated parameters; once per validation): checks compare against
  // its vocab_size(), eot_id() and encode(), whichever library the tokenizer comes from.
  // Throws what the factory throws (a vocabulary file that does not load); null for a node
  // that is not a tokenizer. Set by hosts of SDK 7.1 and later.
  std::function<std::shared_ptr<Tokenizer>(const std::string& node)> tokenizer;
};
// A problem a check found. `at` locates it: a parameter of the checked node ("stage_files"),
// a key or index inside one ("stage_files.teacher", "data.1"), or "" for the node itself;
// with stage >= 0, a key of that [[stages]] table instead ("eval", "losses.0"). Where the
// path does not exist in the file (a default), the closest enclosing table is named.
// With `note`, not a problem: what the check computed for the user (a growth op's timing
// rule, a plan), printed by `scion validate` and at the start of `scion run`.
struct GraphProblem {
  std::string at;
  std::string message;
  std::string hint;
  int stage = -1;
  bool note = false;
};
// Runs once per node of the plugin, after every parameter, port and stage validated, and
// refuses what the schema alone cannot say (a stage name in a table's keys, the metrics a loss
// acts on, a combination of parameters), so that `scion validate` refuses what `scion run`
// would refuse before its first update. An op's check runs once per use in a stage's `ops`:
// `self` is then named "<stage>.ops.<i>", its params are the op table's (defaults filled),
// its one input is "target" (the model node), and `at` paths are inside the op's table.
using GraphCheck = std::function<std::vector<GraphProblem>(const GraphView& graph, const GraphNodeView& self)>;

struct PluginEntry {
  std::string name;  // "model.gpt"
  PluginKind kind;
  std::string version;      // "1.0.0"
  std::string description;  // one line
  std::vector<ParamSpec> params;
  std::vector<PortSpec> inputs, outputs;
  Factory factory;
  GraphCheck check;  // optional
  // A model plugin: the Hugging Face architectures (config.json "architectures") it loads from
  // a model directory, so `--checkpoint <dir>` finds it. Empty for the rest.
  std::vector<std::string> hf_architectures;
};

// The C-layout header the loader reads before calling any C++ in the library.
struct PluginLibraryHeader {
  uint32_t magic;  // kPluginMagic
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* fingerprint;  // compiler, libstdc++ ABI, CUDA major
  const std::vector<PluginEntry>* (*entries)();
};
constexpr uint32_t kPluginMagic = 0x5c10b1u;

}  // namespace scion

#define SCION_STR2(x) #x
#define SCION_STR(x) SCION_STR2(x)
#ifdef __GLIBCXX__
#define SCION_STDLIB_TAG "libstdc++-cxx11abi" SCION_STR(_GLIBCXX_USE_CXX11_ABI)
#else
#define SCION_STDLIB_TAG "other-stdlib"
#endif
#if defined(__clang__)
#define SCION_COMPILER_TAG "clang-" SCION_STR(__clang_major__)
#elif defined(__GNUC__)
#define SCION_COMPILER_TAG "gcc-" SCION_STR(__GNUC__)
#else
#define SCION_COMPILER_TAG "other-compiler"
#endif
// SCION_CUDA_MAJOR comes with the scion_core target (CMake): the CUDA major of the Scion
// build a plugin was compiled against, 0 without CUDA.
#ifndef SCION_CUDA_MAJOR
#define SCION_CUDA_MAJOR 0
#endif
// What must agree between a plugin and the host for C++ objects to cross between them.
#define SCION_BUILD_FINGERPRINT SCION_COMPILER_TAG ";" SCION_STDLIB_TAG ";cuda-" SCION_STR(SCION_CUDA_MAJOR)

// Registers one plugin in the library being built: SCION_REGISTER_PLUGIN(fn) where fn()
// returns a scion::PluginEntry.
#define SCION_REGISTER_PLUGIN(fn)                                                         \
  namespace {                                                                             \
  [[maybe_unused]] const bool scion_registered_##fn = [] {                                \
    ::scion::plugin_library_entries().push_back(fn());                                    \
    return true;                                                                          \
  }();                                                                                    \
  }

// Exactly once per plugin library: defines the entry list and exports the header through
// Boost.DLL's alias mechanism under the name "scion_plugin_header".
#define SCION_PLUGIN_LIBRARY()                                                            \
  namespace scion {                                                                       \
  std::vector<PluginEntry>& plugin_library_entries() {                                    \
    static std::vector<PluginEntry> entries;                                              \
    return entries;                                                                       \
  }                                                                                       \
  static const std::vector<PluginEntry>* scion_library_entries() {                        \
    return &plugin_library_entries();                                                     \
  }                                                                                       \
  extern "C" BOOST_SYMBOL_EXPORT const PluginLibraryHeader scion_plugin_header_v1;        \
  const PluginLibraryHeader scion_plugin_header_v1 = {kPluginMagic, kSdkAbiMajor,         \
                                                      kSdkAbiMinor, SCION_BUILD_FINGERPRINT, \
                                                      &scion_library_entries};            \
  }                                                                                       \
  BOOST_DLL_ALIAS(scion::scion_plugin_header_v1, scion_plugin_header)

namespace scion {
// Declared for the macros; defined by SCION_PLUGIN_LIBRARY() inside each plugin library.
std::vector<PluginEntry>& plugin_library_entries();
}  // namespace scion
