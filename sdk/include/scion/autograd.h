// Reverse-mode automatic differentiation over a tape.
//
// Every op that runs while gradients are enabled and has an input that requires grad
// appends a Node to the tape (its sequence number is its tape position) and hangs it on its
// output. backward() walks the nodes reachable from the root in reverse tape order, summing
// the gradients of tensors used more than once, and accumulates into the .grad of leaves.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scion/tensor.h"

namespace scion::autograd {

// Gradients w.r.t. each input, given the gradient w.r.t. the output. An undefined Tensor in
// the result means "no gradient for that input".
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  uint64_t sequence = 0;
  const char* op = "";
  std::vector<Tensor> inputs;  // the op's tensor inputs, in the order backward returns grads
  BackwardFn backward;
};

bool grad_enabled();
void set_grad_enabled(bool enabled);

// True when an op with these inputs must be recorded.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `out` as produced by `op` from `inputs`. `backward` must not capture `out` itself
// (capture out.detach() instead) so that no reference cycle keeps the graph alive.
void record(const char* op, Tensor& out, std::vector<Tensor> inputs, BackwardFn backward);

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);

// Called during backward, on the thread running it, once for each leaf that requires grad as
// soon as every node of the pass that reads it has run: its gradient (possibly none) is final.
// The data-parallel executor launches a gradient bucket's all-reduce from here, overlapping
// communication with the rest of backward. Set for the current thread while the guard lives.
using LeafReadyFn = std::function<void(const TensorImpl* leaf)>;
class LeafReadyHook {
 public:
  explicit LeafReadyHook(LeafReadyFn fn);
  ~LeafReadyHook();
  LeafReadyHook(const LeafReadyHook&) = delete;
  LeafReadyHook& operator=(const LeafReadyHook&) = delete;

 private:
  LeafReadyFn previous_;
};

// Optional timing of backward by op (for benchmarks): seconds and calls per op name,
// accumulated over backward passes while enabled.
struct OpTime {
  std::string op;
  double seconds = 0;
  int64_t calls = 0;
};
void set_backward_profiling(bool enabled);
std::vector<OpTime> backward_profile();  // sorted by time, largest first
void reset_backward_profile();

}  // namespace scion::autograd

namespace scion {

// Disables recording in this thread for its lifetime (teachers, evaluation, optimizers).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(autograd::grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace scion
