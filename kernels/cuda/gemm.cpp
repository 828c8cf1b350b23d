// GEMMs through cuBLASLt. Row-major products are computed as their column-major transposes
// (C^T = op(B)^T op(A)^T), so no data moves. One cuBLASLt handle per device; the matrix layouts
// and the algorithm chosen by the heuristic are cached per problem (shape, types, transposes,
// epilogue, pointer alignment), so steady-state training queries the heuristic once per GEMM
// shape. The matmul descriptor itself is rebuilt per call (host-only, cheap) because it carries
// the per-call bias/aux pointers and must not be shared between threads.
//
// Workspace: drawn per call from the device's stream-ordered memory pool (cudaMallocAsync), so
// two streams never share one and nothing synchronises; the pool's release threshold is raised
// once per device so the 32 MiB stay cached between steps instead of going back to the driver.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/cuda_kernels.h"

namespace scion::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLASLt error in ") + what + ": status " + std::to_string(int(st)));
}

bool g_allow_tf32 = false;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: throw std::invalid_argument(std::string("cuda::gemm: unsupported dtype ") + dtype_name(t));
  }
}

// The largest power of two (<= 256) dividing the address: what the heuristic may assume.
uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

struct DeviceState {
  cublasLtHandle_t handle = nullptr;
  size_t workspace_bytes = 0;
};

DeviceState& device_state(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<DeviceState>> states;
  std::lock_guard<std::mutex> lock(mu);
  auto& st = states[device];
  if (!st) {
    auto s = std::make_unique<DeviceState>();
    check(cublasLtCreate(&s->handle), "cublasLtCreate");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    // NVIDIA's guidance: 32 MiB lets Hopper use its best kernels; 4 MiB is enough before it.
    s->workspace_bytes = prop.major >= 9 ? (size_t(32) << 20) : (size_t(4) << 20);
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
    uint64_t threshold = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold), "cudaMemPoolSetAttribute");
    st = std::move(s);
  }
  return *st;
}

// Everything that decides the layouts and the algorithm.
struct PlanKey {
  int device;
  int ab, c, bias_type;
  bool ta, tb, tf32;
  int64_t M, N, K, batch, lda, ldb, ldc, sa, sb, sc, aux_ld, aux_stride;
  int epilogue;
  uint32_t align_a, align_b, align_c, align_bias, align_aux;
  auto tie() const {
    return std::tie(device, ab, c, bias_type, ta, tb, tf32, M, N, K, batch, lda, ldb, ldc, sa, sb, sc, aux_ld,
                    aux_stride, epilogue, align_a, align_b, align_c, align_bias, align_aux);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

struct Layouts {
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // a = first operand (B), b = second (A)
  ~Layouts() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};
struct Plan {
  Layouts layouts;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

cublasLtMatrixLayout_t make_layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  check(cublasLtMatrixLayoutCreate(&l, t, uint64_t(rows), uint64_t(cols), ld), "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
          "layout batch count");
    check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
          "layout batch stride");
  }
  return l;
}

cublasLtEpilogue_t lt_epilogue(Epilogue e, bool aux) {
  switch (e) {
    case Epilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::gelu: return CUBLASLT_EPILOGUE_GELU;
    case Epilogue::gelu_bias: return aux ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~MatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};

// Builds the descriptor for one call (pointers included).
void fill_desc(MatmulDesc& md, const GemmArgs& a, bool tf32) {
  const cublasComputeType_t compute =
      (a.ab_dtype == DType::f32 && tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check(cublasLtMatmulDescCreate(&md.d, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  // Column-major view: first operand is B, second is A (see the file comment).
  const cublasOperation_t op_first = a.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = a.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)), "transa");
  check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)), "transb");
  const cublasLtEpilogue_t epi = lt_epilogue(a.epilogue, a.aux != nullptr);
  check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "epilogue");
  if (a.epilogue == Epilogue::bias || a.epilogue == Epilogue::gelu_bias) {
    const int32_t bt = int32_t(cuda_type(a.bias_dtype));
    check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)), "bias type");
    check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &a.bias, sizeof(a.bias)),
          "bias pointer");
  }
  if (a.epilogue == Epilogue::gelu_bias && a.aux) {
    check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &a.aux, sizeof(a.aux)),
          "aux pointer");
    check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &a.aux_ld, sizeof(a.aux_ld)),
          "aux ld");
    if (a.batch > 1)
      check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, &a.aux_stride,
                                           sizeof(a.aux_stride)),
            "aux stride");
    const int32_t at = int32_t(cuda_type(a.c_dtype));
    check(cublasLtMatmulDescSetAttribute(md.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &at, sizeof(at)),
          "aux type");
  }
}

const Plan& get_plan(const PlanKey& key, const GemmArgs& a, DeviceState& ds, const MatmulDesc& md) {
  static std::mutex mu;
  static std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = plans[key];
  if (slot) return *slot;
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t abt = cuda_type(a.ab_dtype), ct = cuda_type(a.c_dtype);
  // Column-major views of the row-major operands (a row-major R x C matrix with leading
  // dimension ld is a column-major C x R matrix with the same ld).
  const int64_t b_rows = a.trans_b ? a.K : a.N, b_cols = a.trans_b ? a.N : a.K;
  const int64_t a_rows = a.trans_a ? a.M : a.K, a_cols = a.trans_a ? a.K : a.M;
  plan->layouts.a = make_layout(abt, b_rows, b_cols, a.ldb, a.batch, a.stride_b);
  plan->layouts.b = make_layout(abt, a_rows, a_cols, a.lda, a.batch, a.stride_a);
  plan->layouts.c = make_layout(ct, a.N, a.M, a.ldc, a.batch, a.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t ws = ds.workspace_bytes;
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
        "pref workspace");
  // Operand order is the column-major one: "A" of cuBLASLt is our B.
  const uint32_t al[4] = {key.align_b, key.align_a, key.align_c, key.align_c};
  const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    check(cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &al[i], sizeof(al[i])), "pref alignment");

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(ds.handle, md.d, plan->layouts.a, plan->layouts.b, plan->layouts.c,
                                       plan->layouts.c, pref, 1, &result, &found),
        "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    throw std::runtime_error("cuda::gemm: cuBLASLt has no algorithm for M=" + std::to_string(a.M) +
                             " N=" + std::to_string(a.N) + " K=" + std::to_string(a.K) + " (" +
                             dtype_name(a.ab_dtype) + " -> " + dtype_name(a.c_dtype) + ")");
  plan->algo = result.algo;
  plan->workspace = result.workspaceSize;
  slot = std::move(plan);
  return *slot;
}

void validate(const GemmArgs& a) {
  if (a.M < 0 || a.N < 0 || a.K < 0 || a.batch < 1) throw std::invalid_argument("cuda::gemm: negative size");
  if (a.ab_dtype == DType::f32 && a.c_dtype != DType::f32)
    throw std::invalid_argument("cuda::gemm: f32 inputs need an f32 output");
  if (a.ab_dtype != DType::f32 && a.ab_dtype != DType::bf16)
    throw std::invalid_argument("cuda::gemm: inputs must be f32 or bf16");
  const bool needs_bias = a.epilogue == Epilogue::bias || a.epilogue == Epilogue::gelu_bias;
  if (needs_bias && !a.bias) throw std::invalid_argument("cuda::gemm: bias epilogue without a bias");
  if (a.aux && a.epilogue != Epilogue::gelu_bias)
    throw std::invalid_argument("cuda::gemm: aux output only with the gelu_bias epilogue");
  if (a.aux && a.aux_ld % 8 != 0) throw std::invalid_argument("cuda::gemm: aux leading dimension must be a multiple of 8");
}

}  // namespace

void set_allow_tf32(bool on) { g_allow_tf32 = on; }

void gemm_ex(const GemmArgs& a, void* stream) {
  validate(a);
  if (a.M == 0 || a.N == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.K == 0) {
    // cuBLASLt rejects k = 0; the product is empty, so D = beta*C (+ epilogue on zeros).
    if (a.epilogue != Epilogue::none || a.beta != 0.f || a.batch != 1 || a.c_dtype != DType::f32)
      throw std::invalid_argument("cuda::gemm: K == 0 is supported only as a plain f32 product with beta = 0");
    check(cudaMemset2DAsync(a.C, size_t(a.ldc) * sizeof(float), 0, size_t(a.N) * sizeof(float), size_t(a.M), s),
          "cuda::gemm (K == 0)");
    return;
  }
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  DeviceState& ds = device_state(device);
  const bool tf32 = g_allow_tf32 && a.ab_dtype == DType::f32;
  PlanKey key{device, int(a.ab_dtype), int(a.c_dtype), int(a.bias_dtype), a.trans_a, a.trans_b, tf32,
              a.M, a.N, a.K, a.batch, a.lda, a.ldb, a.ldc, a.stride_a, a.stride_b, a.stride_c,
              a.aux ? a.aux_ld : 0, a.aux ? a.aux_stride : 0, int(lt_epilogue(a.epilogue, a.aux != nullptr)),
              alignment(a.A), alignment(a.B), alignment(a.C), alignment(a.bias), alignment(a.aux)};
  MatmulDesc md;
  fill_desc(md, a, tf32);
  const Plan& plan = get_plan(key, a, ds, md);
  void* ws = nullptr;
  if (plan.workspace) check(cudaMallocAsync(&ws, plan.workspace, s), "cudaMallocAsync (gemm workspace)");
  const cublasStatus_t st = cublasLtMatmul(ds.handle, md.d, &a.alpha, a.B, plan.layouts.a, a.A, plan.layouts.b,
                                           &a.beta, a.C, plan.layouts.c, a.C, plan.layouts.c, &plan.algo, ws,
                                           plan.workspace, s);
  if (ws) cudaFreeAsync(ws, s);
  check(st, "cublasLtMatmul");
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, void* stream) {
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.M = M;
  g.N = N;
  g.K = K;
  g.alpha = alpha;
  g.beta = beta;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.ldb = ldb;
  g.C = C;
  g.ldc = ldc;
  gemm_ex(g, stream);
}

void gemm_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C,
                  int64_t ldc, int64_t sc, void* stream) {
  if (batch == 0) return;
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.batch = batch;
  g.M = M;
  g.N = N;
  g.K = K;
  g.alpha = alpha;
  g.beta = beta;
  g.A = A;
  g.lda = lda;
  g.stride_a = sa;
  g.B = B;
  g.ldb = ldb;
  g.stride_b = sb;
  g.C = C;
  g.ldc = ldc;
  g.stride_c = sc;
  gemm_ex(g, stream);
}

}  // namespace scion::cuda
