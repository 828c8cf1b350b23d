// The cpu table: kernels/cpu, with thin adapters where the table's shape differs (results
// written through pointers instead of returned). The one file of core that includes the CPU
// kernels' header; the rest of core reaches them through this table and ops/cpu_engine.h.
#include <cstring>
#include <string>

#include "cpu/cpu_kernels.h"
#include "ops/backend.h"
#include "ops/cpu_engine.h"

namespace scion::ops::detail {

namespace {

Backend make_cpu() {
  Backend b{};
  b.name = "cpu";
  b.kind = Device::Kind::cpu;
  b.binary = cpu::binary;
  b.unary = cpu::unary;
  b.unary_backward = cpu::unary_backward;
  b.dropout = cpu::dropout;
  b.masked_scale = cpu::masked_scale;
  b.strided_copy = cpu::strided_copy;
  b.strided_assign = cpu::strided_assign;
  b.copy = [](void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  };
  b.fill = cpu::fill;
  b.fill_normal = cpu::fill_normal;
  b.fill_uniform = cpu::fill_uniform;
  b.fill_randint = cpu::fill_randint;
  b.reduce_sum = cpu::reduce_sum;
  b.reduce_max = cpu::reduce_max;
  b.sum_all = [](const float* x, int64_t n, float* out) { *out = float(cpu::sum_all(x, n)); };
  b.sum_squares = [](const float* x, int64_t n, float* out, double* out_f64) {
    const double s = cpu::sum_squares(x, n);
    if (out) *out = float(s);
    if (out_f64) *out_f64 = s;
  };
  b.gemm = cpu::gemm;
  b.gemm_batched = cpu::gemm_batched;
  b.bf16_operand_bytes = cpu::bf16_operand_bytes;
  b.pack_bf16_matrix = cpu::pack_bf16_matrix;
  b.gemm_bf16_packed = cpu::gemm_bf16_packed;
  b.add_bias_rows = cpu::add_bias_rows;
  b.sum_rows = cpu::sum_rows;
  b.softmax_rows = cpu::softmax_rows;
  b.softmax_rows_backward = cpu::softmax_rows_backward;
  b.layernorm_forward = cpu::layernorm_forward;
  b.layernorm_backward = cpu::layernorm_backward;
  b.rmsnorm_forward = cpu::rmsnorm_forward;
  b.rmsnorm_backward = cpu::rmsnorm_backward;
  b.rotary = cpu::rotary;
  b.embedding_forward = cpu::embedding_forward;
  b.embedding_backward = [](const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g, int64_t) {
    cpu::embedding_backward(gy, ids, n, dim, g);
  };
  b.index_select = cpu::index_select;
  b.index_add = cpu::index_add;
  b.take = cpu::take;
  b.take_backward = cpu::take_backward;
  b.where = cpu::where;
  b.max_backward = cpu::max_backward;
  b.attention_forward = cpu::attention_forward;
  b.attention_backward = cpu::attention_backward;
  b.cross_entropy_forward = [](const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                               int64_t ignore_index, float* loss_rows, float* lse, int64_t* count, int64_t* bad_row) {
    *count = cpu::cross_entropy_forward(logits, targets, rows, V, ignore_index, loss_rows, lse, bad_row);
  };
  b.cross_entropy_backward = cpu::cross_entropy_backward;
  b.cross_entropy_rows = cpu::cross_entropy_rows;
  b.soft_cross_entropy_forward = cpu::soft_cross_entropy_forward;
  b.soft_cross_entropy_backward = cpu::soft_cross_entropy_backward;
  b.adamw = cpu::adamw;
  b.scale_inplace = cpu::scale_inplace;
  return b;
}

}  // namespace

const Backend& backend_cpu() {
  static const Backend b = [] {
    const Backend t = make_cpu();
    check_backend_complete(t);
    return t;
  }();
  return b;
}

}  // namespace scion::ops::detail

namespace scion::ops {

void check_cpu_engine_environment() {
  cpu::gemm_f32_engine();
  cpu::gemm_bf16_native();
}

bool cpu_bf16_native() { return cpu::gemm_bf16_native(); }

void set_cpu_blas_threads(int n) { cpu::set_blas_threads(n); }

}  // namespace scion::ops
