// Fused multi-head self-attention (kernels: cpu/attention.cpp, cuda/attention_*.cu, via the backend table),
// and attention with grouped key/value heads (GQA/MQA) on top of it.
#include "ops/common.h"
#include "scion/precision.h"

namespace scion::ops {
using namespace detail;

namespace {
// A view whose last axis is dense can be read in place; anything else is made contiguous.
Tensor rows_dense(const Tensor& t) {
  if (t.strides().back() == 1) return t.detach();
  return dense(t);
}
}  // namespace

namespace {

Tensor padding_mask(const char* op, const Tensor& key_padding_mask, int64_t B, int64_t T) {
  if (!key_padding_mask.defined()) return Tensor();
  check_dtype(op, key_padding_mask, DType::u8, "key_padding_mask");
  if (key_padding_mask.shape() != Shape{B, T})
    fail(op, "key_padding_mask must be [" + std::to_string(B) + ", " + std::to_string(T) + "], got " +
                 key_padding_mask.desc());
  return dense(key_padding_mask);
}

void check_heads(const char* op, const Tensor& t, int64_t C, int64_t heads) {
  if (heads <= 0 || C % heads != 0)
    fail(op, "width " + std::to_string(C) + " of " + t.desc() + " is not divisible by " + std::to_string(heads) +
                 " heads");
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, bool causal,
                 const Tensor& key_padding_mask) {
  const char* op = "attention";
  const Backend& be =
      backend_for(op, {&q, &k, &v, key_padding_mask.defined() ? &key_padding_mask : nullptr});
  check_float(op, q, "q");
  check_float(op, k, "k");
  check_float(op, v, "v");
  if (q.dim() != 3) fail(op, "q must be [B, T, C], got " + q.desc());
  if (k.shape() != q.shape() || v.shape() != q.shape())
    fail(op, "q, k and v must have one shape, got " + q.desc() + ", " + k.desc() + ", " + v.desc());
  const int64_t B = q.size(0), T = q.size(1), C = q.size(2);
  check_heads(op, q, C, heads);
  const Tensor mask = padding_mask(op, key_padding_mask, B, T);
  Tensor Q = rows_dense(q), K = rows_dense(k), V = rows_dense(v);
  AttentionShape s{B, T, heads, C / heads,
                   Q.strides()[0], Q.strides()[1], K.strides()[0], K.strides()[1],
                   V.strides()[0], V.strides()[1], causal,
                   mask.defined() ? ptr<uint8_t>(mask) : nullptr};
  s.precision = matmul_precision();
  const Device dev = q.device();
  Tensor out = Tensor::empty({B, T, C}, DType::f32, dev);
  Tensor lse = Tensor::empty({B, heads, T}, DType::f32, dev);
  be.attention_forward(s, fptr(Q), fptr(K), fptr(V), fptr(out), fptr(lse));
  if (autograd::needs_grad({&q, &k, &v})) {
    Tensor O = out.detach();
    autograd::record(op, out, {q, k, v}, [=](const Tensor& g) {
      const Backend& bb = backend_for("attention", {&Q, &g});
      AttentionShape s2 = s;
      s2.key_mask = mask.defined() ? ptr<uint8_t>(mask) : nullptr;
      s2.precision = matmul_precision();
      Tensor G = dense(g);
      Tensor gq = Tensor::empty({B, T, C}, DType::f32, dev), gk = Tensor::empty({B, T, C}, DType::f32, dev),
             gv = Tensor::empty({B, T, C}, DType::f32, dev);
      bb.attention_backward(s2, fptr(Q), fptr(K), fptr(V), fptr(O), fptr(lse), fptr(G), fptr(gq), fptr(gk),
                            fptr(gv));
      return std::vector<Tensor>{gq, gk, gv};
    });
  }
  return out;
}

Tensor attention_packed(const Tensor& qkv, int64_t heads, bool causal, const Tensor& key_padding_mask) {
  const char* op = "attention_packed";
  const Backend& be = backend_for(op, {&qkv, key_padding_mask.defined() ? &key_padding_mask : nullptr});
  check_float(op, qkv, "qkv");
  if (qkv.dim() != 3 || qkv.size(2) % 3 != 0)
    fail(op, "qkv must be [B, T, 3C] (q, k, v side by side), got " + qkv.desc());
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  check_heads(op, qkv, C, heads);
  const Tensor mask = padding_mask(op, key_padding_mask, B, T);
  Tensor P = rows_dense(qkv);
  const float* base = fptr(P);
  const int64_t bs = P.strides()[0], ts = P.strides()[1];
  AttentionShape s{B, T, heads, C / heads, bs, ts, bs, ts, bs, ts, causal,
                   mask.defined() ? ptr<uint8_t>(mask) : nullptr};
  s.precision = matmul_precision();
  const Device dev = qkv.device();
  Tensor out = Tensor::empty({B, T, C}, DType::f32, dev);
  Tensor lse = Tensor::empty({B, heads, T}, DType::f32, dev);
  be.attention_forward(s, base, base + C, base + 2 * C, fptr(out), fptr(lse));
  if (autograd::needs_grad({&qkv})) {
    Tensor O = out.detach();
    autograd::record(op, out, {qkv}, [=](const Tensor& g) {
      const Backend& bb = backend_for("attention_packed", {&P, &g});
      AttentionShape s2 = s;
      s2.key_mask = mask.defined() ? ptr<uint8_t>(mask) : nullptr;
      s2.precision = matmul_precision();
      s2.grad_tstride = 3 * C;
      Tensor G = dense(g);
      Tensor gqkv = Tensor::empty({B, T, 3 * C}, DType::f32, dev);
      float* gp = fptr(gqkv);
      const float* b = fptr(P);
      bb.attention_backward(s2, b, b + C, b + 2 * C, fptr(O), fptr(lse), fptr(G), gp, gp + C, gp + 2 * C);
      return std::vector<Tensor>{gqkv};
    });
  }
  return out;
}

namespace {
// x [B, T, kv_heads*D] -> [B, T, heads*D], query head h's slot holding kv head kv_of_head[h]: an
// index_select over the head axis (both devices' kernels); its backward sums each kv head's
// gradient over the query heads that read it, in a fixed order.
Tensor gather_kv_heads(const Tensor& x, int64_t kv_heads, const std::vector<int64_t>& kv_of_head) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2) / kv_heads, H = int64_t(kv_of_head.size());
  const Tensor index = Tensor::from_vector_i64(kv_of_head, {H}, x.device());
  return index_select(x.reshape({B, T, kv_heads, D}), 2, index).reshape({B, T, H * D});
}

void check_kv_map(const char* op, const std::vector<int64_t>& kv_of_head, int64_t kv_heads) {
  if (kv_of_head.empty()) fail(op, "the query-head -> key/value-head map is empty");
  for (size_t h = 0; h < kv_of_head.size(); ++h)
    if (kv_of_head[h] < 0 || kv_of_head[h] >= kv_heads)
      fail(op, "query head " + std::to_string(h) + " reads key/value head " + std::to_string(kv_of_head[h]) +
                   ", but there are " + std::to_string(kv_heads));
}
}  // namespace

Tensor repeat_kv(const Tensor& x, int64_t kv_heads, int64_t groups) {
  const char* op = "repeat_kv";
  backend_for(op, {&x});
  check_float(op, x, "input");
  if (x.dim() != 3) fail(op, "input must be [B, T, kv_heads*D], got " + x.desc());
  if (groups <= 0) fail(op, "groups must be positive, got " + std::to_string(groups));
  check_heads(op, x, x.size(2), kv_heads);
  if (groups == 1) return x;
  // Hugging Face's repeat_kv: kv head j serves query heads j*groups .. j*groups + groups - 1.
  std::vector<int64_t> idx(size_t(kv_heads * groups));
  for (int64_t h = 0; h < kv_heads * groups; ++h) idx[size_t(h)] = h / groups;
  return gather_kv_heads(x, kv_heads, idx);
}

Tensor repeat_kv(const Tensor& x, int64_t kv_heads, const std::vector<int64_t>& kv_of_head) {
  const char* op = "repeat_kv";
  backend_for(op, {&x});
  check_float(op, x, "input");
  if (x.dim() != 3) fail(op, "input must be [B, T, kv_heads*D], got " + x.desc());
  check_heads(op, x, x.size(2), kv_heads);
  check_kv_map(op, kv_of_head, kv_heads);
  return gather_kv_heads(x, kv_heads, kv_of_head);
}

namespace {
// q [B, T, heads*D]; k and v [B, T, kv_heads*D] of the query's head size and length.
void check_grouped_shapes(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                          int64_t kv_heads) {
  const int64_t D = q.size(2) / heads;
  const Shape kv{q.size(0), q.size(1), kv_heads * D};
  if (k.shape() != kv || v.shape() != kv)
    fail(op, "k and v must both be " + shape_str(kv) + " (" + std::to_string(kv_heads) +
                 " heads of the query's head size " + std::to_string(D) + "), got " + k.desc() + " and " + v.desc());
}
}  // namespace

Tensor attention_grouped(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, int64_t kv_heads,
                         bool causal, const Tensor& key_padding_mask) {
  const char* op = "attention_grouped";
  backend_for(op, {&q, &k, &v, key_padding_mask.defined() ? &key_padding_mask : nullptr});
  if (q.dim() != 3 || k.dim() != 3 || v.dim() != 3)
    fail(op, "q, k and v must be [B, T, width], got " + q.desc() + ", " + k.desc() + ", " + v.desc());
  check_heads(op, q, q.size(2), heads);
  if (kv_heads <= 0 || heads % kv_heads != 0)
    fail(op, std::to_string(kv_heads) + " key/value heads do not divide " + std::to_string(heads) + " query heads");
  check_grouped_shapes(op, q, k, v, heads, kv_heads);
  const int64_t groups = heads / kv_heads;
  return attention(q, repeat_kv(k, kv_heads, groups), repeat_kv(v, kv_heads, groups), heads, causal,
                   key_padding_mask);
}

Tensor attention_grouped(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int64_t>& kv_of_head,
                         bool causal, const Tensor& key_padding_mask) {
  const char* op = "attention_grouped";
  backend_for(op, {&q, &k, &v, key_padding_mask.defined() ? &key_padding_mask : nullptr});
  if (q.dim() != 3 || k.dim() != 3 || v.dim() != 3)
    fail(op, "q, k and v must be [B, T, width], got " + q.desc() + ", " + k.desc() + ", " + v.desc());
  const int64_t heads = int64_t(kv_of_head.size());
  check_heads(op, q, q.size(2), heads);
  const int64_t D = q.size(2) / heads;
  if (k.size(2) % D != 0)
    fail(op, "k's width " + std::to_string(k.size(2)) + " is not a multiple of the query's head size " +
                 std::to_string(D));
  const int64_t kv_heads = k.size(2) / D;
  check_grouped_shapes(op, q, k, v, heads, kv_heads);
  check_kv_map(op, kv_of_head, kv_heads);
  return attention(q, gather_kv_heads(k, kv_heads, kv_of_head), gather_kv_heads(v, kv_heads, kv_of_head), heads,
                   causal, key_padding_mask);
}

}  // namespace scion::ops
