// Hugging Face tokenizer.json (hf_tokenizer.h): the file's pipeline read into plain steps,
// then applied as the tokenizers library applies it.
#include "hf_tokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "pcre2_split.h"
#include "utf8.h"

namespace scion::text {
namespace {

using json = nlohmann::json;

// GPT-2's bytes_to_unicode(): the printable character standing for each byte in a
// byte-level vocabulary.
struct ByteAlphabet {
  std::array<std::string, 256> byte_char;
  std::unordered_map<char32_t, uint8_t> to_byte;
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alpha = [] {
    ByteAlphabet a;
    char32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const char32_t cp = keep ? static_cast<char32_t>(b) : extra++;
      utf8::append(a.byte_char[b], cp);
      a.to_byte[cp] = static_cast<uint8_t>(b);
    }
    return a;
  }();
  return alpha;
}

// NFC by ICU. Text without a byte >= 0xCC (nothing at or above U+0300, where the combining
// marks begin) is already NFC, and so is returned at once; so is text that is not UTF-8.
std::string nfc(std::string s) {
  if (std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; })) return s;
  UErrorCode e = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&e);
  if (U_FAILURE(e)) throw std::runtime_error(std::string("ICU has no NFC normalizer: ") + u_errorName(e));
  // Real text is nearly always NFC already: checked on the UTF-8 itself, it is not first
  // copied to UTF-16 (that copy cost more than the rest of the encode). (Invalid UTF-8 that
  // passes is returned as it is, as below.)
  if (icu::Normalizer2::getNFCInstance(e)->isNormalizedUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), e) &&
      U_SUCCESS(e))
    return s;
  e = U_ZERO_ERROR;
  int32_t n16 = 0;
  u_strFromUTF8(nullptr, 0, &n16, s.data(), static_cast<int32_t>(s.size()), &e);
  if (e != U_BUFFER_OVERFLOW_ERROR) return s;
  std::vector<UChar> w(static_cast<std::size_t>(n16));
  e = U_ZERO_ERROR;
  u_strFromUTF8(w.data(), n16, nullptr, s.data(), static_cast<int32_t>(s.size()), &e);
  if (U_FAILURE(e)) return s;
  if (unorm2_quickCheck(norm, w.data(), n16, &e) == UNORM_YES && U_SUCCESS(e)) return s;
  e = U_ZERO_ERROR;
  std::vector<UChar> d(static_cast<std::size_t>(n16) * 3 + 16);
  const int32_t nd = unorm2_normalize(norm, w.data(), n16, d.data(), static_cast<int32_t>(d.size()), &e);
  if (U_FAILURE(e)) throw std::runtime_error(std::string("ICU NFC failed: ") + u_errorName(e));
  int32_t n8 = 0;
  e = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &n8, d.data(), nd, &e);
  std::string out(static_cast<std::size_t>(n8), '\0');
  e = U_ZERO_ERROR;
  u_strToUTF8(out.data(), n8, nullptr, d.data(), nd, &e);
  if (U_FAILURE(e)) throw std::runtime_error(std::string("ICU UTF-16 to UTF-8 failed: ") + u_errorName(e));
  return out;
}

// A token's bytes under the ByteLevel decoder; a token outside the byte alphabet (an added
// token such as "<|im_start|>" is inside it) is its own text, as the library has it.
std::string byte_level_text(const std::string& t) {
  const auto& alpha = byte_alphabet();
  std::string bytes;
  for (std::size_t i = 0, len = 1; i < t.size(); i += len) {
    auto it = alpha.to_byte.find(utf8::decode(t, i, len));
    if (it == alpha.to_byte.end()) return t;
    bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

// out = s with every from replaced by to (out's buffer reused).
void replace_into(std::string_view s, const std::string& from, const std::string& to, std::string& out) {
  out.clear();
  std::size_t at = 0;
  for (std::size_t hit; !from.empty() && (hit = s.find(from, at)) != std::string::npos; at = hit + from.size())
    out.append(s, at, hit - at).append(to);
  out.append(s, at, std::string::npos);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  replace_into(s, from, to, out);
  s = std::move(out);
}

// PCRE2 quoting of a literal Split pattern.
std::string quote_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.[]|()?*+{}").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// GPT-2's pre-tokenizer regex: what a ByteLevel pre-tokenizer with use_regex splits by.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct NormStep {
  enum Kind { nfc, prepend, replace } kind;
  std::string a, b;
};
struct SplitStep {
  std::shared_ptr<Pcre2Split> re;
};
struct DecodeStep {
  enum Kind { byte_level, replace, byte_fallback, fuse, strip } kind;
  std::string a = {}, b = {};  // (initialised: {kind} alone stays free of -Wmissing-field-initializers)
  int64_t start = 0, stop = 0;
};
struct AddedToken {
  std::string text;
  int32_t id;
};

struct Merge {
  int32_t rank, new_id;
};

// The merges by pair, in one open-addressed array: BPE's hottest lookup, without the pointer
// chasing of a node-based map.
class MergeTable {
public:
  void reserve(std::size_t n) {
    // At most 3/4 full: short probes, and Llama 3's 280k merges in 8 MB rather than 16 (a
    // word's first encoding is a run of misses into this table).
    std::size_t cap = 16;
    while (3 * cap < 4 * n) cap *= 2;
    slots_.assign(cap, Slot{kEmpty, {}});
    shift_ = 64 - static_cast<int>(std::countr_zero(cap));
  }
  // Keeps the first merge of a pair (its best rank), as the library does.
  void insert(uint64_t key, Merge m) {
    for (std::size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].key == key) return;
      if (slots_[i].key == kEmpty) { slots_[i] = {key, m}; return; }
    }
  }
  const Merge* find(uint64_t key) const {
    for (std::size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].key == key) return &slots_[i].merge;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);  // no pair of two valid ids
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  std::size_t index(uint64_t key) const { return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Slot> slots_;
  int shift_ = 60;
};

// The word cache: words repeat (" the", " of"), so their BPE is done once. A shard is an
// open-addressed table of 32-byte slots; a short word's bytes and ids sit in its slot (one
// cache line read per hit), a longer one's in an arena the slot points into. No node to chase,
// no allocation per word.
constexpr std::size_t kShards = 64, kShardCapacity = 8192, kCachedWordBytes = 64;

// A cheap hash of a short word (words average a few bytes): 8-byte chunks, multiply-mixed.
inline uint64_t word_hash(std::string_view w) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ w.size();
  std::size_t i = 0;
  for (; i + 8 <= w.size(); i += 8) {
    uint64_t v;
    std::memcpy(&v, w.data() + i, 8);
    h = (h ^ v) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  for (std::size_t k = 0; i + k < w.size(); ++k) tail |= uint64_t(static_cast<unsigned char>(w[i + k])) << (8 * k);
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}

class WordCache {
public:
  // Appends the ids of the word to out; false (out unchanged) when it is not cached.
  bool find(uint64_t hash, std::string_view word, std::vector<int32_t>& out) const {
    if (slots_.empty()) return false;
    for (std::size_t i = hash & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (s.bytes == 0) return false;
      if (s.hash != hash || s.bytes != word.size()) continue;
      const char* key = key_of(s);
      if (std::memcmp(key, word.data(), word.size()) != 0) continue;
      const char* ids = key + (s.in_slot ? s.bytes : 4 * words_for(s.bytes));
      const std::size_t at = out.size();
      out.resize(at + s.n_ids);
      std::memcpy(out.data() + at, ids, 4 * std::size_t(s.n_ids));
      return true;
    }
  }
  // Words of 1 to kCachedWordBytes bytes only. A full shard starts over (the text's frequent
  // words come back at once).
  void insert(uint64_t hash, std::string_view word, std::span<const int32_t> ids) {
    if (count_ >= kShardCapacity) clear();
    if (2 * (count_ + 1) > slots_.size()) grow();
    std::size_t i = hash & (slots_.size() - 1);
    for (; slots_[i].bytes != 0; i = (i + 1) & (slots_.size() - 1))
      if (slots_[i].hash == hash && slots_[i].bytes == word.size() &&
          std::memcmp(key_of(slots_[i]), word.data(), word.size()) == 0)
        return;  // another thread put it there first
    Slot& s = slots_[i];
    s.hash = hash;
    s.bytes = static_cast<uint8_t>(word.size());
    s.n_ids = static_cast<uint8_t>(ids.size());  // at most one id per byte: fits
    s.in_slot = word.size() + 4 * ids.size() <= sizeof s.data;
    char* to = s.data;
    if (!s.in_slot) {
      const auto at = static_cast<uint32_t>(arena_.size());
      arena_.resize(arena_.size() + words_for(word.size()) + ids.size());
      std::memcpy(s.data, &at, sizeof at);
      to = reinterpret_cast<char*>(&arena_[at]);
    }
    std::memcpy(to, word.data(), word.size());
    std::memcpy(to + (s.in_slot ? word.size() : 4 * words_for(word.size())), ids.data(), 4 * ids.size());
    ++count_;
  }

private:
  struct Slot {
    uint64_t hash = 0;
    uint8_t bytes = 0;  // 0: an empty slot
    uint8_t n_ids = 0;
    bool in_slot = false;  // data holds the bytes then the ids; else the arena offset of both
    char data[21] = {};
  };
  static_assert(sizeof(Slot) == 32);
  static std::size_t words_for(std::size_t bytes) { return (bytes + 3) / 4; }
  const char* key_of(const Slot& s) const {
    if (s.in_slot) return s.data;
    uint32_t at;
    std::memcpy(&at, s.data, sizeof at);
    return reinterpret_cast<const char*>(&arena_[at]);
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    arena_.clear();
    count_ = 0;
  }
  void grow() {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(std::max<std::size_t>(256, 2 * slots_.size())));
    for (const Slot& s : old) {
      if (s.bytes == 0) continue;
      std::size_t i = s.hash & (slots_.size() - 1);
      while (slots_[i].bytes != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;     // a power of two, at most half full
  std::vector<int32_t> arena_;  // per long word: its bytes (padded to 4), then its ids
  std::size_t count_ = 0;
};
struct CacheShard {
  std::mutex mu;
  WordCache words;
};

}  // namespace

struct HfTokenizer::Impl {
  std::string file;
  std::unordered_map<std::string, int32_t> vocab;  // the model's
  std::vector<std::string> id_token;              // every id's text, added tokens included
  std::vector<bool> id_known;
  MergeTable merges;
  // ignore_merges with byte-level words: the word_hash of each vocabulary token's bytes, so a
  // word that is no token (most words the merges leave in pieces) is known at once.
  MergeTable whole_words;
  // Pairs of characters adjacent inside some token (not byte-level): where a word's two
  // characters are no such pair, no merge can join them, so the word is split there and its
  // parts (each cached) encoded apart, with the same ids. A text without a pre-tokenizer
  // (Llama 2, Mistral) is one word; this keeps its BPE to word-sized pieces.
  // Looked up once per character: pairs of frequent characters (ASCII and the vocabulary's 127
  // most frequent others, "▁" among them) in a small dense table, the rest in a hash set.
  std::unordered_set<uint64_t> joinable;
  std::vector<uint8_t> dense_char;  // code point < 0x10000 -> its index in joinable_dense (0: none)
  std::vector<bool> joinable_dense = std::vector<bool>(256 * 256, false);
  unsigned dense(char32_t cp) const { return cp < dense_char.size() ? dense_char[cp] : 0; }
  bool joins(char32_t a, char32_t b) const {
    const unsigned da = dense(a), db = dense(b);
    return da && db ? joinable_dense[da * 256 + db] : joinable.count(pair_key(int32_t(a), int32_t(b))) > 0;
  }
  bool can_fuse_unk = false;  // an unknown character can become the unknown token, and fuses
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false, byte_level = false;
  // Ids are dense in a real tokenizer.json (0 .. entries - 1, added tokens after or among
  // them): one beyond the number of entries is refused before the id tables are sized by it.
  int64_t id_limit = 0;
  void check_id(int64_t id, const std::string& what) const;
  int32_t unk = -1;
  std::array<int32_t, 256> byte_token{};       // <0xNN>, for byte fallback (-1: none)
  std::array<int32_t, 256> byte_level_id{};    // the byte-level symbol of each byte (-1: none)
  std::array<int32_t, 128> ascii_id{};         // the token of each ASCII character (-1: none)
  std::vector<NormStep> normalize;
  std::vector<SplitStep> split;
  std::vector<DecodeStep> decoder;
  std::vector<std::string> id_bytes;  // a lone ByteLevel decoder: each id's bytes, so decoding is concatenation
  std::vector<int32_t> prefix, suffix;         // what the post-processor adds
  std::array<std::vector<AddedToken>, 256> added_by_first_byte;  // longest first
  int32_t eos = -1;
  bool add_special = true;
  mutable std::array<CacheShard, kShards> cache;

  [[noreturn]] void refuse(const std::string& what) const { throw std::runtime_error(file + ": " + what); }

  int32_t id_of(const std::string& tok) const {
    auto it = vocab.find(tok);
    return it == vocab.end() ? -1 : it->second;
  }

  void load(const json& j, const HfTokenizer::Options& o);
  void load_model(const json& m);
  void load_normalizer(const json& n);
  void load_pre_tokenizer(const json& p);
  void load_post_processor(const json& p);
  void load_decoder(const json& d);

  void encode_segment(std::string_view s, std::vector<int32_t>& out) const;
  void split_from(std::size_t k, std::string_view piece, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_part(std::string_view part, std::vector<int32_t>& out) const;
  void symbols(std::string_view word, std::vector<int32_t>& sym) const;
  void bpe(std::vector<int32_t>& symbols) const;
};

namespace {

std::string type_of(const json& node) {
  return node.is_object() && node.contains("type") && node["type"].is_string() ? node["type"].get<std::string>() : "";
}

std::string string_pattern(const json& node, const std::string& what, const std::string& file) {
  const json& p = node.value("pattern", json());
  if (p.is_object() && p.contains("String") && p["String"].is_string()) return p["String"].get<std::string>();
  throw std::runtime_error(file + ": " + what + " with a " + (p.is_object() && p.contains("Regex") ? "Regex" : "missing") +
                           " pattern is not supported (String patterns only)");
}

}  // namespace

void HfTokenizer::Impl::check_id(int64_t id, const std::string& what) const {
  if (id >= id_limit)
    refuse(what + " has id " + std::to_string(id) + ", but the file has " + std::to_string(id_limit) +
           " entries (vocabulary and added tokens): its ids are not dense");
}

void HfTokenizer::Impl::load_model(const json& m) {
  const std::string type = type_of(m).empty() && m.is_object() && m.contains("merges") ? "BPE" : type_of(m);
  if (type != "BPE")
    refuse("model type '" + (type.empty() ? std::string("(none)") : type) +
           "' is not supported: tokenizer.hf reads BPE models only (not Unigram, WordPiece or WordLevel)");
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    refuse("BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty())
      refuse(std::string("BPE with a ") + k + " is not supported");
  if (!m.contains("vocab") || !m["vocab"].is_object()) refuse("the BPE model has no vocab object");
  int32_t max_id = -1;
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      refuse("vocab entry '" + tok + "' has no valid id");
    check_id(id.get<int64_t>(), "vocab entry '" + tok + "'");
    vocab.emplace(tok, id.get<int32_t>());
    max_id = std::max(max_id, id.get<int32_t>());
  }
  id_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  id_known.assign(static_cast<std::size_t>(max_id + 1), false);
  for (const auto& [tok, id] : vocab) {
    id_token[static_cast<std::size_t>(id)] = tok;
    id_known[static_cast<std::size_t>(id)] = true;
  }
  byte_fallback = m.value("byte_fallback", false);
  fuse_unk = m.value("fuse_unk", false);
  ignore_merges = m.value("ignore_merges", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    unk = id_of(m["unk_token"].get<std::string>());
    if (unk < 0) refuse("the unk_token '" + m["unk_token"].get<std::string>() + "' is not in the vocabulary");
  }
  const json& list = m.value("merges", json::array());
  if (!list.is_array()) refuse("the BPE model's merges are not a list");
  merges.reserve(list.size());
  for (std::size_t r = 0; r < list.size(); ++r) {
    std::string a, b;
    if (list[r].is_string()) {
      const std::string s = list[r].get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        refuse("merge " + std::to_string(r) + " '" + s + "' is not two tokens separated by one space");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (list[r].is_array() && list[r].size() == 2 && list[r][0].is_string() && list[r][1].is_string()) {
      a = list[r][0].get<std::string>(), b = list[r][1].get<std::string>();
    } else {
      refuse("merge " + std::to_string(r) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const int32_t ia = id_of(a), ib = id_of(b), in = id_of(a + b);
    if (ia < 0 || ib < 0 || in < 0) refuse("merge " + std::to_string(r) + " (" + a + " " + b + ") names a token not in the vocabulary");
    merges.insert(pair_key(ia, ib), Merge{static_cast<int32_t>(r), in});
  }
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_token[b] = id_of(name);
  }
}

void HfTokenizer::Impl::load_normalizer(const json& n) {
  if (n.is_null()) return;
  const std::string t = type_of(n);
  if (t == "Sequence") {
    for (const json& s : n.value("normalizers", json::array())) load_normalizer(s);
  } else if (t == "NFC") {
    normalize.push_back({NormStep::nfc, "", ""});
  } else if (t == "Prepend") {
    normalize.push_back({NormStep::prepend, n.value("prepend", std::string()), ""});
  } else if (t == "Replace") {
    normalize.push_back({NormStep::replace, string_pattern(n, "a Replace normalizer", file), n.value("content", std::string())});
  } else {
    refuse("normalizer '" + t + "' is not supported (NFC, Prepend, Replace and Sequence are)");
  }
}

void HfTokenizer::Impl::load_pre_tokenizer(const json& p) {
  if (p.is_null()) return;
  const std::string t = type_of(p);
  if (t == "Sequence") {
    for (const json& s : p.value("pretokenizers", json::array())) load_pre_tokenizer(s);
  } else if (t == "Split") {
    if (p.value("behavior", std::string()) != "Isolated" || p.value("invert", false))
      refuse("a Split pre-tokenizer with behavior '" + p.value("behavior", std::string()) +
             "'" + (p.value("invert", false) ? " inverted" : "") + " is not supported (Isolated, not inverted, is)");
    const json& pat = p.value("pattern", json());
    std::string re;
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) re = pat["Regex"].get<std::string>();
    else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) re = quote_literal(pat["String"].get<std::string>());
    else refuse("a Split pre-tokenizer without a Regex or String pattern");
    try {
      split.push_back({std::make_shared<Pcre2Split>(re)});
    } catch (const std::exception& e) {
      refuse(e.what());
    }
  } else if (t == "ByteLevel") {
    if (p.value("add_prefix_space", false)) refuse("a ByteLevel pre-tokenizer with add_prefix_space is not supported");
    if (p.value("use_regex", true)) split.push_back({std::make_shared<Pcre2Split>(kGpt2Pattern)});
    byte_level = true;
  } else {
    refuse("pre-tokenizer '" + t + "' is not supported (Split, ByteLevel and Sequence are)");
  }
}

void HfTokenizer::Impl::load_post_processor(const json& p) {
  if (p.is_null()) return;
  const std::string t = type_of(p);
  if (t == "Sequence") {
    for (const json& s : p.value("processors", json::array())) load_post_processor(s);
  } else if (t == "ByteLevel") {
    // offsets only; the ids are unchanged
  } else if (t == "TemplateProcessing") {
    const json& specials = p.value("special_tokens", json::object());
    bool after = false;
    for (const json& item : p.value("single", json::array())) {
      if (item.contains("Sequence")) { after = true; continue; }
      if (!item.contains("SpecialToken")) refuse("a TemplateProcessing item that is neither SpecialToken nor Sequence");
      const std::string name = item["SpecialToken"].value("id", std::string());
      if (!specials.contains(name) || !specials[name].contains("ids")) refuse("the template's special token '" + name + "' has no ids");
      for (const json& id : specials[name]["ids"]) (after ? suffix : prefix).push_back(id.get<int32_t>());
    }
  } else {
    refuse("post-processor '" + t + "' is not supported (TemplateProcessing, ByteLevel and Sequence are)");
  }
}

void HfTokenizer::Impl::load_decoder(const json& d) {
  if (d.is_null()) return;
  const std::string t = type_of(d);
  if (t == "Sequence") {
    for (const json& s : d.value("decoders", json::array())) load_decoder(s);
  } else if (t == "ByteLevel") {
    decoder.push_back({DecodeStep::byte_level});
  } else if (t == "Replace") {
    decoder.push_back({DecodeStep::replace, string_pattern(d, "a Replace decoder", file), d.value("content", std::string())});
  } else if (t == "ByteFallback") {
    decoder.push_back({DecodeStep::byte_fallback});
  } else if (t == "Fuse") {
    decoder.push_back({DecodeStep::fuse});
  } else if (t == "Strip") {
    decoder.push_back({DecodeStep::strip, d.value("content", std::string(" ")), "", d.value("start", int64_t(0)),
                       d.value("stop", int64_t(0))});
  } else {
    refuse("decoder '" + t + "' is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip and Sequence are)");
  }
}

void HfTokenizer::Impl::load(const json& j, const HfTokenizer::Options& o) {
  if (!j.is_object() || !j.contains("model")) refuse("not a tokenizer.json (no \"model\" object)");
  auto entries = [](const json& parent, const char* key) -> int64_t {  // counted in place, not copied
    if (!parent.is_object()) return 0;
    auto it = parent.find(key);
    return it != parent.end() && (it->is_object() || it->is_array()) ? int64_t(it->size()) : 0;
  };
  id_limit = entries(j["model"], "vocab") + entries(j, "added_tokens");
  load_model(j["model"]);
  load_normalizer(j.value("normalizer", json()));
  load_pre_tokenizer(j.value("pre_tokenizer", json()));
  load_post_processor(j.value("post_processor", json()));
  load_decoder(j.value("decoder", json()));
  for (const json& a : j.value("added_tokens", json::array())) {
    const std::string text = a.value("content", std::string());
    const int64_t id = a.value("id", int64_t(-1));
    if (text.empty() || id < 0 || id > INT32_MAX) refuse("an added token without content or a valid id");
    check_id(id, "added token '" + text + "'");
    if (static_cast<std::size_t>(id) >= id_token.size()) {
      id_token.resize(static_cast<std::size_t>(id) + 1);
      id_known.resize(static_cast<std::size_t>(id) + 1, false);
    }
    id_token[static_cast<std::size_t>(id)] = text;
    id_known[static_cast<std::size_t>(id)] = true;
    added_by_first_byte[static_cast<unsigned char>(text[0])].push_back({text, static_cast<int32_t>(id)});
  }
  for (auto& list : added_by_first_byte)
    std::stable_sort(list.begin(), list.end(), [](const AddedToken& x, const AddedToken& y) { return x.text.size() > y.text.size(); });
  for (int32_t id : prefix) if (id < 0 || static_cast<std::size_t>(id) >= id_token.size()) refuse("the post-processor adds an id outside the vocabulary");
  for (int32_t id : suffix) if (id < 0 || static_cast<std::size_t>(id) >= id_token.size()) refuse("the post-processor adds an id outside the vocabulary");
  const auto& alpha = byte_alphabet();
  for (int b = 0; b < 256; ++b) byte_level_id[b] = byte_level ? id_of(alpha.byte_char[b]) : -1;
  for (int c = 0; c < 128; ++c) ascii_id[c] = id_of(std::string(1, static_cast<char>(c)));
  if (decoder.size() == 1 && decoder[0].kind == DecodeStep::byte_level) {
    id_bytes.resize(id_token.size());
    for (std::size_t id = 0; id < id_token.size(); ++id) id_bytes[id] = byte_level_text(id_token[id]);
  }
  if (byte_level && ignore_merges) {
    whole_words.reserve(vocab.size());
    for (const auto& [tok, id] : vocab) whole_words.insert(word_hash(byte_level_text(tok)), Merge{});
  }
  can_fuse_unk = fuse_unk && unk >= 0 &&
                 (!byte_fallback || std::any_of(byte_token.begin(), byte_token.end(), [](int32_t id) { return id < 0; }));
  if (!byte_level) {
    std::unordered_map<char32_t, int64_t> uses;
    for (const auto& [tok, id] : vocab)
      for (std::size_t i = 0, len = 1; i < tok.size(); i += len)
        if (const char32_t cp = utf8::decode(tok, i, len); cp >= 128 && cp < 0x10000) ++uses[cp];
    std::vector<std::pair<int64_t, char32_t>> by_use;
    for (const auto& [cp, n] : uses) by_use.push_back({-n, cp});
    std::sort(by_use.begin(), by_use.end());
    dense_char.assign(0x10000, 0);
    for (char32_t c = 0; c < 128; ++c) dense_char[c] = static_cast<uint8_t>(c + 1);
    for (std::size_t k = 0; k < by_use.size() && k < 127; ++k) dense_char[by_use[k].second] = static_cast<uint8_t>(129 + k);
    for (const auto& [tok, id] : vocab) {
      char32_t before = utf8::kInvalid;
      for (std::size_t i = 0, len = 1; i < tok.size(); i += len) {
        const char32_t cp = utf8::decode(tok, i, len);
        if (before != utf8::kInvalid && cp != utf8::kInvalid) {
          if (dense(before) && dense(cp)) joinable_dense[dense(before) * 256 + dense(cp)] = true;
          else joinable.insert(pair_key(int32_t(before), int32_t(cp)));
        }
        before = cp;
      }
    }
  }
  add_special = o.add_special_tokens;
  auto find_added = [&](const std::string& text) {
    for (const AddedToken& a : added_by_first_byte[static_cast<unsigned char>(text[0])])
      if (a.text == text) return a.id;
    return int32_t(-1);
  };
  if (!o.eos.empty()) {
    eos = find_added(o.eos);
    if (eos < 0) eos = id_of(o.eos);
    if (eos < 0) refuse("the end-of-text token '" + o.eos + "' is not in the vocabulary");
  } else {  // only added tokens: a BPE vocabulary may hold "</s>" as plain text (Qwen's does)
    for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"})
      if ((eos = find_added(name)) >= 0) break;
  }
}

// BPE of a word's symbols in place, as the tokenizers library's Word::merge_all: the pair of
// lowest rank (then leftmost) merges first; a queued pair is applied only if it is still there.
void HfTokenizer::Impl::bpe(std::vector<int32_t>& sym) const {
  const auto n = static_cast<int32_t>(sym.size());
  if (n < 2) return;
  if (n <= 24) {  // a short word: rescanning its pairs beats a queue (same order: lowest rank, then leftmost)
    std::array<int32_t, 24> rank, made;
    auto look = [&](std::size_t k) {
      const Merge* m = merges.find(pair_key(sym[k], sym[k + 1]));
      rank[k] = m ? m->rank : INT32_MAX;
      made[k] = m ? m->new_id : -1;
    };
    for (std::size_t k = 0; k + 1 < sym.size(); ++k) look(k);
    while (sym.size() > 1) {
      std::size_t best = 0;
      for (std::size_t k = 1; k + 1 < sym.size(); ++k) if (rank[k] < rank[best]) best = k;
      if (rank[best] == INT32_MAX) break;
      sym[best] = made[best];
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      std::copy(rank.begin() + static_cast<std::ptrdiff_t>(best) + 2, rank.begin() + static_cast<std::ptrdiff_t>(sym.size()) + 1,
                rank.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      std::copy(made.begin() + static_cast<std::ptrdiff_t>(best) + 2, made.begin() + static_cast<std::ptrdiff_t>(sym.size()) + 1,
                made.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      if (best > 0) look(best - 1);
      if (best + 1 < sym.size()) look(best);
    }
    return;
  }
  // A long word (not cached past kCachedWordBytes): linked symbols and a heap of candidate
  // merges, in buffers each thread reuses.
  struct Item {
    int32_t rank, pos, new_id;
    bool operator>(const Item& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<char> alive;
  thread_local std::vector<Item> queue;
  prev.resize(static_cast<std::size_t>(n)), next.resize(static_cast<std::size_t>(n));
  alive.assign(static_cast<std::size_t>(n), 1);
  queue.clear();
  for (int32_t k = 0; k < n; ++k) prev[k] = k - 1, next[k] = k + 1 < n ? k + 1 : -1;
  auto consider = [&](int32_t l) {
    const int32_t r = next[l];
    if (r < 0) return;
    if (const Merge* m = merges.find(pair_key(sym[l], sym[r]))) {
      queue.push_back({m->rank, l, m->new_id});
      std::push_heap(queue.begin(), queue.end(), std::greater<Item>());
    }
  };
  for (int32_t k = 0; k + 1 < n; ++k) consider(k);
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), std::greater<Item>());
    const Item top = queue.back();
    queue.pop_back();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int32_t r = next[top.pos];
    const Merge* m = merges.find(pair_key(sym[top.pos], sym[r]));
    if (!m || m->rank != top.rank || m->new_id != top.new_id) continue;
    sym[top.pos] = top.new_id;
    alive[r] = 0;
    next[top.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = top.pos;
    if (prev[top.pos] >= 0) consider(prev[top.pos]);
    consider(top.pos);
  }
  std::size_t w = 0;
  for (int32_t k = 0; k >= 0; k = next[k]) sym[w++] = sym[k];
  sym.resize(w);
}

void HfTokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (byte_level) { encode_part(word, out); return; }  // (ignore_merges: there, past the cache)
  if (ignore_merges) {  // a word the vocabulary has whole is that token
    const int32_t id = id_of(std::string(word));
    if (id >= 0) { out.push_back(id); return; }
  }
  std::size_t start = 0;
  char32_t before = utf8::kInvalid;
  for (std::size_t i = 0, len = 1; i < word.size(); i += len) {
    const char32_t cp = utf8::decode(word, i, len);
    // Two unknown characters stay together where they fuse into one unknown token.
    const bool fused = can_fuse_unk && id_of(std::string(word.substr(i, len))) < 0;
    if (i > start && !fused && !joins(before, cp)) {
      encode_part(word.substr(start, i - start), out);
      start = i;
    }
    before = cp;
  }
  encode_part(word.substr(start), out);
}

// The model's starting symbols for a word: its bytes' byte-level characters, or its
// characters, a character outside the vocabulary as its <0xNN> bytes (byte fallback) or as
// the unknown token (consecutive ones fused into one where fuse_unk says so).
void HfTokenizer::Impl::symbols(std::string_view word, std::vector<int32_t>& sym) const {
  bool last_unk = false;
  auto push_unk = [&] {
    if (unk < 0) return;  // no unknown token: the character is dropped, as the library does
    if (!(fuse_unk && last_unk)) sym.push_back(unk);
    last_unk = true;
  };
  if (byte_level) {
    for (char c : word) {
      const int32_t id = byte_level_id[static_cast<unsigned char>(c)];
      if (id >= 0) sym.push_back(id), last_unk = false;
      else push_unk();
    }
  } else {
    for (std::size_t i = 0, len = 1; i < word.size(); i += len) {
      utf8::decode(word, i, len);
      const auto c = static_cast<unsigned char>(word[i]);
      const int32_t id = c < 128 ? ascii_id[c] : id_of(std::string(word.substr(i, len)));
      if (id >= 0) { sym.push_back(id), last_unk = false; continue; }
      bool all = byte_fallback;
      for (std::size_t k = i; all && k < i + len; ++k) all = byte_token[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        for (std::size_t k = i; k < i + len; ++k) sym.push_back(byte_token[static_cast<unsigned char>(word[k])]);
        last_unk = false;
      } else {
        push_unk();
      }
    }
  }
}

void HfTokenizer::Impl::encode_part(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1 && byte_level && byte_level_id[static_cast<unsigned char>(word[0])] >= 0) {
    out.push_back(byte_level_id[static_cast<unsigned char>(word[0])]);  // a lone byte merges with nothing
    return;
  }
  const bool cached = word.size() <= kCachedWordBytes;
  const uint64_t hash = word_hash(word);
  CacheShard& shard = cache[(hash >> 58) % kShards];  // high bits: the table's slots use the low ones
  if (cached) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.words.find(hash, word, out)) return;
  }
  thread_local std::vector<int32_t> sym;  // reused: no allocation per word
  sym.clear();
  symbols(word, sym);
  bpe(sym);
  // ignore_merges: a word the vocabulary has whole is that token. Where the merges made one
  // (known) token, that token is the word already, so only a word left in pieces is looked
  // up: the same ids, without the string and the lookup for most words.
  if (byte_level && ignore_merges && (sym.size() != 1 || sym[0] == unk) && whole_words.find(hash)) {
    thread_local std::string whole;
    whole.clear();
    for (char c : word) whole += byte_alphabet().byte_char[static_cast<unsigned char>(c)];
    if (const int32_t id = id_of(whole); id >= 0) sym.assign(1, id);
  }
  out.insert(out.end(), sym.begin(), sym.end());
  if (cached) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.words.insert(hash, word, sym);
  }
}

// Normalizes the segment, then splits it by each pre-tokenizer step in turn and encodes each
// final piece as it is found: no list of pieces is built.
void HfTokenizer::Impl::encode_segment(std::string_view s, std::vector<int32_t>& out) const {
  if (s.empty()) return;
  // Each thread's two buffers, reused: a fresh string per segment costs page faults on a
  // long text.
  thread_local std::string text, scratch;
  if (!normalize.empty()) {
    text.assign(s);
    for (const NormStep& n : normalize) {
      if (n.kind == NormStep::nfc) text = nfc(std::move(text));
      else if (n.kind == NormStep::prepend) { if (!text.empty()) text.insert(0, n.a); }
      else replace_into(text, n.a, n.b, scratch), text.swap(scratch);
    }
    s = text;
  }
  split_from(0, s, out);
}

// Step k of the pre-tokenizer on one piece: its matches and the gaps between them go on to
// step k + 1, and past the last step to the model.
void HfTokenizer::Impl::split_from(std::size_t k, std::string_view p, std::vector<int32_t>& out) const {
  if (k == split.size()) { encode_word(p, out); return; }
  std::size_t at = 0;
  split[k].re->for_each_match(p, [&](std::size_t b, std::size_t e) {
    if (b > at) split_from(k + 1, p.substr(at, b - at), out);
    split_from(k + 1, p.substr(b, e - b), out);
    at = e;
  });
  if (at < p.size()) split_from(k + 1, p.substr(at), out);
}

HfTokenizer::HfTokenizer(const std::filesystem::path& path, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(impl_->file + ": cannot open the tokenizer.json file");
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    impl_->refuse(std::string("not JSON: ") + e.what());
  }
  try {
    impl_->load(j, options);
  } catch (const json::exception& e) {
    impl_->refuse(std::string("unexpected tokenizer.json structure: ") + e.what());
  }
}

HfTokenizer::HfTokenizer(HfTokenizer&&) noexcept = default;
HfTokenizer& HfTokenizer::operator=(HfTokenizer&&) noexcept = default;
HfTokenizer::~HfTokenizer() = default;

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const { return encode(text, impl_->add_special); }

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), m.prefix.begin(), m.prefix.end());
  std::size_t segment = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : m.added_by_first_byte[static_cast<unsigned char>(text[pos])])
      if (text.compare(pos, a.text.size(), a.text) == 0) { hit = &a; break; }
    if (!hit) { ++pos; continue; }
    m.encode_segment(text.substr(segment, pos - segment), out);
    out.push_back(hit->id);
    pos += hit->text.size();
    segment = pos;
  }
  m.encode_segment(text.substr(segment), out);
  if (add_special_tokens) out.insert(out.end(), m.suffix.begin(), m.suffix.end());
  return out;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids) const {
  const Impl& m = *impl_;
  if (!m.id_bytes.empty()) {
    std::string out;
    for (int32_t id : ids) out += m.id_bytes[static_cast<std::size_t>((token(id), id))];
    return out;
  }
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) toks.push_back(token(id));
  for (const DecodeStep& d : m.decoder) {
    switch (d.kind) {
      case DecodeStep::byte_level: {
        std::string bytes;
        for (const std::string& t : toks) bytes += byte_level_text(t);
        toks.assign(1, std::move(bytes));
        break;
      }
      case DecodeStep::replace:
        for (std::string& t : toks) replace_all(t, d.a, d.b);
        break;
      case DecodeStep::byte_fallback: {
        // Runs of <0xNN> tokens become their bytes when those are UTF-8, else one U+FFFD each.
        std::vector<std::string> next;
        std::string run;
        std::size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          bool valid = true;
          for (std::size_t i = 0, len = 1; valid && i < run.size(); i += len) valid = utf8::decode(run, i, len) != utf8::kInvalid;
          if (valid) next.push_back(run);
          else for (std::size_t k = 0; k < run_tokens; ++k) next.push_back("\xEF\xBF\xBD");
          run.clear(), run_tokens = 0;
        };
        for (std::string& t : toks) {
          unsigned v = 0;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::sscanf(t.c_str() + 3, "%2x", &v) == 1) {
            run.push_back(static_cast<char>(v)), ++run_tokens;
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        toks = std::move(next);
        break;
      }
      case DecodeStep::fuse: {
        std::string all;
        for (const std::string& t : toks) all += t;
        toks.assign(1, std::move(all));
        break;
      }
      case DecodeStep::strip:
        for (std::string& t : toks) {
          if (d.a.empty()) break;
          std::size_t b = 0, e = t.size();
          for (int64_t k = 0; k < d.start && t.compare(b, d.a.size(), d.a) == 0 && b + d.a.size() <= e; ++k) b += d.a.size();
          for (int64_t k = 0; k < d.stop && e >= b + d.a.size() && t.compare(e - d.a.size(), d.a.size(), d.a) == 0; ++k) e -= d.a.size();
          t = t.substr(b, e - b);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : toks) out += t;
  return out;
}

int64_t HfTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_token.size()); }
int32_t HfTokenizer::eot_id() const { return impl_->eos; }
int32_t HfTokenizer::bos_id() const { return impl_->prefix.empty() ? -1 : impl_->prefix.front(); }

const std::string& HfTokenizer::token(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_token.size() || !impl_->id_known[static_cast<std::size_t>(id)])
    throw std::out_of_range("tokenizer.hf: id " + std::to_string(id) + " is not in the vocabulary of " + impl_->file);
  return impl_->id_token[static_cast<std::size_t>(id)];
}

} // namespace scion::text
