// Single-thread tokenizer throughput on the bundled corpora (data/corpus/*/train.txt).
//   bench_tokenize [DATA_DIR] [--repeat N]
// Prints MB/s (10^6 bytes of UTF-8 input per second) for GPT-2 BPE with a cold cache
// (first pass over the text), warm cache (later passes), BERT WordPiece, and tokenizer.hf on
// the tokenizer.json files scripts/fetch-hf-tokenizers.sh puts in DATA_DIR/hf (those present).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "byte_tokenizer.h"
#include "gpt2_bpe.h"
#include "hf_tokenizer.h"
#include "wordpiece.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) { std::fprintf(stderr, "cannot read %s\n", p.string().c_str()); std::exit(1); }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

template <class F>
static double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int main(int argc, char** argv) {
  fs::path data = SCION_TEXT_DATA_DIR;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else data = argv[i];
  }
  const char* domains[] = {"reference", "news", "literature", "biomedical", "cs"};
  std::string text;
  for (const char* d : domains) text += slurp(data / "corpus" / d / "train.txt");
  const double mb = text.size() / 1e6;
  std::printf("corpus: %s/corpus/*/train.txt, %.2f MB, %d timed passes\n", data.string().c_str(), mb, repeat);

  const scion::text::Gpt2Bpe gpt2 = scion::text::Gpt2Bpe::from_dir(data / "gpt2");
  const scion::text::WordPiece bert(data / "bert" / "vocab.txt");
  std::vector<int32_t> ids;
  ids.reserve(text.size());

  gpt2.clear_cache();
  const double cold = seconds([&] { ids.clear(); gpt2.encode_into(text, ids); });
  const std::size_t n_gpt2 = ids.size();
  double warm = 1e30;
  for (int r = 0; r < repeat; ++r) warm = std::min(warm, seconds([&] { ids.clear(); gpt2.encode_into(text, ids); }));
  std::string back;
  const double dec = seconds([&] { back = gpt2.decode(ids); });
  std::printf("gpt2-bpe  encode cold cache: %7.2f MB/s  (%zu tokens, %.2f bytes/token)\n", mb / cold, n_gpt2,
              double(text.size()) / n_gpt2);
  std::printf("gpt2-bpe  encode warm cache: %7.2f MB/s\n", mb / warm);
  std::printf("gpt2-bpe  decode:            %7.2f MB/s  (round trip %s)\n", mb / dec, back == text ? "ok" : "FAILED");

  double wp = 1e30;
  std::size_t n_wp = 0;
  for (int r = 0; r < repeat; ++r) {
    wp = std::min(wp, seconds([&] { ids.clear(); bert.encode_into(text, ids); }));
    n_wp = ids.size();
  }
  std::printf("wordpiece encode:            %7.2f MB/s  (%zu tokens)\n", mb / wp, n_wp);

  for (const char* name : {"llama3", "qwen3", "mistral"}) {
    const fs::path file = data / "hf" / name / "tokenizer.json";
    if (!fs::exists(file)) continue;
    const scion::text::HfTokenizer hf(file, {.add_special_tokens = false, .eos = ""});
    const double hf_cold = seconds([&] { ids = hf.encode(text); });
    const std::size_t n = ids.size();
    double hf_warm = 1e30;
    for (int r = 0; r < repeat; ++r) hf_warm = std::min(hf_warm, seconds([&] { ids = hf.encode(text); }));
    const double hf_dec = seconds([&] { back = hf.decode(ids); });
    std::printf("hf %-7s encode cold cache: %7.2f MB/s  (%zu tokens)\n", name, mb / hf_cold, n);
    std::printf("hf %-7s encode warm cache: %7.2f MB/s\n", name, mb / hf_warm);
    std::printf("hf %-7s decode:            %7.2f MB/s\n", name, mb / hf_dec);
  }

  const scion::text::ByteTokenizer bytes;
  const double bt = seconds([&] { ids = bytes.encode(text); });
  std::printf("bytes     encode:            %7.2f MB/s\n", mb / bt);
  return back == text ? 0 : 1;
}
