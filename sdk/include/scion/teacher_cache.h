// A teacher cache: a frozen teacher's distribution at every position of the batches a student
// graph reads, stored sparsely once (`scion teacher-cache`) and read by every student that
// distils from it (loss.inherit's `cache`), so that the teacher never runs beside a student.
//
// A cache is a folder: manifest.json (what it was written from and for: data node, tokenizer,
// seed, world size, steps, format) and one shard per rank per `steps_per_shard` updates,
// "rank<R>-<first step, 8 digits>.bin". A shard is a header of 8 little-endian int64 (magic,
// version, rank, first step, records, rows per record, slots per row, bytes per slot), then
// `records` steps of the run, each the step number (int64), a hash of its targets (uint64:
// the reader refuses a batch that is not the one the cache was written for) and rows × slots
// entries, one per target position:
//   topk:   K ids (int32), log p_k at temperature τ (dtype), then log(1 - Σ_K p_k) (dtype);
//   sample: K ids (int32), how often each was drawn (uint16, 0 = an unused slot), log p_k (dtype).
// Only the steps whose batch the data node gives in a stage are records (a stage that does not
// read it has none). Files are written atomically; a shard on disk is complete.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "scion/dtype.h"
#include "scion/json.h"
#include "scion/tensor.h"

namespace scion {
class Tokenizer;
}

namespace scion::teacher_cache {

inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr int64_t kShardMagic = 0x5343544348435331;  // "SCTCHCS1"
inline constexpr int64_t kShardVersion = 1;

enum class Format { topk, sample };
Format format_from_string(const std::string& s);  // "topk" | "sample"; throws
const char* format_name(Format f);

// The sparse layout: what one target position costs on disk.
struct Layout {
  Format format = Format::topk;
  int64_t k = 10;
  DType dtype = DType::bf16;  // of the log-probabilities
  int64_t slot_bytes() const;
};

// One shard: a rank's records of the steps [first, first + steps_per_shard) that read data.
struct ShardInfo {
  int rank = 0;
  int64_t first = 0, records = 0;
};

// The manifest's fields the reader and the checks need; the whole JSON is kept in `json`.
struct Manifest {
  Layout layout;
  double temperature = 1.0;
  int64_t vocab = 0, seq_len = 0, batch_size = 0, world = 1;
  int64_t steps = 0;            // the run's updates [0, steps) are covered
  int64_t steps_per_shard = 0;
  std::vector<ShardInfo> shards;  // every rank's, planned before the first is written
  Json json;
  static Manifest from_json(const Json& j, const std::string& source);
  static Manifest read(const std::string& dir);  // throws naming the folder and what is missing
};

std::string shard_name(int rank, int64_t first_step);
// Bytes a shard of `records` steps has on disk.
int64_t shard_bytes(const Manifest& m, int64_t records);
int64_t record_bytes(const Manifest& m);

// A hash of a batch's targets (their int64 values): what a record is matched against.
uint64_t targets_hash(const Tensor& targets);
// FNV-1a over a file's size, its first and its last MiB: a cheap fingerprint of a data file or
// checkpoint that a different file of the same name almost surely does not share.
std::string file_fingerprint(const std::string& path);

// One step's sparse targets, rows × K, on the host.
struct Targets {
  int64_t rows = 0, k = 0;
  std::vector<int32_t> ids;      // rows·K
  std::vector<float> logp;       // rows·K: log p at τ
  std::vector<float> log_rest;   // topk: rows: log of the mass outside the K ids (-inf: none)
  std::vector<uint16_t> counts;  // sample: rows·K draws of each id (0 = an unused slot)
};

// From a teacher's logits [rows, V] (f32, host): the K most likely ids, or K ids drawn with
// replacement from softmax(logits/τ) (stream `seed`, position i of the step draws from
// random_uniform(seed, i·K + j)), merged into ids with counts.
Targets make_targets(const Tensor& logits, const Layout& layout, float temperature, uint64_t seed);

// Writes shards: records are added step by step and the shard is committed (atomically) once
// it holds `records` of them.
class ShardWriter {
 public:
  ShardWriter(const Manifest& m, const std::string& path, int rank, int64_t first_step, int64_t records);
  ~ShardWriter();
  void add(int64_t step, uint64_t targets_hash, const Targets& t);
  void commit();

 private:
  struct Impl;
  Impl* impl_;
};

// Reads one rank's records. Every shard it opens is checked: its size against the header and
// the manifest, its header against the manifest (a truncated or foreign file is refused,
// named).
class Reader {
 public:
  Reader(std::string dir, int rank);
  const Manifest& manifest() const { return m_; }
  // The targets cached for `step`; refuses a step the cache does not hold and a batch whose
  // targets hash differs from the one recorded.
  Targets at(int64_t step, uint64_t targets_hash);

 private:
  std::string dir_;
  int rank_;
  Manifest m_;
};

// What a cache is matched on: a tokenizer by its behaviour (vocabulary size, end-of-text id and
// the ids of a fixed text of ASCII, accents, CJK and emoji), data files by file_fingerprint.
std::string tokenizer_hash(const Tokenizer& tok);
Json data_files(const std::vector<std::string>& globs);  // [{path, fingerprint}], globs expanded
// The data node's parameters the batches depend on (not valid_files, domain: validation only).
Json data_params(const Json& params);

// What is wrong with a shard of the manifest's list on disk (missing, truncated, a header that
// is not the manifest's), in words; "" when it is whole.
std::string shard_problem(const std::string& dir, const Manifest& m, const ShardInfo& s);

}  // namespace scion::teacher_cache
