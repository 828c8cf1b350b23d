// oneDNN's matmul on one block (onednn_matmul.h). oneDNN's OpenMP runtime is held to one
// thread on every calling thread.
#include "cpu/onednn_matmul.h"

#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

// GCC's OpenMP runtime (libgomp, linked by name: top-level CMakeLists.txt); no omp.h, which a
// clang build would take from its own runtime.
extern "C" void omp_set_num_threads(int);

namespace scion::cpu {
namespace {

// oneDNN's own scratchpad is shared by the primitives of a process unless the library was
// built for concurrent execution; each calling thread brings its own (scratchpad_mode::user).

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

// One thread's oneDNN objects for one primitive: the memory objects and the argument map are
// made once and re-pointed at each call's operands (set_data_handle), so a call allocates
// nothing and takes no lock. Small products are many (attention's per-head GEMMs, the blocks of
// a large one), and per call the memory objects, the argument map and the locked lookup cost
// microseconds, as much as a 128 x 128 x 64 product itself.
struct Bound {
  Prim prim;
  dnnl::memory a, b, c, scratch;
  std::unordered_map<int, dnnl::memory> args;
};

template <class In>
void matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t K, float alpha, const In* A, int64_t lda, const In* B,
            int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr bool f32_inputs = std::is_same_v<In, float>;
  single_threaded_omp();
  thread_local std::map<Key, Bound> bound;
  thread_local std::vector<uint8_t> scratch;  // this thread's scratchpad (oneDNN runs the call on it)
  thread_local dnnl::stream stream(engine());
  const Key key{m, n, K, ta, tb, lda, ldb, ldc, alpha, beta, f32_inputs};
  auto it = bound.find(key);
  if (it == bound.end()) {
    Bound bd;
    bd.prim = primitive(m, n, K, ta, tb, lda, ldb, ldc, alpha, beta, f32_inputs);
    using dt = dnnl::memory::data_type;
    const dt in = f32_inputs ? dt::f32 : dt::bf16;
    bd.a = dnnl::memory({{m, K}, in, ta ? dnnl::memory::dims{1, lda} : dnnl::memory::dims{lda, 1}}, engine(),
                        DNNL_MEMORY_NONE);
    bd.b = dnnl::memory({{K, n}, in, tb ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1}}, engine(),
                        DNNL_MEMORY_NONE);
    bd.c = dnnl::memory({{m, n}, dt::f32, dnnl::memory::dims{ldc, 1}}, engine(), DNNL_MEMORY_NONE);
    bd.scratch = dnnl::memory({{int64_t(bd.prim.scratch_bytes)}, dt::u8, dnnl::memory::dims{1}}, engine(),
                              DNNL_MEMORY_NONE);
    bd.args = {{DNNL_ARG_SRC, bd.a}, {DNNL_ARG_WEIGHTS, bd.b}, {DNNL_ARG_DST, bd.c}, {DNNL_ARG_SCRATCHPAD, bd.scratch}};
    it = bound.emplace(key, std::move(bd)).first;
  }
  Bound& bd = it->second;
  if (scratch.size() < bd.prim.scratch_bytes) scratch.resize(bd.prim.scratch_bytes);
  bd.a.set_data_handle(const_cast<In*>(A));
  bd.b.set_data_handle(const_cast<In*>(B));
  bd.c.set_data_handle(C);
  bd.scratch.set_data_handle(scratch.data());
  bd.prim.matmul.execute(stream, bd.args);
  stream.wait();
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
