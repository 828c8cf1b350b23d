#include "scion/autograd.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "autograd/accumulate.h"
#include "scion/ops.h"

namespace scion::autograd {
namespace {
thread_local bool t_grad_enabled = true;
thread_local LeafReadyFn t_leaf_ready;
thread_local bool t_in_backward = false;  // accumulation_target answers only inside backward
std::atomic<bool> g_profiling{false};
std::mutex g_profile_mutex;
std::map<std::string, OpTime> g_profile;
std::atomic<uint64_t> g_sequence{0};

// True when `handles` handles on t's tensor are all there are, nobody else shares its storage
// (no view, saved tensor or other gradient) and t covers that whole buffer contiguously:
// writing into it, or keeping it as a leaf's gradient, changes nothing anyone else can see.
bool owns_whole_buffer(const Tensor& t, long handles) {
  const std::shared_ptr<TensorImpl>& ip = t.impl_ptr();
  return ip && ip.use_count() == handles && ip->storage && ip->storage.use_count() == 1 && ip->offset == 0 &&
         !ip->grad_fn && t.is_contiguous() && ip->storage->bytes() == t.nbytes();
}
bool sole_owner(const Tensor& t) { return owns_whole_buffer(t, 1); }

// g is the pass's own handle (moved from the node's results): when nothing else shares its
// buffer it is taken as is, and a second gradient is added in place into a gradient the leaf
// alone holds. Otherwise (a view of the seed, of another input's gradient or of a saved tensor;
// a gradient the caller still holds from p.grad()) copies keep every other handle untouched.
void accumulate_leaf(const Tensor& leaf, Tensor g) {
  TensorImpl& impl = leaf.impl();
  if (!impl.grad) {
    if (g.dtype() == leaf.dtype() && sole_owner(g)) {
      impl.grad = g.impl_ptr();
      return;
    }
    impl.grad = g.to(leaf.dtype()).clone().impl_ptr();
    return;
  }
  Tensor acc(std::move(impl.grad));  // acc is the only handle when the leaf held it alone
  try {
    if (sole_owner(acc) && acc.dtype() == DType::f32 && g.dtype() == DType::f32 && g.device() == acc.device()) {
      ops::add_inplace(acc, g);
      impl.grad = acc.impl_ptr();
    } else {
      impl.grad = ops::add(acc, g).impl_ptr();
    }
  } catch (...) {
    impl.grad = acc.impl_ptr();  // the gradient so far is kept
    throw;
  }
}
}  // namespace

namespace detail {
Tensor accumulation_target(const Tensor& leaf) {
  if (!t_in_backward || !leaf.defined() || !leaf.requires_grad() || leaf.impl().grad_fn || !leaf.impl().grad)
    return Tensor();
  Tensor g(leaf.impl().grad);  // the leaf's handle and this one
  if (!owns_whole_buffer(g, 2) || g.dtype() != DType::f32 || !(g.device() == leaf.device()) || g.shape() != leaf.shape())
    return Tensor();
  return g;
}
}  // namespace detail

LeafReadyHook::LeafReadyHook(LeafReadyFn fn) : previous_(std::move(t_leaf_ready)) { t_leaf_ready = std::move(fn); }
LeafReadyHook::~LeafReadyHook() { t_leaf_ready = std::move(previous_); }

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* op, Tensor& out, std::vector<Tensor> inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->sequence = g_sequence.fetch_add(1, std::memory_order_relaxed);
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
}

void run_backward(const Tensor& root, const Tensor& seed_in, bool retain_graph) {
  SCION_CHECK(root.defined(), "backward: called on an undefined tensor");
  SCION_CHECK(root.requires_grad(), "backward: tensor ", root.desc(),
              " does not require grad (was it computed under NoGradGuard, or from no parameter?)");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    SCION_CHECK(root.numel() == 1, "backward: a seed gradient is needed for non-scalar ", root.desc());
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  SCION_CHECK(seed.shape() == root.shape(), "backward: seed ", seed.desc(), " does not match ",
              root.desc());
  NoGradGuard no_grad;  // backward computations are never recorded
  struct InBackward {
    bool was = t_in_backward;
    InBackward() { t_in_backward = true; }
    ~InBackward() { t_in_backward = was; }
  } in_backward;
  if (!root.impl().grad_fn) {
    accumulate_leaf(root, seed);
    return;
  }
  // Collect the nodes reachable from the root; replay them in reverse tape order.
  // `order` owns the nodes: freeing a node's inputs below must not free nodes still to run.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::shared_ptr<Node>> stack{root.impl().grad_fn};
  seen.insert(stack.back().get());
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    for (const Tensor& in : n->inputs) {
      if (!in.defined()) continue;
      const auto& p = in.impl().grad_fn;
      if (p && seen.insert(p.get()).second) stack.push_back(p);
    }
    order.push_back(std::move(n));
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a->sequence > b->sequence; });

  // With a leaf-ready hook: how many nodes of the pass read each leaf; a leaf is final when
  // the last of them has run (or was skipped for want of a gradient).
  std::unordered_map<const TensorImpl*, int> readers;
  if (t_leaf_ready)
    for (const auto& node : order)
      for (const Tensor& in : node->inputs)
        if (in.defined() && in.requires_grad() && !in.impl().grad_fn) ++readers[&in.impl()];
  auto leaves_done = [&](const Node* n) {
    if (!t_leaf_ready) return;
    for (const Tensor& in : n->inputs)
      if (in.defined() && in.requires_grad() && !in.impl().grad_fn)
        if (--readers[&in.impl()] == 0) t_leaf_ready(&in.impl());
  };
  std::unordered_map<Node*, Tensor> pending;
  pending[root.impl().grad_fn.get()] = seed;
  for (const std::shared_ptr<Node>& node : order) {
    Node* n = node.get();
    auto it = pending.find(n);
    if (it == pending.end()) {
      leaves_done(n);
      continue;
    }
    Tensor g = std::move(it->second);
    pending.erase(it);
    SCION_CHECK(n->backward, "backward: the graph through '", n->op,
                "' was already freed; pass retain_graph=true to backward twice");
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> grads = n->backward(g);
    if (g_profiling.load(std::memory_order_relaxed)) {
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard lock(g_profile_mutex);
      OpTime& ot = g_profile[n->op];
      ot.op = n->op;
      ot.seconds += dt;
      ++ot.calls;
    }
    SCION_CHECK(grads.size() == n->inputs.size(), "internal error: backward of '", n->op, "' returned ",
                grads.size(), " gradients for ", n->inputs.size(), " inputs");
    // The closure goes first: gradients it made ahead (and still holds) become the pass's own.
    if (!retain_graph) n->backward = nullptr;
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = n->inputs[i];
      Tensor& gi = grads[i];
      if (!gi.defined() || !in.defined() || !in.requires_grad()) continue;
      SCION_CHECK(gi.shape() == in.shape(), "internal error: backward of '", n->op, "' gave gradient ",
                  gi.desc(), " for input ", i, " of shape ", in.desc());
      Node* p = in.impl().grad_fn.get();
      if (p) {
        auto slot = pending.find(p);
        if (slot == pending.end()) pending.emplace(p, gi);
        else slot->second = ops::add(slot->second, gi);
      } else {
        accumulate_leaf(in, std::move(gi));
      }
    }
    leaves_done(n);
    if (!retain_graph) n->inputs.clear();
  }
}

void set_backward_profiling(bool enabled) { g_profiling = enabled; }

std::vector<OpTime> backward_profile() {
  std::lock_guard lock(g_profile_mutex);
  std::vector<OpTime> out;
  for (auto& [k, v] : g_profile) out.push_back(v);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  return out;
}

void reset_backward_profile() {
  std::lock_guard lock(g_profile_mutex);
  g_profile.clear();
}

}  // namespace scion::autograd
