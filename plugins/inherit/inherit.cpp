#include "inherit.h"

#include <algorithm>

#include "scion/ops.h"

namespace scion::inherit {

AlphaSchedule::Kind AlphaSchedule::parse(const std::string& s) {
  if (s == "constant") return Kind::constant;
  if (s == "linear") return Kind::linear;
  if (s == "until_surpassed") return Kind::until_surpassed;
  throw Error("loss.inherit: unknown alpha schedule '" + s + "' (expected constant, linear or until_surpassed)");
}

double Alpha::at(int64_t t) const {
  switch (s_.kind) {
    case AlphaSchedule::Kind::constant: return s_.start;
    case AlphaSchedule::Kind::linear:
      return s_.steps <= 0 ? 0.0 : s_.start * std::max(1.0 - double(t) / double(s_.steps), 0.0);
    case AlphaSchedule::Kind::until_surpassed: return surpassed_ ? 0.0 : s_.start;
  }
  return 0.0;
}

bool Alpha::observe_validation(double student_loss, double teacher_loss) {
  if (s_.kind != AlphaSchedule::Kind::until_surpassed || surpassed_) return false;
  if (student_loss < teacher_loss) {
    surpassed_ = true;
    return true;
  }
  return false;
}

InheritTerms inherit_loss(const Tensor& s, const Tensor& t, const Tensor& targets, double alpha, float tau,
                          int64_t ignore_index) {
  SCION_CHECK(alpha >= 0.0 && alpha <= 1.0, "loss.inherit: alpha must be in [0, 1], got ", alpha);
  SCION_CHECK(s.shape() == t.shape(), "loss.inherit: student logits ", s.desc(), " and teacher logits ", t.desc(),
              " differ; teacher and student must share the vocabulary");
  const int64_t V = s.size(-1);
  Tensor flat_s = s.reshape({-1, V}), flat_t = t.detach().reshape({-1, V});
  // Rows with a target take part in both terms.
  std::vector<int64_t> tg = targets.to_vector_i64();
  SCION_CHECK(int64_t(tg.size()) == flat_s.size(0), "loss.inherit: targets ", targets.desc(), " do not match logits ",
              s.desc());
  Tensor mask = Tensor::empty({flat_s.size(0)}, DType::u8);
  for (size_t i = 0; i < tg.size(); ++i) mask.data<uint8_t>()[i] = tg[i] != ignore_index;
  InheritTerms out;
  out.lm = ops::cross_entropy(flat_s, targets.reshape({-1}), ignore_index);
  out.kl = ops::mul_scalar(ops::kl_div(flat_s, flat_t, tau, mask), tau * tau);
  out.total = ops::add(ops::mul_scalar(out.lm, float(1.0 - alpha)), ops::mul_scalar(out.kl, float(alpha)));
  return out;
}

}  // namespace scion::inherit
