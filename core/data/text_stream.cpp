// data::TextStream (scion/data.h): a streaming reader of text corpora.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "scion/data.h"
#include "scion/error.h"
#include "scion/files.h"
#include "scion/random.h"

namespace scion::data {

namespace {

// The "text" field of one JSON-lines record, with JSON string escapes decoded.
bool json_text_field(const std::string& line, std::string& out) {
  const size_t key = line.find("\"text\"");
  if (key == std::string::npos) return false;
  size_t i = line.find(':', key + 6);
  if (i == std::string::npos) return false;
  i = line.find('"', i);
  if (i == std::string::npos) return false;
  out.clear();
  for (++i; i < line.size(); ++i) {
    char c = line[i];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= line.size()) return false;
    switch (line[i]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i + 4 >= line.size()) return false;
        uint32_t cp = uint32_t(std::stoul(line.substr(i + 1, 4), nullptr, 16));
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < line.size() && line[i + 1] == '\\' && line[i + 2] == 'u') {
          const uint32_t lo = uint32_t(std::stoul(line.substr(i + 3, 4), nullptr, 16));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        if (cp < 0x80) out += char(cp);
        else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
        else if (cp < 0x10000)
          out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
        else
          out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F)),
              out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
        break;
      }
      default: out += line[i];
    }
  }
  return false;
}

bool is_jsonl(const std::string& path) {
  return path.size() >= 6 && (path.ends_with(".jsonl") || path.ends_with(".json"));
}

// A file that is mostly NUL or control bytes is not text: refuse it with its name.
void check_text(const std::string& path, const std::string& sample) {
  size_t bad = 0;
  for (unsigned char c : sample)
    if (c == 0 || (c < 0x09) || (c > 0x0d && c < 0x20 && c != 0x1b)) ++bad;
  SCION_CHECK(sample.empty() || bad * 10 < sample.size(), "data.text: '", path,
              "' does not look like text (", bad, " control bytes in the first ", sample.size(),
              " bytes); hint: binary token shards are read by data.shards");
}

int64_t checked_seq_len(const TextStreamConfig& c) {
  SCION_CHECK(c.seq_len > 0 && c.batch_size > 0, "data.text: seq_len and batch_size must be positive");
  return c.seq_len;
}

}  // namespace

TextStream::TextStream(TextStreamConfig cfg, TokenizeFn tokenize, int32_t eot_id)
    : cfg_(std::move(cfg)),
      tokenize_(std::move(tokenize)),
      eot_(eot_id),
      windows_(checked_seq_len(cfg_)),
      shard_(cfg_.rank, cfg_.world, "data.text") {
  files_ = files::expand(cfg_.files, "data.text");
  // Every file must open and look like text before training starts.
  for (const std::string& f : files_) {
    std::ifstream in(f, std::ios::binary);
    SCION_CHECK(in.good(), "data.text: cannot open '", f, "'");
    std::string sample(4096, '\0');
    in.read(sample.data(), std::streamsize(sample.size()));
    sample.resize(size_t(in.gcount()));
    check_text(f, sample);
    sizes_.push_back(int64_t(std::filesystem::file_size(f)));
  }
  start_epoch();
}

void TextStream::start_epoch() { offsets_.assign(files_.size(), 0); }

int64_t TextStream::pick_file() {
  int64_t remaining = 0;
  for (size_t f = 0; f < files_.size(); ++f) remaining += sizes_[f] - offsets_[f];
  if (remaining <= 0) return -1;
  int64_t u = 0;  // sequential: the first unfinished file
  if (cfg_.shuffle)
    u = int64_t(random_bits(derive_seed(cfg_.seed, 0xf11e5ull), file_draws_++) % uint64_t(remaining));
  for (size_t f = 0; f < files_.size(); ++f) {
    const int64_t left = sizes_[f] - offsets_[f];
    if (u < left) return int64_t(f);
    u -= left;
  }
  return -1;  // not reached
}

bool TextStream::read_document(std::string& doc) {
  for (int64_t f; (f = pick_file()) >= 0;)
    if (read_document_from(size_t(f), doc)) return true;
  return false;
}

bool TextStream::read_document_from(size_t f, std::string& doc) {
  const std::string& path = files_[f];
  int64_t& offset = offsets_[f];
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "data.text: cannot open '", path, "' (it was readable when the run started)");
  in.seekg(offset);
  doc.clear();
  std::string line;
  const bool jsonl = is_jsonl(path);
  while (std::getline(in, line)) {
    const int64_t start = offset;
    offset = std::min(sizes_[f], offset + int64_t(line.size()) + 1);
    const bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
    if (jsonl) {
      if (blank) continue;
      std::string text;
      SCION_CHECK(json_text_field(line, text), "data.text: '", path, "' near byte ", start,
                  ": a JSON-lines record without a \"text\" string field");
      doc = std::move(text);
      return true;
    }
    if (blank) {
      if (!doc.empty()) return true;
      continue;
    }
    doc += line;
    doc += '\n';
  }
  offset = sizes_[f];  // the end of the file (its last document, if any, is in doc)
  return !doc.empty();
}

Window TextStream::next_window() {
  const size_t need = size_t(cfg_.seq_len) + 1;
  int empty_epochs = 0;
  while (!windows_.ready()) {
    std::string doc;
    if (!read_document(doc)) {
      ++epoch_;
      start_epoch();
      SCION_CHECK(++empty_epochs < 2 || !windows_.empty(), "data.text: the corpus (", files_.size(),
                  " file(s)) holds no text");
      SCION_CHECK(empty_epochs < 3, "data.text: the corpus is shorter than one window of ", need, " tokens");
      continue;
    }
    windows_.push(tokenize_(doc));
    windows_.push(eot_);
  }
  return windows_.pop();
}

Window TextStream::draw() {
  if (!(cfg_.shuffle && cfg_.shuffle_buffer > 0)) return next_window();
  while (int64_t(buffer_.size()) < cfg_.shuffle_buffer) buffer_.push_back(next_window());
  const size_t pick = size_t(random_bits(derive_seed(cfg_.seed, 0xb0ffull), draws_++) % buffer_.size());
  Window w = std::move(buffer_[pick]);
  buffer_[pick] = next_window();
  return w;
}

Batch TextStream::next() {
  return make_batch(shard_.take(cfg_.batch_size, [this] { return draw(); }), cfg_.seq_len);
}

// Format 2 (format 1 came from a version that read files one after another).
Position TextStream::state() const {
  Position p("data.text");
  p.put(2);
  p.put(epoch_);
  p.put(int64_t(file_draws_));
  p.put(int64_t(draws_));
  shard_.save(p);
  p.put(int64_t(files_.size()));
  for (int64_t o : offsets_) p.put(o);
  windows_.save(p);
  p.put(int64_t(buffer_.size()));
  for (const auto& w : buffer_) p.put_tokens(w);
  return p;
}

void TextStream::restore(Position p) {
  const int64_t format = p.take();
  SCION_CHECK(format == 2, "data.text: the checkpoint's stream position has format ", format,
              " (this Scion reads format 2; format 1 came from a version that read files one after another); "
              "hint: restart the run, or resume it with the Scion that wrote it");
  epoch_ = p.take();
  file_draws_ = uint64_t(p.take());
  draws_ = uint64_t(p.take());
  shard_.load(p);
  const int64_t nfiles = p.take();
  SCION_CHECK(nfiles == int64_t(files_.size()), "data.text: the checkpoint was made with ", nfiles,
              " file(s) but the graph now matches ", files_.size());
  for (auto& o : offsets_) {
    o = p.take();
    SCION_CHECK(o >= 0, "data.text: a negative file offset in the saved stream position");
  }
  for (size_t f = 0; f < files_.size(); ++f)
    SCION_CHECK(offsets_[f] <= sizes_[f], "data.text: '", files_[f], "' is shorter (", sizes_[f],
                " bytes) than the checkpoint's read position ", offsets_[f], "; the file changed since");
  windows_.load(p);
  buffer_.resize(size_t(p.take()));
  for (auto& w : buffer_) w = p.take_tokens();
}

std::vector<Window> TextStream::all_windows(const std::vector<std::string>& files, const TokenizeFn& tok, int32_t eot_id,
                                            int64_t seq_len) {
  TextStreamConfig c;
  c.files = files;
  c.seq_len = seq_len;
  c.batch_size = 1;
  c.shuffle = false;
  TextStream s(c, tok, eot_id);
  std::vector<Window> out;
  while (s.epoch() == 0) {
    auto w = s.next_window();
    if (s.epoch() > 0) break;  // the window wrapped into the next epoch
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace scion::data
