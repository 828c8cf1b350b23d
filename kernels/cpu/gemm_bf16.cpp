// The bf16 GEMM behind `precision = "bf16"` on the CPU: both inputs rounded to bf16 (round to
// nearest even), the products accumulated in f32 by oneDNN's matmul (AVX512-BF16 where the
// CPU has it), C stays f32. Master weights, optimizer state, LayerNorm, softmax and losses
// never see bf16: only the GEMM inputs do, as in PyTorch's CPU autocast.
//
// Without bf16 hardware (oneDNN 2.6 builds bf16 matmuls only from AVX-512 up; an AVX2 CPU such
// as AMD Zen 3 has none), or with SCION_CPU_BF16=emulate in the environment, the same GEMM is
// emulated: the inputs are rounded to bf16 but held as f32 (the rounded values, exactly), and
// multiplied by the f32 path. Each product of two bf16 values is exact in f32, so only the
// order of the f32 accumulation differs from the hardware path; the semantics (bf16 inputs,
// f32 accumulation) and the thread-count determinism are the same. An operand rounded once
// (pack_bf16_matrix) is multiplied as it is, so the emulation costs f32's time plus one
// rounding pass per operand; it was widening every copy for every product before (session 12).
//
// Determinism is kept as in gemm.cpp: the inputs are converted once per call, then C is cut
// into the same shape-only blocks (gemm_blocks.h), each computed by one single-threaded oneDNN matmul, so the
// bits do not depend on the thread count. oneDNN's OpenMP runtime is held to one thread on
// every calling thread; oneTBB owns the parallelism.

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <cblas.h>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "cpu/gemm_blocks.h"
#include "cpu/parallel.h"

// GCC's OpenMP runtime (libgomp, linked by name: top-level CMakeLists.txt); no omp.h, which a
// clang build would take from its own runtime.
extern "C" void omp_set_num_threads(int);
extern "C" void openblas_set_num_threads(int);

namespace scion::cpu {
namespace {

std::atomic<bool> g_bf16{false};

// rows x cols of a row-major matrix with leading dimension ld, packed (ld = cols) as bf16
// bits (Out = uint16_t) or as the rounded values in f32 (Out = float, the emulation).
template <class Out>
void pack_bf16(const float* src, int64_t rows, int64_t cols, int64_t ld, Out* dst) {
  parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = src + r * ld;
      Out* d = dst + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        if constexpr (std::is_same_v<Out, float>)
          d[c] = bf16_to_f32(f32_to_bf16(s[c]));  // the emulation's operand: the rounded value
        else
          d[c] = f32_to_bf16(s[c]);
      }
    }
  });
}

// Buffers reused across calls (no allocation once the largest shapes were seen). A pool, not
// thread_local storage: a thread that waits in parallel_range may run another GEMM of the same
// thread before the first one is done.
template <class T>
class Pool {
 public:
  std::unique_ptr<T> acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<T>();
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void release(std::unique_ptr<T> b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<T>> free_;
};
// The packed inputs of one call: bf16 bits, or (emulated) the rounded values as f32.
struct Packed {
  std::vector<uint16_t> a, b;
  std::vector<float> fa, fb;
};
Pool<Packed> g_packed;
// oneDNN's own scratchpad is shared by the primitives of a process unless the library was
// built for concurrent execution; each block brings its own (scratchpad_mode::user).
Pool<std::vector<uint8_t>> g_scratch;

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

// f32_inputs: A and B are f32 (the f32 path, gemm.cpp), else bf16 (packed).
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

// One block: op(A) rows [m], op(B) columns [n], all of K; A and B bf16 (packed buffers) or f32.
template <class In>
void block(bool ta, bool tb, int64_t m, int64_t n, int64_t K, float alpha, const In* A, int64_t lda, const In* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr bool f32_inputs = std::is_same_v<In, float>;
  if constexpr (f32_inputs) {
    if (gemm_f32_engine() == GemmEngine::openblas) {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(m),
                  blasint(n), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
      return;
    }
  }
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


// Products whose inner size dwarfs their output (the fused LM head's dx = G·W: 256 x 256 from
// K = 50304) split K instead of C: C-blocks would each re-read all of op(B) (51 MB per
// block there, so four blocks made the product memory-bound at half the speed of its
// neighbours). Slice p computes op(A)[:, kp] op(B)[kp, :] into its own partial; the partials
// are added in slice order, so the bits depend on the shape only.
constexpr int64_t kSliceK = 4096;
bool split_k(int64_t M, int64_t N, int64_t K) { return K >= 4 * kSliceK && K >= 32 * std::max(M, N) && M * N <= (1 << 18); }

Pool<std::vector<float>> g_partials;

template <class In>
void gemm_split_k(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const In* A, int64_t lda,
                  const In* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t parts = (K + kSliceK - 1) / kSliceK, MN = M * N;
  auto buf = g_partials.acquire();
  buf->resize(size_t(parts * MN));
  float* P = buf->data();
  parallel_range(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t k0 = p * kSliceK, kn = std::min(K, k0 + kSliceK) - k0;
      block(ta, tb, M, N, kn, alpha, ta ? A + k0 * lda : A + k0, lda, tb ? B + k0 : B + k0 * ldb, ldb, 0.f,
            P + p * MN, N);
    }
  });
  parallel_range(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(N, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* c = C + i * ldc;
      for (int64_t j = 0; j < N; ++j) {
        float acc = P[i * N + j];
        for (int64_t p = 1; p < parts; ++p) acc += P[p * MN + i * N + j];
        c[j] = beta == 0.f ? acc : beta * c[j] + acc;
      }
    }
  });
  g_partials.release(std::move(buf));
}

// The whole product: K slices (split_k) or the shape-only C blocks of gemm_blocks.h, each one
// single-threaded oneDNN call. op(A) rows i0.. sit at column i0 of the stored A when it is
// transposed, at row i0 if not; op(B) columns j0.. likewise.
template <class In>
void gemm_onednn(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const In* A, int64_t lda,
                 const In* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (split_k(M, N, K)) return gemm_split_k(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for_each_gemm_block(M, N, K, [&](int64_t i0, int64_t m, int64_t j0, int64_t n) {
    block(ta, tb, m, n, K, alpha, ta ? A + i0 : A + i0 * lda, lda, tb ? B + j0 * ldb : B + j0, ldb, beta,
          C + i0 * ldc + j0, ldc);
  });
}


// Can oneDNN build a bf16 matmul on this CPU? Asked once, with a small product.
bool probe_native_bf16() {
  if (const char* e = std::getenv("SCION_CPU_BF16")) {
    const std::string v(e);
    if (v == "emulate") return false;
    if (!v.empty() && v != "native")
      throw std::runtime_error("SCION_CPU_BF16='" + v + "': expected \"native\" or \"emulate\" (or unset)");
  }
  try {
    primitive(16, 16, 16, false, false, 16, 16, 16, 1.f, 0.f, false);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

GemmEngine gemm_f32_engine() {
  static const GemmEngine e = [] {
    if (const char* v = std::getenv("SCION_CPU_GEMM")) {
      const std::string s(v);
      if (s == "onednn") return GemmEngine::onednn;
      if (s == "openblas") {
        openblas_set_num_threads(1);  // one single-threaded call per block, as oneDNN's
        return GemmEngine::openblas;
      }
      if (!s.empty())
        throw std::runtime_error("SCION_CPU_GEMM='" + s + "': expected \"onednn\" or \"openblas\" (or unset)");
    }
    return GemmEngine::onednn;
  }();
  return e;
}

bool gemm_bf16_native() {
  static const bool native = probe_native_bf16();
  return native;
}

void set_gemm_bf16(bool on) { g_bf16.store(on); }
bool gemm_bf16() { return g_bf16.load(std::memory_order_relaxed); }

int64_t bf16_operand_bytes() { return gemm_bf16_native() ? 2 : 4; }

void pack_bf16_matrix(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst) {
  if (gemm_bf16_native())
    pack_bf16(src, rows, cols, ld, static_cast<uint16_t*>(dst));
  else
    pack_bf16(src, rows, cols, ld, static_cast<float*>(dst));
}

void gemm_bf16_packed(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* a, int64_t la,
                      const void* b, int64_t lb, float beta, float* C, int64_t ldc) {
  if (gemm_bf16_native())
    return gemm_onednn(ta, tb, M, N, K, alpha, static_cast<const uint16_t*>(a), la, static_cast<const uint16_t*>(b),
                       lb, beta, C, ldc);
  // Emulated: the copies already hold the rounded values in f32.
  if (gemm_degenerate(M, N, K, beta, C, ldc)) return;
  gemm_onednn(ta, tb, M, N, K, alpha, static_cast<const float*>(a), la, static_cast<const float*>(b), lb, beta, C,
              ldc);
}

void gemm_bf16_inputs(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // Packed copies keep each input's layout (transposed or not) with a compact leading dim.
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
  auto buf = g_packed.acquire();
  void *pa, *pb;
  if (gemm_bf16_native()) {
    buf->a.resize(size_t(a_rows * a_cols));
    buf->b.resize(size_t(b_rows * b_cols));
    pa = buf->a.data(), pb = buf->b.data();
  } else {
    buf->fa.resize(size_t(a_rows * a_cols));
    buf->fb.resize(size_t(b_rows * b_cols));
    pa = buf->fa.data(), pb = buf->fb.data();
  }
  pack_bf16_matrix(A, a_rows, a_cols, lda, pa);
  pack_bf16_matrix(B, b_rows, b_cols, ldb, pb);
  gemm_bf16_packed(ta, tb, M, N, K, alpha, pa, a_cols, pb, b_cols, beta, C, ldc);
  g_packed.release(std::move(buf));
}

void gemm_f32_onednn(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_onednn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace scion::cpu
