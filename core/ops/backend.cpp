// The tables' dispatch (backend_of, backend_for) and their completeness check; the tables
// themselves are built in backend_cpu.cpp and backend_cuda.cpp.
#include <cstddef>
#include <string>

#include "ops/backend.h"
#include "scion/error.h"
#include "scion/tensor.h"

namespace scion::ops::detail {

namespace {

// Every entry of struct Backend, in declaration order. The static_assert below fails to
// compile when the struct gains an entry this list lacks.
#define SCION_BACKEND_ENTRIES(X)                                                                                \
  X(binary) X(unary) X(unary_backward) X(dropout) X(masked_scale) X(strided_copy) X(strided_assign) X(copy)    \
  X(fill) X(fill_normal) X(fill_uniform) X(fill_randint) X(reduce_sum) X(reduce_max) X(sum_all) X(sum_squares) \
  X(gemm) X(gemm_batched) X(bf16_operand_bytes) X(pack_bf16_matrix) X(gemm_bf16_packed) X(add_bias_rows)       \
  X(sum_rows) X(softmax_rows) X(softmax_rows_backward) X(layernorm_forward) X(layernorm_backward)               \
  X(rmsnorm_forward) X(rmsnorm_backward) X(rotary)                                                              \
  X(embedding_forward) X(embedding_backward) X(index_select) X(index_add) X(take) X(take_backward) X(where)     \
  X(max_backward) X(attention_forward) X(attention_backward) X(cross_entropy_forward) X(cross_entropy_backward) \
  X(cross_entropy_rows) X(soft_cross_entropy_forward) X(soft_cross_entropy_backward) X(adamw) X(scale_inplace)

#define SCION_COUNT_ENTRY(e) +1
constexpr size_t kEntries = 0 SCION_BACKEND_ENTRIES(SCION_COUNT_ENTRY);
#undef SCION_COUNT_ENTRY

// The entries are the function pointers after name and kind, and nothing else.
static_assert(sizeof(Backend) == offsetof(Backend, binary) + kEntries * sizeof(void (*)()),
              "struct Backend has an entry that SCION_BACKEND_ENTRIES (backend_check.cpp) does not list");

}  // namespace

void check_backend_complete(const Backend& b) {
  std::string missing;
#define SCION_CHECK_ENTRY(e) \
  if (!b.e) missing += std::string(missing.empty() ? "" : ", ") + #e;
  SCION_BACKEND_ENTRIES(SCION_CHECK_ENTRY)
#undef SCION_CHECK_ENTRY
  if (!missing.empty())
    throw Error(std::string("the ") + (b.name ? b.name : "(unnamed)") + " backend table has no kernel for: " +
                missing + " (every entry of struct Backend, core/ops/backend.h, must be set where the table is built)");
}

#ifndef SCION_HAVE_CUDA
const Backend* backend_cuda() { return nullptr; }
#endif

const Backend& backend_of(const char* op, Device d) {
  if (d.is_cpu()) return backend_cpu();
  const Backend* cu = backend_cuda();
  if (!cu)
    throw Error(std::string(op) + ": a tensor is on " + d.str() +
                ", but this build of Scion has no CUDA backend (configure with -DSCION_CUDA=ON on a machine with nvcc)");
#ifdef SCION_HAVE_CUDA
  select_cuda_device(d.index);
#endif
  return *cu;
}

const Backend& backend_for(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  int i = 0, first_i = 0;
  for (const Tensor* t : ts) {
    if (!t) continue;
    if (!t->defined()) throw Error(std::string(op) + ": input " + std::to_string(i) + " is an undefined tensor");
    if (!first) {
      first = t;
      first_i = i;
    } else if (!(t->device() == first->device())) {
      throw Error(std::string(op) + ": inputs sit on two devices: input " + std::to_string(first_i) + " is " +
                  first->desc() + " (on " + first->device().str() + ") and input " + std::to_string(i) + " is " +
                  t->desc() + " (on " + t->device().str() + "); move them to one device with .to(device)");
    }
    ++i;
  }
  return backend_of(op, first ? first->device() : Device::cpu());
}

}  // namespace scion::ops::detail
