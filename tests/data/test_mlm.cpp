// BERT's masking (scion/data.h): rates, specials never selected, a mask reproducible from its seed.
#include <gtest/gtest.h>

#include "scion/data.h"

using namespace scion;

TEST(Mlm, RatesSpecialsAndReproducibility) {
  const int64_t n = 200000;
  Tensor toks = Tensor::randint({4, n / 4}, 1, 0, 1000);
  data::MlmConfig c;
  c.vocab = 1000;
  c.mask_id = 999;
  c.never_mask = {0, 1, 2};
  auto b = data::mask_tokens(toks, c, 42);
  auto in = b.inputs.to_vector_i64(), tg = b.targets.to_vector_i64(), orig = toks.to_vector_i64();
  int64_t sel = 0, masked = 0, kept = 0, specials_selected = 0;
  for (size_t i = 0; i < orig.size(); ++i) {
    if (tg[i] == -100) {
      EXPECT_EQ(in[i], orig[i]);
      continue;
    }
    ++sel;
    EXPECT_EQ(tg[i], orig[i]);
    if (orig[i] <= 2) ++specials_selected;
    if (in[i] == 999) ++masked;
    else if (in[i] == orig[i]) ++kept;
  }
  EXPECT_EQ(specials_selected, 0);
  EXPECT_EQ(sel, b.selected);
  EXPECT_NEAR(double(sel) / double(n), 0.15, 0.005);
  EXPECT_NEAR(double(masked) / double(sel), 0.8, 0.01);
  EXPECT_NEAR(double(kept) / double(sel), 0.1 + 0.1 / 1000, 0.01);  // kept + random picks of itself
  auto again = data::mask_tokens(toks, c, 42);
  EXPECT_EQ(again.inputs.to_vector_i64(), in);
  EXPECT_NE(data::mask_tokens(toks, c, 43).inputs.to_vector_i64(), in);
  c.prob = 0.f;
  EXPECT_THROW(data::mask_tokens(toks, c, 1), Error);
}

