// eval.ppl's sliding-window perplexity (`stride`) against a computation of its own: every
// scored token is predicted by a separate forward pass over exactly the context the standard
// sliding-window evaluation gives it, in float64, and the mean must be what the evaluator
// reports through `scion eval`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "fixtures.h"
#include "lm_nodes.h"
#include "scion/data.h"
#include "scion/safetensors.h"
#include "scion_cli.h"
#include "tiny_models.h"

namespace {

// The mean negative log-likelihood the sliding-window definition gives the token stream
// `text` (input positions 0..N-1, each predicting the next token): windows of T tokens start
// at 0, stride, 2·stride, ... while they fit, plus one ending at the last input when those
// do not reach it; position p is scored by the first window (in that order) that contains it,
// with that window's tokens before p as its context.
double direct_mean_nll(const lm::DecoderModel& m, const std::vector<int32_t>& text, int64_t T, int64_t stride) {
  const int64_t N = int64_t(text.size()) - 1;
  std::vector<int64_t> starts;
  for (int64_t b = 0; b + T <= N; b += stride) starts.push_back(b);
  if (starts.back() + T < N) starts.push_back(N - T);
  NoGradGuard ng;
  double sum = 0;
  for (int64_t p = 0; p < N; ++p) {
    int64_t begin = -1;
    for (int64_t b : starts)
      if (b <= p && p < b + T) {
        begin = b;
        break;
      }
    EXPECT_GE(begin, 0) << "position " << p << " is in no window";
    const int64_t len = p - begin + 1;  // the context and p itself, nothing after it
    Tensor ids = Tensor::zeros({1, len}, DType::i64);
    for (int64_t t = 0; t < len; ++t) ids.data<int64_t>()[t] = text[size_t(begin + t)];
    const std::vector<float> logits = m.forward(ids).to_vector();
    const int64_t V = m.config().vocab;
    const float* row = logits.data() + (len - 1) * V;
    double mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
    sum -= double(row[text[size_t(p + 1)]]) - mx - std::log(z);
  }
  return sum / double(N);
}

}  // namespace

TEST(EvalPpl, StrideIsTheSlidingWindowPerplexityComputedTokenByToken) {
  const fs::path d = fs::temp_directory_path() / ("scion_stride_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  // A random byte-level GPT (the graph's model.gpt shape), saved as the evaluated checkpoint.
  lm::DecoderConfig c;
  c.vocab = 257;
  c.context = 16;
  c.layers = 2;
  c.width = 16;
  c.heads = 2;
  c.seed = 9;
  lm::DecoderModel model(c);
  tiny::scramble(model, 21, 0.5f);
  safetensors::save((d / "model.safetensors").string(), model.state_dict());

  const int64_t T = 16, B = 3, max_batches = 2;
  const std::string valid = std::string(SCION_SOURCE_DIR) + "/data/corpus/news/valid.txt";
  std::ofstream(d / "g.toml") << tiny_gpt_graph(
      {.model = {.layers = 2},
       .nodes = "[nodes.ppl]\nplugin = \"eval.ppl\"\nmodel = \"model\"\ntokenizer = \"tok\"\nseq_len = 16\n"
                "batch_size = 3\nmax_batches = 2\nstride = 5\ndomains = { news = \"" + valid + "\" }\n",
       .stages = "[[stages]]\nsteps = 1\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"
                 "eval = { every = 1, evaluators = [\"ppl\"] }\n"});
  auto reported = [&](int64_t stride) {
    const Result ev = sh("eval " + (d / "g.toml").string() + " --checkpoint " + (d / "model.safetensors").string() +
                         " --set nodes.ppl.stride=" + std::to_string(stride));
    EXPECT_EQ(ev.rc, 0) << ev.out;
    return json_number(json_parse(ev.out.substr(ev.out.find('{'))).at("ppl").at("news/loss"));
  };

  // The evaluated text: the first batch_size × max_batches windows of the file (each window
  // is seq_len inputs and the next token), laid end to end.
  data::TokenizeFn bytes = [](std::string_view s) {
    std::vector<int32_t> out;
    for (unsigned char ch : s) out.push_back(int32_t(ch));
    return out;
  };
  const auto windows = data::TextStream::all_windows({valid}, bytes, 256, T);
  ASSERT_GE(int64_t(windows.size()), B * max_batches);
  std::vector<int32_t> text;
  for (int64_t w = 0; w < B * max_batches; ++w) text.insert(text.end(), windows[size_t(w)].begin(), windows[size_t(w)].begin() + T);
  text.push_back(windows[size_t(B * max_batches - 1)][size_t(T)]);

  // Strides that end exactly on the last window, that need the extra final window, and 1.
  for (int64_t stride : {5, 4, 1, 15}) {
    SCOPED_TRACE("stride " + std::to_string(stride));
    EXPECT_NEAR(reported(stride), direct_mean_nll(model, text, T, stride), 2e-5);
  }
  fs::remove_all(d);
}
