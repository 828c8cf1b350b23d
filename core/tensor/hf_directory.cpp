#include "scion/hf_directory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "scion/autograd.h"
#include "scion/error.h"
#include "scion/files.h"

namespace scion::hf {

namespace fs = std::filesystem;

namespace {

std::string in_dir(const std::string& dir, const std::string& file) { return (fs::path(dir) / file).string(); }

std::string read_text(const std::string& path, const std::string& who) {
  std::ifstream in(path, std::ios::binary);
  SCION_CHECK(in.good(), who, ": cannot open '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Widened to f32 where stored narrower; `where` names the shard in errors.
Tensor master_weight(const std::string& name, const Tensor& t, const std::string& where) {
  if (t.dtype() == DType::f32) return t;
  SCION_CHECK(t.dtype() == DType::bf16 || t.dtype() == DType::f16, "Hugging Face directory: tensor '", name, "' in '",
              where, "' is ", dtype_name(t.dtype()),
              "; Scion reads model weights stored as F32, BF16 or F16 (convert the file, e.g. with torch, to one of them)");
  return t.to(DType::f32);
}

bool is_skipped_buffer(const std::string& name, const Tensor& t) {
  const std::string suffix = "position_ids";
  return !is_floating(t.dtype()) && name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void fsync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

fs::path absolute_clean(const std::string& p) { return fs::weakly_canonical(fs::absolute(p)); }

// Whether `inner` is `outer` or lies inside it (paths made absolute and canonical).
bool within(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin(), i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (i == inner.end()) return false;
    if (o->empty()) continue;  // a trailing separator
    if (*o != *i) return false;
  }
  return true;
}

}  // namespace

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
      "tokenizer.model", "vocab.json",           "merges.txt",              "vocab.txt",
      "added_tokens.json"};
  return names;
}

bool is_model_directory(const std::string& path) {
  std::error_code ec;
  return !path.empty() && fs::is_directory(path, ec) && fs::is_regular_file(in_dir(path, kConfigFile), ec);
}

Json read_config(const std::string& dir) {
  const std::string path = in_dir(dir, kConfigFile);
  std::error_code ec;
  SCION_CHECK(fs::is_directory(dir, ec), "Hugging Face directory: '", dir, "' is not a folder");
  SCION_CHECK(fs::is_regular_file(path, ec), "Hugging Face directory '", dir, "' has no ", kConfigFile,
              " (a model directory holds config.json next to model.safetensors; save one with save_pretrained)");
  Json config = json_parse(read_text(path, "Hugging Face directory"), path);
  SCION_CHECK(config.is_object(), "Hugging Face directory: '", path, "' is not a JSON object");
  return config;
}

std::map<std::string, std::string> parse_index(const Json& index, const std::string& source) {
  SCION_CHECK(index.is_object() && index.contains("weight_map") && index.at("weight_map").is_object(), source,
              ": needs an object \"weight_map\" {tensor name: shard file}");
  std::map<std::string, std::string> out;
  for (const auto& [name, file] : index.at("weight_map").items()) {
    SCION_CHECK(file.is_string(), source, ": weight_map[\"", name, "\"] is ", file.type_name(), ", not a file name");
    const std::string& f = json_string(file);
    SCION_CHECK(!f.empty() && f.find('/') == std::string::npos && f.find('\\') == std::string::npos && f != "." &&
                    f != "..",
                source, ": weight_map[\"", name, "\"] = \"", f, "\" is not a file name inside the directory");
    out.emplace(name, f);
  }
  SCION_CHECK(!out.empty(), source, ": weight_map lists no tensor");
  return out;
}

Directory read(const std::string& dir) {
  NoGradGuard no_grad;
  Directory d;
  d.path = dir;
  d.config = read_config(dir);
  std::error_code ec;
  for (const std::string& f : tokenizer_file_names())
    if (fs::is_regular_file(in_dir(dir, f), ec)) d.tokenizer_files.push_back(in_dir(dir, f));

  const std::string single = in_dir(dir, kWeightsFile), index_path = in_dir(dir, kIndexFile);
  // Shards in the order of their first tensor in the index; the index's shard of each name.
  std::vector<std::string> shards;
  std::map<std::string, std::string> shard_of;
  if (fs::is_regular_file(index_path, ec)) {
    shard_of = parse_index(json_parse(read_text(index_path, "Hugging Face directory"), index_path), index_path);
    std::set<std::string> seen;
    for (const auto& [name, file] : shard_of)
      if (seen.insert(file).second) shards.push_back(file);
    for (const std::string& s : shards)
      SCION_CHECK(fs::is_regular_file(in_dir(dir, s), ec), "Hugging Face directory '", dir, "': ", kIndexFile,
                  " names shard '", s, "', which is missing (download every shard the index lists)");
  } else {
    SCION_CHECK(fs::is_regular_file(single, ec), "Hugging Face directory '", dir, "' has no weights: neither ",
                kWeightsFile, " nor ", kIndexFile,
                " (PyTorch .bin weights are not read: save with safe_serialization=True)");
    shards.push_back(kWeightsFile);
  }

  std::set<std::string> found;
  for (const std::string& shard : shards) {
    const std::string path = in_dir(dir, shard);
    safetensors::Loaded loaded;
    try {
      loaded = safetensors::load(path);
    } catch (const Error& e) {
      throw Error("Hugging Face directory '" + dir + "': cannot read shard '" + shard + "': " + e.what() +
                  " (a truncated download? fetch the file again)");
    }
    for (auto& [name, t] : loaded.tensors) {
      if (!shard_of.empty()) {
        auto it = shard_of.find(name);
        SCION_CHECK(it != shard_of.end(), "Hugging Face directory '", dir, "': shard '", shard, "' holds tensor '", name,
                    "', which ", kIndexFile, " does not list (the index and the shards disagree)");
        SCION_CHECK(it->second == shard, "Hugging Face directory '", dir, "': tensor '", name, "' is in shard '", shard,
                    "' but ", kIndexFile, " places it in '", it->second,
                    "' (a tensor in two shards, or a stale index)");
      }
      SCION_CHECK(found.insert(name).second, "Hugging Face directory '", dir, "': tensor '", name,
                  "' appears in more than one shard");
      if (is_skipped_buffer(name, t)) {
        t = Tensor();
        continue;
      }
      // Converted and the stored tensor dropped one at a time: never a second copy of the shard.
      Tensor master = master_weight(name, t, path);
      t = Tensor();
      d.tensors.emplace_back(name, std::move(master));
    }
  }
  for (const auto& [name, shard] : shard_of)
    SCION_CHECK(found.count(name), "Hugging Face directory '", dir, "': ", kIndexFile, " places tensor '", name,
                "' in shard '", shard, "', which does not hold it (a stale index, or a shard from another model)");
  SCION_CHECK(!d.tensors.empty(), "Hugging Face directory '", dir, "': the weights hold no tensor");
  return d;
}

void check_output_folder(const std::string& dir, const std::vector<std::string>& inputs) {
  SCION_CHECK(!dir.empty(), "Hugging Face export: no output folder given");
  std::error_code ec;
  const fs::path out = absolute_clean(dir);
  if (fs::exists(out, ec)) {
    SCION_CHECK(fs::is_directory(out, ec), "Hugging Face export: '", dir, "' exists and is not a folder (choose a new --out)");
    SCION_CHECK(fs::is_empty(out, ec), "Hugging Face export: '", dir,
                "' exists and is not empty; nothing is overwritten (choose a new or empty --out)");
  }
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    const fs::path i = absolute_clean(in);
    SCION_CHECK(!within(out, i) && !within(i, out), "Hugging Face export: the output '", dir,
                "' would be onto or inside the input '", in, "' (or hold it); choose an --out elsewhere");
  }
}

uint64_t parse_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, uint64_t> units = {
      {"", 1},         {"B", 1},          {"KB", 1000ull},         {"MB", 1000'000ull},
      {"GB", 1000'000'000ull}, {"KIB", 1ull << 10}, {"MIB", 1ull << 20}, {"GIB", 1ull << 30}};
  auto u = units.find(unit);
  SCION_CHECK(i > 0 && i <= 12 && u != units.end(), "size '", text,
              "': write a whole number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. 5GB");
  const uint64_t n = std::stoull(text.substr(0, i));
  SCION_CHECK(n > 0, "size '", text, "' is zero");
  return n * u->second;
}

void write(const std::string& dir, const Json& config, const safetensors::Named& tensors, const WriteOptions& options) {
  NoGradGuard no_grad;
  SCION_CHECK(options.dtype == DType::f32 || options.dtype == DType::bf16, "Hugging Face export: dtype ",
              dtype_name(options.dtype), " is not written (f32 or bf16)");
  SCION_CHECK(options.max_shard_bytes > 0, "Hugging Face export: max shard size is zero");
  SCION_CHECK(config.is_object(), "Hugging Face export: the config is not a JSON object");
  check_output_folder(dir, options.inputs);
  std::error_code ec;
  const fs::path out = absolute_clean(dir);
  std::set<std::string> extra_names;
  for (const std::string& f : options.extra_files) {
    SCION_CHECK(fs::is_regular_file(f, ec), "Hugging Face export: extra file '", f, "' is missing or not a file");
    const std::string name = fs::path(f).filename().string();
    SCION_CHECK(name != kConfigFile && name != kIndexFile && name.rfind("model", 0) != 0,
                "Hugging Face export: extra file '", f, "' would replace the model's own ", name);
    SCION_CHECK(extra_names.insert(name).second, "Hugging Face export: two extra files are named '", name, "'");
  }
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    SCION_CHECK(t.defined() && is_floating(t.dtype()), "Hugging Face export: tensor '", name,
                "' is not a floating-point tensor");
    SCION_CHECK(names.insert(name).second, "Hugging Face export: tensor '", name, "' is named twice");
  }

  // Shards filled in order: a tensor that would take the current shard past the limit starts
  // the next one (transformers' rule); a tensor larger than the limit is alone in its shard.
  const size_t elem = dtype_size(options.dtype);
  std::vector<std::vector<size_t>> groups(1);
  uint64_t in_group = 0, total = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const uint64_t bytes = uint64_t(tensors[k].second.numel()) * elem;
    if (!groups.back().empty() && in_group + bytes > options.max_shard_bytes) groups.emplace_back(), in_group = 0;
    groups.back().push_back(k);
    in_group += bytes;
    total += bytes;
  }

  const fs::path parent = out.parent_path();
  fs::create_directories(parent, ec);
  std::string pattern = (parent / ("." + out.filename().string() + ".tmp-XXXXXX")).string();
  SCION_CHECK(::mkdtemp(pattern.data()) != nullptr, "Hugging Face export: cannot create a temporary folder next to '",
              dir, "' (is its parent writable?)");
  const fs::path tmp = pattern;
  // mkdtemp makes the folder private (0700); the export is an ordinary folder (0777 & ~umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  fs::permissions(tmp, fs::perms::all & ~fs::perms(mask), ec);
  try {
    // torch_dtype says what the weights are stored as (from_pretrained(torch_dtype="auto")).
    Json written = config;
    written["torch_dtype"] = options.dtype == DType::bf16 ? "bfloat16" : "float32";
    files::write_atomic((tmp / kConfigFile).string(), written.dump(2) + "\n");
    const safetensors::Metadata metadata = {{"format", "pt"}};
    Json weight_map = Json::object();
    for (size_t g = 0; g < groups.size(); ++g) {
      char shard[64];
      std::snprintf(shard, sizeof shard, "model-%05zu-of-%05zu.safetensors", g + 1, groups.size());
      const std::string file = groups.size() == 1 ? std::string(kWeightsFile) : std::string(shard);
      safetensors::Named part;
      for (size_t k : groups[g]) {
        const auto& [name, t] = tensors[k];
        part.emplace_back(name, t.dtype() == options.dtype ? t : t.to(options.dtype));
        weight_map[name] = file;
      }
      safetensors::save((tmp / file).string(), part, metadata);
    }
    if (groups.size() > 1) {
      Json index;
      index["metadata"]["total_size"] = Json(total);
      index["weight_map"] = std::move(weight_map);
      files::write_atomic((tmp / kIndexFile).string(), index.dump(2) + "\n");
    }
    for (const std::string& f : options.extra_files)
      files::write_atomic((tmp / fs::path(f).filename()).string(), read_text(f, "Hugging Face export"));
    fsync_folder(tmp);
    // rename(2) replaces an empty folder; a folder that gained files since the check is refused.
    fs::rename(tmp, out, ec);
    SCION_CHECK(!ec, "Hugging Face export: cannot move the finished folder onto '", dir, "': ", ec.message());
    fsync_folder(parent);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);  // our own temporary folder only
    throw;
  }
}

}  // namespace scion::hf
