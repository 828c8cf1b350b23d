#include "datastore.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "scion/error.h"
#include "scion/files.h"
#include "scion/owned.h"
#include "scion/threads.h"

namespace fs = std::filesystem;

// GCC's OpenMP runtime (libgomp, linked by name: top-level CMakeLists.txt); no omp.h, which a
// clang build would take from its own runtime.
extern "C" void omp_set_num_threads(int);

namespace scion::memory {

namespace {
constexpr int kFormat = 1;

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
  return j;
}

template <class T>
void write_vector(const std::string& path, const std::vector<T>& v) {
  files::AtomicWriter w(path);
  w.write(v.data(), v.size() * sizeof(T));
  w.commit();
}

template <class T>
std::vector<T> read_vector(const std::string& path, int64_t n) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "datastore: cannot open '", path, "'");
  std::vector<T> v(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
  SCION_CHECK(in.gcount() == std::streamsize(v.size() * sizeof(T)) && in.peek() == EOF, "datastore: '", path,
              "' does not hold the ", n, " entries its manifest names; hint: rebuild the datastore");
  return v;
}

// FAISS parallelises with OpenMP: keep it to the run's thread count.
void limit_threads() { omp_set_num_threads(std::max(1, num_threads())); }
}  // namespace

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
  if (!j.contains("complete") || !json_bool(j.at("complete"))) return false;
  SCION_CHECK(json_int(j.at("format")) == kFormat, "datastore: '", mf, "' has format ", json_int(j.at("format")),
              ", this Scion reads ", kFormat);
  info.fingerprint = json_string(j.at("fingerprint"));
  info.model_config = j.at("model_config");
  info.size = json_int(j.at("size"));
  info.dim = json_int(j.at("dim"));
  info.seq_len = json_int(j.at("seq_len"));
  info.index = json_string(j.at("index"));
  info.metric = json_string(j.at("metric"));
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
  d->keys_ = read_vector<float>(path + "/keys.f32", d->info_.size * d->info_.dim);
  d->values_ = read_vector<int32_t>(path + "/vals.i32", d->info_.size);
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
