// oneDNN's matmul on one block (onednn_matmul.h). oneDNN's OpenMP runtime is held to one
// thread on every calling thread.
#include "cpu/onednn_matmul.h"

#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu/buffer_pool.h"

// GCC's OpenMP runtime (libgomp, linked by name: top-level CMakeLists.txt); no omp.h, which a
// clang build would take from its own runtime.
extern "C" void omp_set_num_threads(int);

namespace scion::cpu {
namespace {

// oneDNN's own scratchpad is shared by the primitives of a process unless the library was
// built for concurrent execution; each block brings its own (scratchpad_mode::user).
BufferPool<std::vector<uint8_t>> g_scratch;

const dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One matmul primitive per (block shape, transposes, leading dims, alpha, beta), created once.
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, float, float, bool>;
std::mutex g_prim_mu;
struct Prim {
  dnnl::matmul matmul;
  size_t scratch_bytes = 0;
};
std::map<Key, Prim> g_prims;

// f32_inputs: A and B are f32, else bf16.
Prim primitive(int64_t M, int64_t N, int64_t K, bool ta, bool tb, int64_t lda, int64_t ldb, int64_t ldc,
               float alpha, float beta, bool f32_inputs) {
  const Key key{M, N, K, ta, tb, lda, ldb, ldc, alpha, beta, f32_inputs};
  std::lock_guard<std::mutex> lock(g_prim_mu);
  auto it = g_prims.find(key);
  if (it != g_prims.end()) return it->second;
  using dt = dnnl::memory::data_type;
  // op(A) is M x K: stored K x M (lda) when transposed; op(B) is K x N likewise.
  const dt in = f32_inputs ? dt::f32 : dt::bf16;
  const dnnl::memory::desc a({M, K}, in, ta ? dnnl::memory::dims{1, lda} : dnnl::memory::dims{lda, 1});
  const dnnl::memory::desc b({K, N}, in, tb ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1});
  const dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  if (beta != 0.f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
  const Prim p{dnnl::matmul(pd), pd.scratchpad_desc().get_size()};
  g_prims.emplace(key, p);
  return p;
}

void single_threaded_omp() {
  thread_local bool done = false;
  if (!done) omp_set_num_threads(1), done = true;
}

template <class In>
void matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t K, float alpha, const In* A, int64_t lda, const In* B,
            int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr bool f32_inputs = std::is_same_v<In, float>;
  single_threaded_omp();
  const Prim p = primitive(m, n, K, ta, tb, lda, ldb, ldc, alpha, beta, f32_inputs);
  thread_local dnnl::stream stream(engine());
  using dt = dnnl::memory::data_type;
  const dt in = f32_inputs ? dt::f32 : dt::bf16;
  dnnl::memory ma({{m, K}, in, ta ? dnnl::memory::dims{1, lda} : dnnl::memory::dims{lda, 1}}, engine(),
                  const_cast<In*>(A));
  dnnl::memory mb({{K, n}, in, tb ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1}}, engine(),
                  const_cast<In*>(B));
  dnnl::memory mc({{m, n}, dt::f32, dnnl::memory::dims{ldc, 1}}, engine(), C);
  auto scratch = g_scratch.acquire();
  if (scratch->size() < p.scratch_bytes) scratch->resize(p.scratch_bytes);
  dnnl::memory ms({{int64_t(p.scratch_bytes)}, dt::u8, dnnl::memory::dims{1}}, engine(), scratch->data());
  p.matmul.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}});
  stream.wait();
  g_scratch.release(std::move(scratch));
}

}  // namespace

void onednn_matmul_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void onednn_matmul_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                        int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool onednn_builds_bf16_matmul() {
  try {
    primitive(16, 16, 16, false, false, 16, 16, 16, 1.f, 0.f, false);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace scion::cpu
