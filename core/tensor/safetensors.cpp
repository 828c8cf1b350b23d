#include "scion/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "scion/autograd.h"
#include "scion/json.h"

namespace scion::safetensors {

namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u16: return "U16";
    case DType::u8: return "U8";
  }
  return "?";
}

bool from_st_dtype(const std::string& s, DType& t) {
  static const std::map<std::string, DType> m = {{"F32", DType::f32}, {"BF16", DType::bf16}, {"F16", DType::f16},
                                                 {"I32", DType::i32}, {"I64", DType::i64},   {"U16", DType::u16},
                                                 {"U8", DType::u8},   {"BOOL", DType::u8}};
  auto it = m.find(s);
  if (it == m.end()) return false;
  t = it->second;
  return true;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::path tmp_path = dir / target.filename();
  tmp_path += ".tmp" + std::to_string(::getpid());
  const std::string tmp = tmp_path.string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SCION_CHECK(fd >= 0, "cannot create '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("writing '" + tmp + "' failed: " + std::strerror(e));
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error("flushing '" + tmp + "' failed: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(e));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
}

void save(const std::string& path, const Named& tensors, const Metadata& metadata) {
  NoGradGuard no_grad;
  Json header;
  if (!metadata.empty()) {
    Json::object_t md;
    for (const auto& [k, v] : metadata) md[k] = Json(v);
    header["__metadata__"] = Json(std::move(md));
  }
  std::vector<Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SCION_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined (writing ", path, ")");
    SCION_CHECK(!header.contains(name), "safetensors: tensor name '", name, "' appears twice (writing ", path, ")");
    Tensor h = t.detach().to(Device::cpu()).contiguous();
    Json::array_t shape;
    for (int64_t d : h.shape()) shape.push_back(Json(d));
    Json entry;
    entry["dtype"] = Json(st_dtype(h.dtype()));
    entry["shape"] = Json(std::move(shape));
    entry["data_offsets"] = Json(Json::array_t{Json(uint64_t(offset)), Json(uint64_t(offset + h.nbytes()))});
    header[name] = std::move(entry);
    offset += h.nbytes();
    host.push_back(h);
  }
  std::string head = header.is_null() ? "{}" : json_dump(header);
  while ((head.size() + 8) % 8 != 0) head += ' ';  // align the data to 8 bytes
  std::string bytes(8, '\0');
  const uint64_t n = head.size();
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((n >> (8 * i)) & 0xff);
  bytes += head;
  bytes.reserve(bytes.size() + offset);
  for (const Tensor& h : host) bytes.append(static_cast<const char*>(h.raw_data()), h.nbytes());
  write_file_atomic(path, bytes);
}

Loaded load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), "safetensors: cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SCION_CHECK(bytes.size() >= 8, "safetensors: '", path, "' is ", bytes.size(), " bytes, too short for a header");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  SCION_CHECK(n <= bytes.size() - 8, "safetensors: '", path, "' declares a ", n, "-byte header but holds only ",
              bytes.size() - 8, " bytes after the length (truncated, or not a safetensors file)");
  const Json header = json_parse(std::string_view(bytes).substr(8, n), path + " (header)");
  SCION_CHECK(header.is_object(), "safetensors: '", path, "': the header is not a JSON object");
  const size_t data_start = 8 + size_t(n), data_size = bytes.size() - data_start;
  Loaded out;
  std::vector<std::pair<size_t, std::pair<std::string, Tensor>>> ordered;
  for (const auto& [name, e] : json_object(header)) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : json_object(e)) out.metadata[k] = v.is_string() ? json_string(v) : json_dump(v);
      continue;
    }
    SCION_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
                "safetensors: '", path, "': entry '", name, "' needs dtype, shape and data_offsets");
    DType dt;
    SCION_CHECK(from_st_dtype(json_string(e.at("dtype")), dt), "safetensors: '", path, "': tensor '", name,
                "' has dtype ", json_string(e.at("dtype")), ", which Scion does not read (F32, BF16, F16, I32, I64, U16, U8, BOOL)");
    Shape shape;
    for (const Json& d : json_array(e.at("shape"))) shape.push_back(json_int(d));
    const size_t b = size_t(json_int(e.at("data_offsets").at(0))), en = size_t(json_int(e.at("data_offsets").at(1)));
    const size_t want = size_t(shape_numel(shape)) * dtype_size(dt);
    SCION_CHECK(b <= en && en <= data_size && en - b == want, "safetensors: '", path, "': tensor '", name,
                "' has offsets [", b, ", ", en, ") but needs ", want, " bytes inside ", data_size, " data bytes");
    Tensor t = Tensor::empty(shape, dt);
    if (want) std::memcpy(t.raw_data(), bytes.data() + data_start + b, want);
    ordered.push_back({b, {name, t}});
  }
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < ordered.size(); ++i) {
    const auto& prev = ordered[i - 1];
    SCION_CHECK(prev.first + prev.second.second.nbytes() <= ordered[i].first, "safetensors: '", path, "': tensors '",
                prev.second.first, "' and '", ordered[i].second.first, "' overlap");
  }
  for (auto& o : ordered) out.tensors.push_back(std::move(o.second));
  return out;
}

}  // namespace scion::safetensors
