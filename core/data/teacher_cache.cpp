// The teacher cache's files: manifest, shard layout, writer and reader (scion/teacher_cache.h).
#include "scion/teacher_cache.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "scion/error.h"
#include "scion/files.h"

namespace scion::teacher_cache {

namespace fs = std::filesystem;

Format format_from_string(const std::string& s) {
  if (s == "topk") return Format::topk;
  if (s == "sample") return Format::sample;
  throw Error("teacher cache: unknown format '" + s + "' (expected topk or sample)");
}

const char* format_name(Format f) { return f == Format::topk ? "topk" : "sample"; }

int64_t Layout::slot_bytes() const {
  const int64_t v = int64_t(dtype_size(dtype));
  return format == Format::topk ? k * (4 + v) + v : k * (4 + 2 + v);
}

namespace {

constexpr int64_t kHeaderWords = 8;
constexpr int64_t kHeaderBytes = kHeaderWords * 8;

int64_t need_int(const Json& j, const char* key, const std::string& source) {
  SCION_CHECK(j.contains(key), source, ": no \"", key, "\"");
  return json_int(j.at(key));
}

void put_value(char*& p, float v, DType d) {
  if (d == DType::f32) {
    std::memcpy(p, &v, 4);
  } else {
    const uint16_t h = d == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
    std::memcpy(p, &h, 2);
  }
  p += dtype_size(d);
}

float get_value(const char*& p, DType d) {
  float v;
  if (d == DType::f32) {
    std::memcpy(&v, p, 4);
  } else {
    uint16_t h;
    std::memcpy(&h, p, 2);
    v = d == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
  p += dtype_size(d);
  return v;
}

template <class T>
void put(char*& p, T v) {
  std::memcpy(p, &v, sizeof v);
  p += sizeof v;
}
template <class T>
T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

struct Header {
  int64_t w[kHeaderWords] = {};
};

// The header of the shard at `path`, or the problem reading it.
std::string read_header(const std::string& path, Header& h) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "is missing";
  in.read(reinterpret_cast<char*>(h.w), kHeaderBytes);
  if (in.gcount() != kHeaderBytes) return "is truncated (shorter than its header)";
  if (h.w[0] != kShardMagic) return "is not a teacher-cache shard (bad magic)";
  if (h.w[1] != kShardVersion) return "has format version " + std::to_string(h.w[1]) + ", not " + std::to_string(kShardVersion);
  return "";
}

}  // namespace

Manifest Manifest::from_json(const Json& j, const std::string& source) {
  Manifest m;
  SCION_CHECK(j.is_object() && j.contains("format") && j.contains("dtype"), source,
              ": not a teacher-cache manifest (no format or dtype)");
  m.layout.format = format_from_string(json_string(j.at("format")));
  m.layout.k = need_int(j, "k", source);
  m.layout.dtype = dtype_from_string(json_string(j.at("dtype")));
  SCION_CHECK(m.layout.dtype == DType::f32 || m.layout.dtype == DType::bf16 || m.layout.dtype == DType::f16, source,
              ": dtype must be bf16, f16 or f32");
  SCION_CHECK(j.contains("temperature"), source, ": no \"temperature\"");
  m.temperature = json_number(j.at("temperature"));
  m.vocab = need_int(j, "vocab", source);
  m.seq_len = need_int(j, "seq_len", source);
  m.batch_size = need_int(j, "batch_size", source);
  m.world = need_int(j, "world", source);
  m.steps = need_int(j, "steps", source);
  m.steps_per_shard = need_int(j, "steps_per_shard", source);
  SCION_CHECK(m.layout.k >= 1 && m.vocab >= 1 && m.seq_len >= 1 && m.batch_size >= 1 && m.world >= 1 &&
                  m.steps_per_shard >= 1 && m.steps >= 0,
              source, ": k, vocab, seq_len, batch_size, world and steps_per_shard must be positive");
  SCION_CHECK(j.contains("shards") && j.at("shards").is_array(), source, ": no \"shards\" list");
  for (const Json& s : json_array(j.at("shards")))
    m.shards.push_back({int(need_int(s, "rank", source)), need_int(s, "first", source), need_int(s, "records", source)});
  m.json = j;
  return m;
}

Manifest Manifest::read(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifestFile).string();
  std::error_code ec;
  SCION_CHECK(fs::is_directory(dir, ec), "teacher cache '", dir, "' is ", fs::exists(dir, ec) ? "not a folder" : "missing",
              " (hint: write it first: scion teacher-cache GRAPH --teacher NODE --out ", dir, ")");
  std::ifstream in(path);
  SCION_CHECK(in.good(), "teacher cache '", dir, "' has no ", kManifestFile,
              " (hint: write it with scion teacher-cache GRAPH --teacher NODE --out ", dir, ")");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  return from_json(json_parse(text, path), path);
}

std::string shard_name(int rank, int64_t first_step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "rank%d-%08lld.bin", rank, (long long)first_step);
  return buf;
}

int64_t record_bytes(const Manifest& m) { return 16 + m.batch_size * m.seq_len * m.layout.slot_bytes(); }

int64_t shard_bytes(const Manifest& m, int64_t records) { return kHeaderBytes + records * record_bytes(m); }

uint64_t targets_hash(const Tensor& targets) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int64_t v : targets.to_vector_i64())
    for (int b = 0; b < 8; ++b) h = (h ^ ((uint64_t(v) >> (8 * b)) & 0xff)) * 0x100000001b3ull;
  return h;
}

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "teacher cache: cannot read '", path, "'");
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ uint64_t(static_cast<unsigned char>(p[i]))) * 0x100000001b3ull;
  };
  mix(reinterpret_cast<const char*>(&size), sizeof size);
  constexpr int64_t kPart = 1 << 20;
  std::vector<char> buf(size_t(std::min(size, kPart)));
  for (int64_t at : {int64_t(0), std::max<int64_t>(size - kPart, 0)}) {
    in.seekg(at);
    in.read(buf.data(), std::streamsize(buf.size()));
    mix(buf.data(), buf.size());
  }
  char out[32];
  std::snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
  return out;
}

std::string shard_problem(const std::string& dir, const Manifest& m, const ShardInfo& s) {
  const std::string path = (fs::path(dir) / shard_name(s.rank, s.first)).string();
  Header h;
  std::string p = read_header(path, h);
  if (p.empty() && (h.w[2] != s.rank || h.w[3] != s.first || h.w[4] != s.records || h.w[5] != m.batch_size * m.seq_len ||
                    h.w[6] != m.layout.k || h.w[7] != m.layout.slot_bytes()))
    p = "has a header that is not the manifest's (another cache's shard?)";
  std::error_code ec;
  if (p.empty() && int64_t(fs::file_size(path, ec)) != shard_bytes(m, s.records))
    p = "is truncated: " + std::to_string(fs::file_size(path, ec)) + " bytes, not " + std::to_string(shard_bytes(m, s.records));
  return p.empty() ? p : "shard '" + path + "' " + p;
}

// ---- writer ----------------------------------------------------------------------------------
struct ShardWriter::Impl {
  Manifest m;
  std::string path;
  int64_t records = 0, written = 0;
  files::AtomicWriter out;
  std::vector<char> buf;
  Impl(const Manifest& man, const std::string& p, int64_t n) : m(man), path(p), records(n), out(p) {}
};

ShardWriter::ShardWriter(const Manifest& m, const std::string& path, int rank, int64_t first_step, int64_t records)
    : impl_(new Impl(m, path, records)) {
  const int64_t h[kHeaderWords] = {kShardMagic, kShardVersion, rank, first_step, records,
                                   m.batch_size * m.seq_len, m.layout.k, m.layout.slot_bytes()};
  impl_->out.write(h, sizeof h);
}

ShardWriter::~ShardWriter() { delete impl_; }

void ShardWriter::add(int64_t step, uint64_t hash, const Targets& t) {
  const Manifest& m = impl_->m;
  const int64_t K = m.layout.k, rows = m.batch_size * m.seq_len;
  SCION_CHECK(t.rows == rows && t.k == K, "teacher cache: a step of ", t.rows, " rows × ", t.k, " slots, not ", rows, " × ", K);
  SCION_CHECK(impl_->written < impl_->records, "teacher cache: shard '", impl_->path, "' already holds its ", impl_->records,
              " records");
  impl_->buf.assign(size_t(record_bytes(m)), 0);
  char* p = impl_->buf.data();
  put<int64_t>(p, step);
  put<uint64_t>(p, hash);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < K; ++j) put<int32_t>(p, t.ids[size_t(r * K + j)]);
    if (m.layout.format == Format::sample)
      for (int64_t j = 0; j < K; ++j) put<uint16_t>(p, t.counts[size_t(r * K + j)]);
    for (int64_t j = 0; j < K; ++j) put_value(p, t.logp[size_t(r * K + j)], m.layout.dtype);
    if (m.layout.format == Format::topk) put_value(p, t.log_rest[size_t(r)], m.layout.dtype);
  }
  impl_->out.write(impl_->buf.data(), impl_->buf.size());
  ++impl_->written;
}

void ShardWriter::commit() {
  SCION_CHECK(impl_->written == impl_->records, "teacher cache: shard '", impl_->path, "' got ", impl_->written, " of its ",
              impl_->records, " records");
  impl_->out.commit();
}

// ---- reader ----------------------------------------------------------------------------------
Reader::Reader(std::string dir, int rank) : dir_(std::move(dir)), rank_(rank), m_(Manifest::read(dir_)) {
  SCION_CHECK(rank_ < m_.world, "teacher cache '", dir_, "' was written for ", m_.world, " rank(s); there is no rank ", rank_);
}

Targets Reader::at(int64_t step, uint64_t hash) {
  SCION_CHECK(step < m_.steps, "teacher cache '", dir_, "' covers the run's updates 0 to ", m_.steps - 1, ", not update ",
              step, " (hint: write a longer cache with scion teacher-cache --steps, or train for fewer steps)");
  const int64_t first = step / m_.steps_per_shard * m_.steps_per_shard;
  const ShardInfo* info = nullptr;
  for (const ShardInfo& s : m_.shards)
    if (s.rank == rank_ && s.first == first) info = &s;
  SCION_CHECK(info, "teacher cache '", dir_, "' plans no shard of rank ", rank_, " for update ", step,
              " (the data was not read at that update when the cache was written)");
  const std::string problem = shard_problem(dir_, m_, *info);
  SCION_CHECK(problem.empty(), "teacher cache: ", problem,
              " (hint: rerun scion teacher-cache with the same arguments: it writes the shards that are not whole)");
  const std::string path = (fs::path(dir_) / shard_name(rank_, first)).string();
  std::ifstream in(path, std::ios::binary);
  const int64_t rb = record_bytes(m_);
  std::vector<char> buf(static_cast<size_t>(rb));
  for (int64_t r = 0; r < info->records; ++r) {
    in.seekg(kHeaderBytes + r * rb);
    int64_t s = -1;
    in.read(reinterpret_cast<char*>(&s), 8);
    if (s != step) continue;
    in.seekg(kHeaderBytes + r * rb);
    in.read(buf.data(), std::streamsize(rb));
    SCION_CHECK(in.gcount() == rb, "teacher cache: shard '", path, "' could not be read whole");
    const char* p = buf.data() + 8;
    const uint64_t recorded = get<uint64_t>(p);
    SCION_CHECK(recorded == hash, "teacher cache '", dir_, "': the batch of update ", step, " on rank ", rank_,
                " is not the one the cache was written for (its targets differ): the data, its order or the run's plan "
                "changed since (hint: rewrite the cache for this graph)");
    Targets t;
    const int64_t K = m_.layout.k;
    t.rows = m_.batch_size * m_.seq_len, t.k = K;
    t.ids.resize(size_t(t.rows * K));
    t.logp.resize(size_t(t.rows * K));
    if (m_.layout.format == Format::topk) t.log_rest.resize(size_t(t.rows));
    else t.counts.resize(size_t(t.rows * K));
    for (int64_t row = 0; row < t.rows; ++row) {
      for (int64_t j = 0; j < K; ++j) t.ids[size_t(row * K + j)] = get<int32_t>(p);
      if (m_.layout.format == Format::sample)
        for (int64_t j = 0; j < K; ++j) t.counts[size_t(row * K + j)] = get<uint16_t>(p);
      for (int64_t j = 0; j < K; ++j) t.logp[size_t(row * K + j)] = get_value(p, m_.layout.dtype);
      if (m_.layout.format == Format::topk) t.log_rest[size_t(row)] = get_value(p, m_.layout.dtype);
    }
    for (int32_t id : t.ids)
      SCION_CHECK(id >= 0 && id < m_.vocab, "teacher cache: shard '", path, "' holds id ", id, " outside the vocabulary of ",
                  m_.vocab, " (a damaged file?)");
    return t;
  }
  throw Error("teacher cache '" + dir_ + "' holds no record of update " + std::to_string(step) + " on rank " +
              std::to_string(rank_) + " (the data node was not read at that update when it was written: the run's plan changed?)");
}

}  // namespace scion::teacher_cache
