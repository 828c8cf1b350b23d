#include "scion/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "scion/autograd.h"
#include "scion/files.h"
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

Loaded load_impl(const std::string& path, bool with_tensors);

}  // namespace

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
  // Streamed tensor by tensor: no second copy of the whole file in memory.
  files::AtomicWriter out(path);
  out.write(bytes.data(), bytes.size());
  for (const Tensor& h : host) out.write(h.raw_data(), h.nbytes());
  out.commit();
}

// The file is memory-mapped, not read into a buffer: each tensor is copied from the map
// and its pages are released straight after, so loading holds the tensors and little more
// (reading into a buffer first held the whole file twice). load_metadata() touches only the
// header's pages.
Loaded load(const std::string& path) { return load_impl(path, true); }

Metadata load_metadata(const std::string& path) { return load_impl(path, false).metadata; }

namespace {
Loaded load_impl(const std::string& path, bool with_tensors) {
  const files::MappedFile map(path, "safetensors");
  const std::string_view bytes(map.data(), map.size());
  SCION_CHECK(bytes.size() >= 8, "safetensors: '", path, "' is ", bytes.size(), " bytes, too short for a header");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  SCION_CHECK(n <= bytes.size() - 8, "safetensors: '", path, "' declares a ", n, "-byte header but holds only ",
              bytes.size() - 8, " bytes after the length (truncated, or not a safetensors file)");
  const Json header = json_parse(bytes.substr(8, n), path + " (header)");
  SCION_CHECK(header.is_object(), "safetensors: '", path, "': the header is not a JSON object");
  const size_t data_start = 8 + size_t(n), data_size = bytes.size() - data_start;
  Loaded out;
  std::vector<std::pair<size_t, std::pair<std::string, Tensor>>> ordered;
  for (const auto& [name, e] : json_object(header)) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : json_object(e)) out.metadata[k] = v.is_string() ? json_string(v) : json_dump(v);
      continue;
    }
    if (!with_tensors) continue;  // load_metadata: the tensors' entries are not looked at
    SCION_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
                "safetensors: '", path, "': entry '", name, "' needs dtype, shape and data_offsets");
    DType dt;
    SCION_CHECK(from_st_dtype(json_string(e.at("dtype")), dt), "safetensors: '", path, "': tensor '", name,
                "' has dtype ", json_string(e.at("dtype")), ", which Scion does not read (F32, BF16, F16, I32, I64, U16, U8, BOOL)");
    Shape shape;
    for (const Json& d : json_array(e.at("shape"))) shape.push_back(json_int(d));
    // The element and byte counts from the header are checked before they are trusted: a
    // negative dimension, or a product that wraps around (2^32 x 2^32 is 0 in int64), would
    // otherwise match small offsets and make a tensor larger than its storage.
    auto shape_text = [&] {
      std::string t = "[";
      for (size_t i = 0; i < shape.size(); ++i) t += (i ? ", " : "") + std::to_string(shape[i]);
      return t + "]";
    };
    uint64_t numel = 1;
    bool too_many = false, empty = false;
    for (int64_t d : shape) {
      SCION_CHECK(d >= 0, "safetensors: '", path, "': tensor '", name, "' has a negative dimension in shape ", shape_text());
      if (d == 0) empty = true;
      else if (numel > (uint64_t(1) << 62) / uint64_t(d)) too_many = true;
      else numel *= uint64_t(d);
    }
    if (empty) numel = 0, too_many = false;  // a zero dimension: an empty tensor, whatever the others
    SCION_CHECK(!too_many && numel <= ((uint64_t(1) << 62) / dtype_size(dt)), "safetensors: '", path, "': tensor '",
                name, "' has shape ", shape_text(), ": too many elements for any file");
    const Json& offsets = e.at("data_offsets");
    SCION_CHECK(offsets.is_array() && offsets.size() == 2 && offsets.at(0).is_number_unsigned() &&
                    offsets.at(1).is_number_unsigned(),
                "safetensors: '", path, "': tensor '", name, "' needs data_offsets = [begin, end], two non-negative integers, got ",
                json_dump(offsets));
    const size_t b = size_t(offsets.at(0).get<uint64_t>()), en = size_t(offsets.at(1).get<uint64_t>());
    const size_t want = size_t(numel) * dtype_size(dt);
    SCION_CHECK(b <= en && en <= data_size && en - b == want, "safetensors: '", path, "': tensor '", name,
                "' has offsets [", b, ", ", en, ") but needs ", want, " bytes inside ", data_size, " data bytes");
    Tensor t = Tensor::empty(shape, dt);
    // In 8 MiB pieces, each released once copied: a large tensor never has all its file pages
    // resident next to its copy.
    constexpr size_t kPiece = size_t(8) << 20;
    for (size_t o = 0; o < want; o += kPiece) {
      const size_t len = std::min(kPiece, want - o);
      std::memcpy(static_cast<char*>(t.raw_data()) + o, bytes.data() + data_start + b + o, len);
      map.release(data_start + b + o, len);
    }
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

}  // namespace

}  // namespace scion::safetensors
