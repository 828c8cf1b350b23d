// GPT-2 byte-level BPE.
//
// Pipeline (as OpenAI's encoder.py): split the text with GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (hand-written matcher below, Unicode classes from the generated unicode_tables.h), map
// each piece's UTF-8 bytes to base tokens, then apply merges lowest rank first, every
// occurrence of the best pair left to right. Word encodings are cached.
#include "gpt2_bpe.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "unicode.h"
#include "utf8.h"

namespace scion::text {
namespace {

std::string read_file(const std::filesystem::path& p, const char* what) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    throw std::runtime_error(p.string() + ": cannot open " + what +
                             (std::filesystem::exists(p) ? " (permission denied?)" : " (no such file)"));
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// vocab.json / encoder.json: one object of token -> integer id, read in file order with
// nlohmann-json's SAX interface (no document tree for 50k entries; duplicates are kept, so
// the caller can refuse them). Errors: "<file>:<line>:<column>: <what>" or name the token.
class VocabSax {
public:
  using json = nlohmann::json;
  explicit VocabSax(std::vector<std::pair<std::string, int64_t>>& out) : out_(out) {}
  std::string error;  // a shape error (the syntax is fine); empty when none

  bool start_object(std::size_t) { return depth_++ == 0 || refuse("an object"); }
  bool end_object() { return --depth_, true; }
  bool key(std::string& k) { return key_ = k, true; }
  bool number_integer(json::number_integer_t v) { return add(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    return v <= json::number_unsigned_t(INT64_MAX) ? add(int64_t(v)) : refuse("an id too large");
  }
  bool number_float(json::number_float_t, const std::string& text) { return refuse("the id " + text); }
  bool null() { return refuse("null"); }
  bool boolean(bool) { return refuse("a boolean"); }
  bool string(std::string&) { return refuse("a string"); }
  bool binary(json::binary_t&) { return refuse("binary data"); }
  bool start_array(std::size_t) { return refuse("an array"); }
  bool end_array() { return false; }
  // A syntax error: where (1-based index of the last character read) and nlohmann's words.
  bool parse_error(std::size_t byte, const std::string&, const json::exception& e) {
    syntax_at = byte > 0 ? byte - 1 : 0;
    syntax = e.what();
    return false;
  }
  std::size_t syntax_at = 0;
  std::string syntax;

private:
  bool add(int64_t v) {
    if (depth_ != 1) return refuse("a bare number");
    out_.emplace_back(std::move(key_), v);
    return true;
  }
  bool refuse(const std::string& what) {
    error = depth_ == 0 ? "the file holds " + what + ", not an object of token -> id"
                        : "token \"" + key_ + "\" maps to " + what + " (ids are integers)";
    return false;
  }
  std::vector<std::pair<std::string, int64_t>>& out_;
  std::string key_;
  int depth_ = 0;
};

std::vector<std::pair<std::string, int64_t>> read_vocab_json(const std::string& text, const std::string& src) {
  std::vector<std::pair<std::string, int64_t>> out;
  VocabSax sax(out);
  // strict: the whole file is the object (text after it is an error)
  if (nlohmann::json::sax_parse(text, &sax, nlohmann::json::input_format_t::json, true)) return out;
  if (!sax.syntax.empty()) {
    const std::size_t at = sax.syntax_at;
    std::size_t line = 1, col = 1;  // the column counts UTF-8 characters
    for (std::size_t k = 0; k < at && k < text.size(); ++k) {
      if (text[k] == '\n') line += 1, col = 1;
      else if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++col;
    }
    std::string what = sax.syntax;  // "[json.exception.parse_error.101] parse error at ...: <what>"
    const std::size_t pe = what.find("parse error"), colon = what.find(": ", pe == std::string::npos ? 0 : pe);
    if (colon != std::string::npos) what = what.substr(colon + 2);
    throw std::runtime_error(src + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + what +
                             (at >= text.size() ? " (the file ends inside the vocabulary)" : ""));
  }
  throw std::runtime_error(src + ": " + sax.error);
}

// GPT-2's reversible byte <-> printable-unicode table: bytes that are printable Latin-1
// map to themselves, the other 68 to U+0100.. in byte order.
struct ByteAlphabet {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteAlphabet() {
    to_byte.fill(-1);
    char32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = keep ? static_cast<char32_t>(b) : extra++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

struct SvHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Open-addressing map (left id, right id) -> (rank, merged id).
class PairTable {
public:
  struct Entry { uint64_t key; int32_t rank; int32_t merged; };
  void init(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{kEmpty, -1, -1});
    mask_ = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  bool insert(uint64_t k, int32_t rank, int32_t merged) {
    for (std::size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) { slots_[i] = Entry{k, rank, merged}; return true; }
      if (slots_[i].key == k) return false;
    }
  }
  const Entry* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (std::size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static std::size_t mix(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
};

enum Cls : uint8_t { kL = 0, kN = 1, kS = 2, kO = 3 };

inline Cls cls_of(char32_t cp) {
  const uint16_t c = unicode::classify(cp);
  if (c & unicode::kIsLetter) return kL;
  if (c & unicode::kIsNumber) return kN;
  if (c & unicode::kIsSpace) return kS;
  return kO;
}

struct AsciiClasses {
  std::array<Cls, 128> c{};
  AsciiClasses() { for (char32_t i = 0; i < 128; ++i) c[i] = cls_of(i); }
};
const AsciiClasses& ascii_classes() {
  static const AsciiClasses a;
  return a;
}

// Class and byte length of the character at s[i] (invalid UTF-8 bytes count as "other").
inline Cls char_at(std::string_view s, std::size_t i, std::size_t& len, const AsciiClasses& ac) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) { len = 1; return ac.c[b]; }
  const char32_t cp = utf8::decode(s, i, len);
  return cp == utf8::kInvalid ? kO : cls_of(cp);
}

constexpr std::size_t kShards = 64;
constexpr std::size_t kShardCapacity = 8192;     // entries per shard before it is cleared
constexpr std::size_t kMaxCachedWord = 128;      // bytes

}  // namespace

struct Gpt2Bpe::Impl {
  std::vector<std::string> id_bytes;   // id -> raw bytes
  std::array<int32_t, 256> byte_id{};  // byte -> id of its one-byte token
  PairTable pairs;
  std::size_t n_merges = 0;
  bool monotone = true;                // every merge's operands were made by earlier merges
  int32_t eot = -1;

  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, SvHash, std::equal_to<>> map;
  };
  mutable std::array<Shard, kShards> cache;

  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_simple(std::string_view word, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  template <class F> void split(std::string_view s, F&& emit) const;
};

// The regex, by hand. Alternatives are tried in the pattern's order at each position;
// the first that matches wins (Python's findall semantics).
template <class F>
void Gpt2Bpe::Impl::split(std::string_view s, F&& emit) const {
  const AsciiClasses& ac = ascii_classes();
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // 's 't 're 've 'm 'll 'd
    if (s[i] == '\'' && i + 1 < n) {
      const char a = s[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') { emit(s.substr(i, 2)); i += 2; continue; }
      if (i + 2 < n) {
        const char b = s[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          emit(s.substr(i, 3)); i += 3; continue;
        }
      }
    }
    std::size_t len;
    Cls c = char_at(s, i, len, ac);
    std::size_t j = i + len;
    if (s[i] == ' ' && j < n) {  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+" with the space
      std::size_t len2;
      const Cls c2 = char_at(s, j, len2, ac);
      if (c2 != kS) { c = c2; j += len2; }
    }
    if (c != kS) {  // a run of one class
      while (j < n) {
        std::size_t l;
        if (char_at(s, j, l, ac) != c) break;
        j += l;
      }
      emit(s.substr(i, j - i));
      i = j;
      continue;
    }
    // whitespace: "\s+(?!\S)" keeps the last space for the next word, else "\s+"
    std::size_t last = i;  // start of the last whitespace character of the run
    while (j < n) {
      std::size_t l;
      if (char_at(s, j, l, ac) != kS) break;
      last = j;
      j += l;
    }
    if (j < n && last > i) j = last;
    emit(s.substr(i, j - i));
    i = j;
  }
}

// Merge loop with a min-heap of candidate pairs ordered by (rank, position). With merges
// in training order (checked at load), this is exactly "merge every occurrence of the
// lowest-ranked pair, left to right, repeat": a merge can only create pairs of higher rank.
void Gpt2Bpe::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  const std::size_t n = word.size();
  if (n == 1) { out.push_back(byte_id[static_cast<unsigned char>(word[0])]); return; }
  if (!monotone) { bpe_simple(word, out); return; }
  struct Sym { int32_t id; int32_t prev; int32_t next; };
  struct Cand { int32_t rank; int32_t left; int32_t right; int32_t a; int32_t b; };
  thread_local std::vector<Sym> sym;
  thread_local std::vector<Cand> heap;
  sym.resize(n);
  heap.clear();
  const auto later = [](const Cand& x, const Cand& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.left > y.left;
  };
  const auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    if (const PairTable::Entry* e = pairs.find(sym[l].id, sym[r].id)) {
      heap.push_back(Cand{e->rank, l, r, sym[l].id, sym[r].id});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (std::size_t k = 0; k < n; ++k) {
    sym[k] = Sym{byte_id[static_cast<unsigned char>(word[k])], static_cast<int32_t>(k) - 1,
                 k + 1 < n ? static_cast<int32_t>(k + 1) : -1};
  }
  for (std::size_t k = 0; k + 1 < n; ++k) consider(static_cast<int32_t>(k), static_cast<int32_t>(k + 1));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Cand c = heap.back();
    heap.pop_back();
    Sym& L = sym[c.left];
    // stale if either side was merged away or changed since the candidate was pushed
    if (L.id != c.a || L.next != c.right || sym[c.right].id != c.b) continue;
    Sym& R = sym[c.right];
    L.id = pairs.find(c.a, c.b)->merged;
    L.next = R.next;
    if (R.next >= 0) sym[R.next].prev = c.left;
    R.id = -1;
    R.next = -2;  // dead
    consider(L.prev, c.left);
    consider(c.left, L.next);
  }
  for (int32_t k = 0; k >= 0; k = sym[k].next) out.push_back(sym[k].id);
}

// Textbook version, used only for merge lists that are not in training order.
void Gpt2Bpe::Impl::bpe_simple(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<int32_t> parts;
  for (char ch : word) parts.push_back(byte_id[static_cast<unsigned char>(ch)]);
  while (parts.size() > 1) {
    const PairTable::Entry* best = nullptr;
    for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
      const PairTable::Entry* e = pairs.find(parts[k], parts[k + 1]);
      if (e && (!best || e->rank < best->rank)) best = e;
    }
    if (!best) break;
    const auto a = static_cast<int32_t>(best->key >> 32), b = static_cast<int32_t>(best->key & 0xFFFFFFFFu);
    std::vector<int32_t> next;
    for (std::size_t k = 0; k < parts.size(); ++k) {
      if (k + 1 < parts.size() && parts[k] == a && parts[k + 1] == b) { next.push_back(best->merged); ++k; }
      else next.push_back(parts[k]);
    }
    parts.swap(next);
  }
  out.insert(out.end(), parts.begin(), parts.end());
}

void Gpt2Bpe::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) { out.push_back(byte_id[static_cast<unsigned char>(piece[0])]); return; }
  if (piece.size() > kMaxCachedWord) { bpe(piece, out); return; }
  const std::size_t h = SvHash{}(piece);
  Shard& sh = cache[(h >> 7) % kShards];
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.map.find(piece);
    if (it != sh.map.end()) { out.insert(out.end(), it->second.begin(), it->second.end()); return; }
  }
  const std::size_t start = out.size();
  bpe(piece, out);
  std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.map.size() >= kShardCapacity) sh.map.clear();
  sh.map.emplace(std::string(piece), std::move(ids));
}

Gpt2Bpe::Gpt2Bpe(const std::filesystem::path& vocab_path, const std::filesystem::path& merges_path)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const ByteAlphabet& alpha = byte_alphabet();
  const std::string vsrc = vocab_path.string();
  const auto entries = read_vocab_json(read_file(vocab_path, "vocabulary"), vsrc);
  if (entries.empty()) throw std::runtime_error(vsrc + ": vocabulary is empty (expected token -> id entries)");

  std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>> by_token;  // byte-alphabet form
  by_token.reserve(entries.size() * 2);
  int64_t max_id = -1;
  for (const auto& [tok, id] : entries) {
    if (id < 0 || id >= (INT64_C(1) << 31)) {
      throw std::runtime_error(vsrc + ": token \"" + tok + "\" has id " + std::to_string(id) +
                               " (ids must be in 0..2^31-1)");
    }
    max_id = std::max(max_id, id);
  }
  // The id table is as long as the largest id: a crafted file with one id near 2^31 would
  // ask for tens of gigabytes. Real vocabularies number their tokens 0..N-1 (a few gaps at
  // most), so an id far beyond the entry count is refused.
  const int64_t id_limit = 2 * int64_t(entries.size()) + 1024;
  if (max_id >= id_limit) {
    throw std::runtime_error(vsrc + ": the largest id is " + std::to_string(max_id) + " but the vocabulary has only " +
                             std::to_string(entries.size()) + " tokens (ids must stay below " +
                             std::to_string(id_limit) + "; a vocabulary numbers its tokens 0..N-1)");
  }
  m.id_bytes.assign(static_cast<std::size_t>(max_id + 1), std::string());
  std::vector<bool> seen(static_cast<std::size_t>(max_id + 1), false);
  for (const auto& [tok, id64] : entries) {
    const auto id = static_cast<int32_t>(id64);
    std::string bytes;
    for (std::size_t i = 0; i < tok.size();) {
      std::size_t len;
      const char32_t cp = utf8::decode(tok, i, len);
      if (cp == utf8::kInvalid || cp >= alpha.to_byte.size() || alpha.to_byte[cp] < 0) {
        throw std::runtime_error(vsrc + ": token \"" + tok + "\" (id " + std::to_string(id) +
                                 ") has a character outside GPT-2's byte alphabet (is this a byte-level BPE vocab.json?)");
      }
      bytes.push_back(static_cast<char>(alpha.to_byte[cp]));
      i += len;
    }
    if (seen[id]) throw std::runtime_error(vsrc + ": id " + std::to_string(id) + " is used by two tokens");
    seen[id] = true;
    if (!by_token.emplace(tok, id).second) throw std::runtime_error(vsrc + ": token \"" + tok + "\" appears twice");
    m.id_bytes[id] = std::move(bytes);
  }
  for (int b = 0; b < 256; ++b) {
    std::string u;
    utf8::append(u, alpha.to_cp[b]);
    auto it = by_token.find(u);
    if (it == by_token.end()) {
      throw std::runtime_error(vsrc + ": no token for byte " + std::to_string(b) + " (\"" + u +
                               "\"); a byte-level BPE vocabulary must cover all 256 bytes");
    }
    m.byte_id[b] = it->second;
  }
  if (auto it = by_token.find(std::string_view("<|endoftext|>")); it != by_token.end()) m.eot = it->second;

  // merges
  const std::string msrc = merges_path.string();
  const std::string text = read_file(merges_path, "merges");
  std::vector<int32_t> creator(m.id_bytes.size(), -1);  // rank of the merge that makes a token
  std::vector<std::pair<uint64_t, int32_t>> list;       // (pair key, merged id) in rank order
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const std::size_t sp = line.find(' ');
    const auto where = msrc + ":" + std::to_string(line_no) + ": ";
    if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos) {
      throw std::runtime_error(where + "malformed merge \"" + std::string(line) +
                               "\" (hint: each line holds two tokens separated by one space, e.g. \"\xC4\xA0 t\")");
    }
    const std::string_view a = line.substr(0, sp), b = line.substr(sp + 1);
    auto ia = by_token.find(a), ib = by_token.find(b);
    auto iab = by_token.find(std::string(a) + std::string(b));
    for (auto [it, tok] : {std::pair{ia, a}, std::pair{ib, b}}) {
      if (it == by_token.end()) {
        throw std::runtime_error(where + "merge uses token \"" + std::string(tok) + "\" that is not in " + vsrc +
                                 " (hint: vocabulary and merges must come from the same model)");
      }
    }
    if (iab == by_token.end()) {
      throw std::runtime_error(where + "the merged token \"" + std::string(a) + std::string(b) + "\" is not in " +
                               vsrc + " (hint: vocabulary and merges must come from the same model)");
    }
    list.emplace_back(PairTable::key(ia->second, ib->second), iab->second);
  }
  m.pairs.init(list.size());
  for (std::size_t r = 0; r < list.size(); ++r) {
    const auto [k, merged] = list[r];
    const auto a = static_cast<int32_t>(k >> 32), b = static_cast<int32_t>(k & 0xFFFFFFFFu);
    if (!m.pairs.insert(k, static_cast<int32_t>(r), merged)) continue;  // duplicate pair: first rank wins
    if (creator[a] >= static_cast<int32_t>(r) || creator[b] >= static_cast<int32_t>(r)) m.monotone = false;
    if (creator[merged] < 0) creator[merged] = static_cast<int32_t>(r);
    ++m.n_merges;
  }
  // A token created later than a merge that uses it breaks the heap's assumption.
  for (std::size_t r = 0; r < list.size() && m.monotone; ++r) {
    const auto a = static_cast<int32_t>(list[r].first >> 32), b = static_cast<int32_t>(list[r].first & 0xFFFFFFFFu);
    if (creator[a] > static_cast<int32_t>(r) || creator[b] > static_cast<int32_t>(r)) m.monotone = false;
  }
}

Gpt2Bpe Gpt2Bpe::from_dir(const std::filesystem::path& dir) {
  auto pick = [&](const char* x, const char* y) {
    const auto p = dir / x;
    if (std::filesystem::exists(p)) return p;
    const auto q = dir / y;
    if (std::filesystem::exists(q)) return q;
    throw std::runtime_error(dir.string() + ": neither " + x + " nor " + y +
                             " found (hint: scripts/fetch-vocabs.sh writes data/gpt2)");
  };
  const auto vocab = pick("encoder.json", "vocab.json");
  const auto merges = pick("vocab.bpe", "merges.txt");
  return Gpt2Bpe(vocab, merges);
}

Gpt2Bpe::Gpt2Bpe(Gpt2Bpe&&) noexcept = default;
Gpt2Bpe& Gpt2Bpe::operator=(Gpt2Bpe&&) noexcept = default;
Gpt2Bpe::~Gpt2Bpe() = default;

void Gpt2Bpe::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  impl_->split(text, [&](std::string_view piece) { impl_->encode_piece(piece, out); });
}

std::vector<int32_t> Gpt2Bpe::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, out);
  return out;
}

std::string Gpt2Bpe::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

const std::string& Gpt2Bpe::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_bytes.size()) {
    throw std::out_of_range("Gpt2Bpe: token id " + std::to_string(id) + " outside the vocabulary (size " +
                            std::to_string(impl_->id_bytes.size()) + ")");
  }
  return impl_->id_bytes[id];
}

std::vector<std::string_view> Gpt2Bpe::pretokenize(std::string_view text) const {
  std::vector<std::string_view> out;
  impl_->split(text, [&](std::string_view p) { out.push_back(p); });
  return out;
}

int64_t Gpt2Bpe::vocab_size() const { return int64_t(impl_->id_bytes.size()); }
int32_t Gpt2Bpe::eot_id() const { return impl_->eot; }
std::size_t Gpt2Bpe::num_merges() const { return impl_->n_merges; }

void Gpt2Bpe::clear_cache() const {
  for (auto& sh : impl_->cache) {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.map.clear();
  }
}

}  // namespace scion::text
