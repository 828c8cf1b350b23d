#include "datastore.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <signal.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "scion/error.h"
#include "scion/files.h"
#include "scion/sizes.h"
#include "scion/owned.h"
#include "scion/threads.h"

namespace fs = std::filesystem;

// GCC's OpenMP runtime (libgomp, linked by name: top-level CMakeLists.txt); no omp.h, which a
// clang build would take from its own runtime.
extern "C" void omp_set_num_threads(int);

namespace scion::memory {

namespace {
// 2: the manifest names every file with its size and XXH3-64 hash.
constexpr int kFormat = 2;
const char* const kFiles[] = {"keys.f32", "vals.i32", "index.faiss"};

faiss::MetricType metric_of(const std::string& m) {
  SCION_CHECK(m == "ip" || m == "l2", "datastore: metric must be ip or l2, got '", m, "'");
  return m == "ip" ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
}

Json info_json(const DatastoreInfo& i) {
  Json j;
  j["format"] = Json(int64_t(kFormat));
  j["complete"] = Json(true);
  j["fingerprint"] = Json(i.fingerprint);
  j["model_config"] = i.model_config;
  j["size"] = Json(i.size);
  j["dim"] = Json(i.dim);
  j["seq_len"] = Json(i.seq_len);
  j["index"] = Json(i.index);
  j["metric"] = Json(i.metric);
  Json files = Json::object();
  for (const auto& [name, d] : i.files) {
    Json f;
    f["bytes"] = Json(d.bytes);
    f["xxh3"] = Json(d.xxh3);
    files[name] = f;
  }
  j["files"] = files;
  return j;
}

// The size and hash of a file, read in pieces.
DatastoreInfo::FileDigest digest_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "datastore: cannot open '", path, "'");
  XXH3_state_t* st = XXH3_createState();
  SCION_CHECK(st != nullptr, "datastore: out of memory hashing '", path, "'");
  XXH3_64bits_reset(st);
  std::vector<char> buf(size_t(1) << 20);
  int64_t bytes = 0;
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    const auto n = in.gcount();
    if (n <= 0) break;
    XXH3_64bits_update(st, buf.data(), size_t(n));
    bytes += n;
  }
  const XXH64_hash_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return {bytes, hex};
}

// A file that is not the one the manifest names (replaced, truncated, damaged) is refused
// before a byte of it is used.
void verify(const std::string& path, const DatastoreInfo::FileDigest& want, const DatastoreInfo::FileDigest& got) {
  SCION_CHECK(want.bytes == got.bytes && want.xxh3 == got.xxh3, "datastore: '", path,
              "' is not the file its manifest names: expected ", want.bytes, " bytes of XXH3 ", want.xxh3, ", found ",
              got.bytes, " bytes of XXH3 ", got.xxh3,
              "; hint: it was changed or damaged after the build; rebuild the datastore (memory.datastore)");
}

template <class T>
void write_vector(const std::string& path, const std::vector<T>& v) {
  files::AtomicWriter w(path);
  w.write(v.data(), v.size() * sizeof(T));
  w.commit();
}

template <class T>
std::vector<T> read_vector(const std::string& path, int64_t n, const DatastoreInfo::FileDigest& want) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "datastore: cannot open '", path, "'");
  const int64_t bytes = checked_mul(n, int64_t(sizeof(T)), "datastore: the bytes of a file its manifest names");
  SCION_CHECK(bytes == want.bytes, "datastore: the manifest of '", path, "' names ", want.bytes, " bytes, its sizes ", bytes,
              "; hint: rebuild the datastore");
  std::error_code ec;
  const auto on_disk = std::filesystem::file_size(path, ec);
  SCION_CHECK(!ec && int64_t(on_disk) == bytes, "datastore: '", path, "' does not hold the ", n,
              " entries its manifest names; hint: rebuild the datastore");
  std::vector<T> v(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(bytes));
  SCION_CHECK(in.gcount() == std::streamsize(bytes) && in.peek() == EOF, "datastore: '", path,
              "' does not hold the ", n, " entries its manifest names; hint: rebuild the datastore");
  verify(path, want, {bytes, xxh3_hex(v.data(), size_t(bytes))});
  return v;
}

// The pid of a build's temporary sibling "<base>.partial.<pid>" or "<base>.old.<pid>", or 0.
pid_t temporary_of(const std::string& name, const std::string& base) {
  for (const char* kind : {".partial.", ".old."}) {
    const std::string prefix = base + kind;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
    return pid_t(std::stol(digits));
  }
  return 0;
}

// Removes the temporaries of earlier builds at `path` whose process is gone (a build killed
// before it could clean up), when they hold nothing but a build's files: the datastore's
// files, its manifest and their atomic writers' temporaries ("<file>.tmp<pid>").
void remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path parent = target.has_parent_path() ? target.parent_path() : ".";
  const std::string base = target.filename().string();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    const pid_t pid = temporary_of(e.path().filename().string(), base);
    if (pid <= 0 || pid == ::getpid() || e.is_symlink(ec) || !e.is_directory(ec)) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its build may still run
    bool ours = true;
    for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
      const std::string n = f.path().filename().string();
      bool known = f.is_regular_file(ec) && !f.is_symlink(ec);
      bool named = n == "manifest.json" || n.rfind("manifest.json.tmp", 0) == 0 || n == owned::kMarkerFile;
      for (const char* k : kFiles) named = named || n == k || n.rfind(std::string(k) + ".tmp", 0) == 0;
      ours = ours && known && named;
    }
    if (ours && !ec) std::filesystem::remove_all(e.path(), ec);
  }
}

// FAISS parallelises with OpenMP: keep it to the run's thread count.
void limit_threads() { omp_set_num_threads(std::max(1, num_threads())); }
}  // namespace

std::string xxh3_hex(const void* data, size_t n) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits(data, n)));
  return hex;
}

std::string model_fingerprint(const nn::Module& m) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  };
  for (const auto& [name, t] : m.named_parameters()) {
    mix(name.data(), name.size());
    for (int64_t d : t.shape()) mix(&d, sizeof d);
    Tensor c = t.detach().to(Device::cpu()).contiguous();
    mix(c.raw_data(), c.nbytes());
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool read_manifest(const std::string& path, DatastoreInfo& info) {
  const std::string mf = path + "/manifest.json";
  if (!fs::is_regular_file(mf)) return false;
  std::ifstream in(mf);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const Json j = json_parse(text, mf);
  SCION_CHECK(j.is_object(), "datastore: '", mf, "' is not a JSON object; hint: rebuild the datastore");
  if (!j.contains("complete") || !j.at("complete").is_boolean() || !json_bool(j.at("complete"))) return false;
  // Only what this Scion writes: a key or value it does not know is a manifest of something else.
  const std::vector<std::string> keys = {"format", "complete", "fingerprint", "model_config", "size",
                                         "dim",    "seq_len",  "index",       "metric",       "files"};
  for (const auto& [k, v] : j.items())
    SCION_CHECK(std::find(keys.begin(), keys.end(), k) != keys.end(), "datastore: '", mf, "' has an unknown key '", k,
                "'; hint: a datastore this Scion did not write; rebuild it");
  for (const auto& k : keys)
    SCION_CHECK(j.contains(k), "datastore: '", mf, "' has no '", k, "'; hint: rebuild the datastore");
  SCION_CHECK(j.at("format").is_number_integer() && json_int(j.at("format")) == kFormat, "datastore: '", mf,
              "' has format ", json_dump(j.at("format")), ", this Scion reads ", kFormat,
              " (format 1 had no checksums); hint: rebuild the datastore");
  info.fingerprint = json_string(j.at("fingerprint"));
  info.model_config = j.at("model_config");
  info.size = json_int(j.at("size"));
  info.dim = json_int(j.at("dim"));
  info.seq_len = json_int(j.at("seq_len"));
  info.index = json_string(j.at("index"));
  info.metric = json_string(j.at("metric"));
  SCION_CHECK(info.size > 0 && info.dim > 0 && info.seq_len > 0, "datastore: '", mf, "' has size ", info.size, ", dim ",
              info.dim, " and seq_len ", info.seq_len, "; each must be positive; hint: rebuild the datastore");
  checked_mul(checked_mul(info.size, info.dim, "datastore: the keys of a manifest"), 4, "datastore: the keys of a manifest");
  SCION_CHECK(info.metric == "ip" || info.metric == "l2", "datastore: '", mf, "' has metric '", info.metric,
              "', not ip or l2; hint: rebuild the datastore");
  SCION_CHECK(!info.index.empty(), "datastore: '", mf, "' names no index; hint: rebuild the datastore");
  const Json& files = j.at("files");
  SCION_CHECK(files.is_object() && files.size() == std::size(kFiles), "datastore: '", mf,
              "' must name keys.f32, vals.i32 and index.faiss in 'files'; hint: rebuild the datastore");
  info.files.clear();
  for (const char* name : kFiles) {
    SCION_CHECK(files.contains(name) && files.at(name).is_object(), "datastore: '", mf, "' does not name '", name,
                "' in 'files'; hint: rebuild the datastore");
    const Json& f = files.at(name);
    SCION_CHECK(f.size() == 2 && f.contains("bytes") && f.contains("xxh3"), "datastore: '", mf, "': files.", name,
                " must be { bytes, xxh3 }; hint: rebuild the datastore");
    const int64_t bytes = json_int(f.at("bytes"));
    const std::string h = json_string(f.at("xxh3"));
    SCION_CHECK(bytes >= 0 && h.size() == 16 && h.find_first_not_of("0123456789abcdef") == std::string::npos,
                "datastore: '", mf, "': files.", name, " has ", bytes, " bytes and hash '", h,
                "' (16 hex digits expected); hint: rebuild the datastore");
    info.files[name] = {bytes, h};
  }
  return true;
}

std::string replace_problem(const std::string& path) {
  std::error_code ec;
  const auto st = fs::symlink_status(path, ec);
  if (!fs::exists(st)) return "";
  if (!fs::is_directory(fs::status(path, ec)))
    return "'" + path + "' is " + files::kind_of(path) + ", not a datastore folder";
  if (owned::has_marker(path, kOwnedKind)) return "";
  DatastoreInfo earlier;  // a datastore of an earlier Scion (before markers): its complete manifest
  try {
    if (read_manifest(path, earlier)) return "";
  } catch (const std::exception&) {
  }
  if (fs::is_empty(path, ec)) return "";
  return "'" + path + "' is a folder Scion did not write as a datastore (no " + std::string(owned::kMarkerFile) +
         " marker, no complete manifest.json), and building the datastore would replace it";
}

DatastoreWriter::DatastoreWriter(std::string path, DatastoreInfo info) : path_(std::move(path)), info_(std::move(info)) {
  SCION_CHECK(info_.dim > 0, "datastore: keys need a positive dimension");
  metric_of(info_.metric);
  while (!path_.empty() && path_.back() == '/') path_.pop_back();
  SCION_CHECK(!path_.empty(), "datastore: empty path");
  const std::string problem = replace_problem(path_);
  SCION_CHECK(problem.empty(), "datastore: ", problem, " (hint: ", kReplaceHint, ")");
  tmp_ = path_ + ".partial." + std::to_string(::getpid());
  remove_stale_temporaries(path_);
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  SCION_CHECK(!ec, "datastore: cannot create '", tmp_, "': ", ec.message());
}

DatastoreWriter::~DatastoreWriter() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void DatastoreWriter::add(const float* keys, const int32_t* values, int64_t n) {
  keys_.insert(keys_.end(), keys, keys + n * info_.dim);
  values_.insert(values_.end(), values, values + n);
}

DatastoreInfo DatastoreWriter::finish() {
  SCION_CHECK(!done_, "datastore: finish() called twice");
  info_.size = int64_t(values_.size());
  SCION_CHECK(info_.size > 0, "datastore: no keys were added");
  limit_threads();
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::index_factory(int(info_.dim), info_.index.c_str(), metric_of(info_.metric)));
  } catch (const std::exception& e) {
    throw Error("datastore: FAISS does not understand index '" + info_.index + "': " + e.what() +
                "; hint: Flat (exact), IVF<lists>,Flat or IVF<lists>,PQ<bytes>");
  }
  if (!index->is_trained) {
    try {
      index->train(info_.size, keys_.data());
    } catch (const std::exception& e) {
      throw Error("datastore: training the '" + info_.index + "' index on " + std::to_string(info_.size) +
                  " keys failed: " + e.what() + "; hint: fewer IVF lists, or Flat");
    }
  }
  index->add(info_.size, keys_.data());
  write_vector(tmp_ + "/keys.f32", keys_);
  write_vector(tmp_ + "/vals.i32", values_);
  faiss::write_index(index.get(), (tmp_ + "/index.faiss").c_str());
  info_.files["keys.f32"] = {int64_t(keys_.size() * sizeof(float)), xxh3_hex(keys_.data(), keys_.size() * sizeof(float))};
  info_.files["vals.i32"] = {int64_t(values_.size() * sizeof(int32_t)),
                             xxh3_hex(values_.data(), values_.size() * sizeof(int32_t))};
  info_.files["index.faiss"] = digest_file(tmp_ + "/index.faiss");
  owned::write_marker(tmp_, kOwnedKind);
  files::write_atomic(tmp_ + "/manifest.json", json_dump(info_json(info_)));
  // Into place: an old datastore moves aside first (a folder cannot be renamed over a
  // non-empty one), then goes once the new one is there.
  std::error_code ec;
  const std::string old = path_ + ".old." + std::to_string(::getpid());
  const bool had = fs::exists(path_);
  if (had) {
    fs::rename(path_, old, ec);
    SCION_CHECK(!ec, "datastore: cannot move the old '", path_, "' aside: ", ec.message());
  }
  fs::rename(tmp_, path_, ec);
  SCION_CHECK(!ec, "datastore: cannot rename '", tmp_, "' to '", path_, "': ", ec.message());
  done_ = true;
  if (had) fs::remove_all(old, ec);
  return info_;
}

std::unique_ptr<Datastore> Datastore::open(const std::string& path, const std::string& fingerprint) {
  std::unique_ptr<Datastore> d(new Datastore());
  SCION_CHECK(read_manifest(path, d->info_), "datastore: '", path, "' is not a complete datastore (no finished "
              "manifest.json; a build that was stopped leaves none); hint: build it with memory.datastore "
              "(see README: kNN-LM)");
  SCION_CHECK(fingerprint.empty() || fingerprint == d->info_.fingerprint, "datastore: '", path,
              "' was built by a different model (fingerprint ", d->info_.fingerprint, ", config ",
              json_dump(d->info_.model_config), ") than the one evaluated (fingerprint ", fingerprint,
              "); hint: rebuild the datastore with this model's weights");
  d->keys_ = read_vector<float>(path + "/keys.f32", d->info_.size * d->info_.dim, d->info_.files.at("keys.f32"));
  d->values_ = read_vector<int32_t>(path + "/vals.i32", d->info_.size, d->info_.files.at("vals.i32"));
  // FAISS trusts its file: a damaged one is refused before FAISS reads it.
  verify(path + "/index.faiss", d->info_.files.at("index.faiss"), digest_file(path + "/index.faiss"));
  d->index_.reset(faiss::read_index((path + "/index.faiss").c_str()));
  SCION_CHECK(d->index_->ntotal == d->info_.size && d->index_->d == d->info_.dim, "datastore: '", path,
              "/index.faiss' holds ", d->index_->ntotal, " keys of ", d->index_->d, " dimensions, the manifest ",
              d->info_.size, " of ", d->info_.dim);
  return d;
}

Datastore::~Datastore() = default;

void Datastore::set_nprobe(int64_t nprobe) {
  SCION_CHECK(nprobe >= 1, "datastore: nprobe must be >= 1, got ", nprobe);
  if (info_.index.rfind("IVF", 0) == 0 || info_.index.find(",IVF") != std::string::npos)
    faiss::ParameterSpace().set_index_parameter(index_.get(), "nprobe", double(nprobe));
}

void Datastore::search(const float* queries, int64_t n, int64_t k, float* sims, int64_t* ids, bool exact_l2) const {
  SCION_CHECK(k >= 1 && k <= info_.size, "datastore: k = ", k, " neighbours asked of a datastore that holds ", info_.size,
              " keys; hint: k <= ", info_.size);
  limit_threads();
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t));
  index_->search(n, queries, k, sims, reinterpret_cast<faiss::Index::idx_t*>(ids));
  // FAISS's L2 distances grow with distance: make both metrics "larger is closer".
  if (info_.metric != "l2") return;
  const int64_t D = info_.dim;
  for (int64_t q = 0; q < n; ++q)
    for (int64_t r = 0; r < k; ++r) {
      const int64_t i = q * k + r, id = ids[i];
      if (!exact_l2 || id < 0) {
        sims[i] = -sims[i];
        continue;
      }
      const float* a = queries + q * D;
      const float* b = keys_.data() + id * D;
      double d2 = 0;
      for (int64_t c = 0; c < D; ++c) d2 += (double(a[c]) - b[c]) * (double(a[c]) - b[c]);
      sims[i] = float(-d2);
    }
}

}  // namespace scion::memory
