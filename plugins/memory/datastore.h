// The kNN-LM datastore: keys (a model's memory representation, e.g. model.gpt's ffn_input)
// and values (the next token) of every position of a corpus, with a FAISS index over the keys.
//
// On disk a datastore is one folder:
//   manifest.json   what built it (the model's fingerprint and config), sizes, index, metric
//   keys.f32        size × dim float32, row-major
//   vals.i32        size int32 next-token ids
//   index.faiss     the FAISS index (faiss::write_index)
// The manifest names each of the three files with its size and XXH3-64 hash (libxxhash);
// open() verifies them before using a byte, and refuses a manifest with a key or value it
// does not know. It is built in "<path>.partial.<pid>" and renamed to <path> only once every
// file is written and synced, the manifest last; an older datastore at <path> is replaced in
// one rename. A killed build leaves at most a .partial folder, which open() never takes for a
// datastore and the next build at the same path removes (once its process is gone and it
// holds only a build's files).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scion/json.h"
#include "scion/nn.h"

namespace faiss {
struct Index;
}

namespace scion::memory {

// FNV-1a over the names, shapes and bytes of a module's parameters: two models give the same
// fingerprint exactly when their weights are identical.
std::string model_fingerprint(const nn::Module& m);

struct DatastoreInfo {
  std::string fingerprint;  // of the model that built it
  Json model_config;        // its config (for error messages)
  int64_t size = 0, dim = 0, seq_len = 0;
  std::string index = "Flat";  // a FAISS index_factory description: Flat, IVF256,Flat, IVF256,PQ16, ...
  std::string metric = "ip";   // ip (inner product) or l2 (squared L2 distance)
  // keys.f32, vals.i32, index.faiss: their sizes and XXH3-64 hashes (16 hex digits), as built.
  struct FileDigest {
    int64_t bytes = 0;
    std::string xxh3;
  };
  std::map<std::string, FileDigest> files;
};

// The XXH3-64 hash of bytes, as 16 lowercase hex digits.
std::string xxh3_hex(const void* data, size_t n);

class DatastoreWriter {
 public:
  // Opens <path>.partial.<pid> for `info.dim`-dimensional keys. info.size is counted by add().
  DatastoreWriter(std::string path, DatastoreInfo info);
  ~DatastoreWriter();  // without finish(): removes the partial folder
  DatastoreWriter(const DatastoreWriter&) = delete;
  DatastoreWriter& operator=(const DatastoreWriter&) = delete;
  void add(const float* keys, const int32_t* values, int64_t n);
  int64_t size() const { return int64_t(values_.size()); }
  // Builds the index (training it first when it needs training), writes everything and
  // renames the folder into place. Returns the info written.
  DatastoreInfo finish();

 private:
  std::string path_, tmp_;
  DatastoreInfo info_;
  std::vector<float> keys_;
  std::vector<int32_t> values_;
  bool done_ = false;
};

class Datastore {
 public:
  // Refuses a folder without a complete manifest (a killed build, another folder) and, when
  // `fingerprint` is not empty, a datastore built by another model.
  static std::unique_ptr<Datastore> open(const std::string& path, const std::string& fingerprint = "");
  ~Datastore();
  const DatastoreInfo& info() const { return info_; }
  int64_t size() const { return info_.size; }
  // The k nearest keys of n queries: similarities (ip: inner product; l2: minus the squared
  // distance) and ids, n × k each, in the index's order (best first by the index's own
  // distances). Throws when k exceeds the store. l2 with `exact_l2` (kNN-LM's default): the
  // similarities are recomputed from the stored keys, so an approximate index (IVF, PQ) only
  // chooses the neighbours; without it they are the index's (PQ's are approximate).
  void search(const float* queries, int64_t n, int64_t k, float* sims, int64_t* ids, bool exact_l2 = true) const;
  int32_t value(int64_t id) const { return values_[size_t(id)]; }
  // IVF indexes: inverted lists visited per query (FAISS's nprobe; more: slower, closer to
  // exact). No effect on a flat index.
  void set_nprobe(int64_t nprobe);
  const std::vector<float>& keys() const { return keys_; }

 private:
  Datastore() = default;
  DatastoreInfo info_;
  std::vector<float> keys_;
  std::vector<int32_t> values_;
  std::unique_ptr<faiss::Index> index_;
};

// The kind of folder a datastore is among those Scion owns (scion/owned.h): its marker says so.
inline constexpr const char* kOwnedKind = "datastore";

// Why a build may not replace what is at `path`, or "" when it may: nothing there, an empty
// folder, or a datastore Scion wrote (its marker, or an earlier Scion's complete manifest).
// Anything else is the user's (validation refuses it, and so does DatastoreWriter).
std::string replace_problem(const std::string& path);
inline constexpr const char* kReplaceHint = "name a new folder for the datastore, or move the files away";

// Reads a manifest without opening the rest (validation); false when `path` holds none.
// Throws naming the manifest for one this Scion did not write: an unknown key, a metric
// outside ip/l2, a size that is not positive, a file list other than the datastore's.
bool read_manifest(const std::string& path, DatastoreInfo& info);

}  // namespace scion::memory
