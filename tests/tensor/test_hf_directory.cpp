// Hugging Face model directories (scion/hf_directory.h): written as from_pretrained reads them
// (one file or shards with an index, bf16 rounded to nearest even, tokenizer files), read back
// into f32 master weights, and every broken directory refused naming its file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "scion/hf_directory.h"
#include "test_files.h"

using namespace scion;
namespace fs = std::filesystem;

namespace {

Tensor filled(const Shape& shape, float start) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = start + 0.25f * float(i);
  return t;
}

void put(const fs::path& f, const std::string& text) {
  std::ofstream(f, std::ios::binary) << text;
}

Json small_config() { return json_parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8})"); }

safetensors::Named three_tensors() {
  return {{"model.embed_tokens.weight", filled({8, 4}, 0)},
          {"model.layers.0.mlp.up_proj.weight", filled({6, 4}, 1)},
          {"model.norm.weight", filled({4}, 2)}};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_equal(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0);
}

}  // namespace

TEST(HfDirectory, OneFileRoundTripWithTokenizerFiles) {
  const fs::path d = tests::temp("hf_one");
  put(d / "tokenizer.json", "{\"model\": {}}");
  put(d / "tokenizer_config.json", "{}");
  const auto tensors = three_tensors();
  hf::WriteOptions o;
  o.extra_files = {(d / "tokenizer.json").string(), (d / "tokenizer_config.json").string()};
  hf::write((d / "out").string(), small_config(), tensors, o);
  EXPECT_TRUE(fs::is_regular_file(d / "out" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(d / "out" / "model.safetensors.index.json"));
  EXPECT_EQ(safetensors::load_metadata((d / "out" / "model.safetensors").string()).at("format"), "pt");
  EXPECT_TRUE(hf::is_model_directory((d / "out").string()));
  const hf::Directory r = hf::read((d / "out").string());
  Json want = small_config();
  want["torch_dtype"] = "float32";
  EXPECT_EQ(r.config, want);
  EXPECT_EQ(fs::status(d / "out").permissions() & fs::perms::others_read,
            fs::status(d).permissions() & fs::perms::others_read)
      << "an ordinary folder, not mkdtemp's private one";
  ASSERT_EQ(r.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(r.tensors[i].first, tensors[i].first);
    expect_equal(r.tensors[i].second, tensors[i].second);
  }
  ASSERT_EQ(r.tokenizer_files.size(), 2u);
  EXPECT_EQ(fs::path(r.tokenizer_files[0]).filename(), "tokenizer.json");
  EXPECT_EQ(tests::slurp(d / "out" / "tokenizer.json"), "{\"model\": {}}");
  // Nothing left beside the output (the temporary folder was renamed onto it).
  int entries = 0;
  for (const auto& e : fs::directory_iterator(d)) entries += e.path().filename().string()[0] == '.';
  EXPECT_EQ(entries, 0);
}

TEST(HfDirectory, ShardsAboveTheLimitWithAnIndexAndBf16RoundedToNearestEven) {
  const fs::path d = tests::temp("hf_shards");
  auto tensors = three_tensors();
  // 1 + 2^-8 is halfway between bf16's 1 and 1 + 2^-7: to the even one, 1. 1 + 3·2^-8 is
  // halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6.
  tensors[2].second.data<float>()[0] = 1.0f + 1.0f / 256;
  tensors[2].second.data<float>()[1] = 1.0f + 3.0f / 256;
  hf::WriteOptions o;
  o.dtype = DType::bf16;
  o.max_shard_bytes = 64;  // the 8x4 embedding (64 bytes in bf16) fills a shard; 6x4 and 4 share the second
  hf::write((d / "out").string(), small_config(), tensors, o);
  EXPECT_FALSE(fs::exists(d / "out" / "model.safetensors"));
  const Json index = json_parse(tests::slurp(d / "out" / "model.safetensors.index.json"));
  EXPECT_EQ(json_int(index.at("metadata").at("total_size")), (32 + 24 + 4) * 2);
  EXPECT_EQ(json_string(index.at("weight_map").at("model.embed_tokens.weight")), "model-00001-of-00002.safetensors");
  EXPECT_EQ(json_string(index.at("weight_map").at("model.layers.0.mlp.up_proj.weight")), "model-00002-of-00002.safetensors");
  EXPECT_EQ(json_string(index.at("weight_map").at("model.norm.weight")), "model-00002-of-00002.safetensors");
  const auto shard = safetensors::load((d / "out" / "model-00002-of-00002.safetensors").string());
  EXPECT_EQ(shard.tensors.at(0).second.dtype(), DType::bf16);
  EXPECT_EQ(shard.metadata.at("format"), "pt");

  const hf::Directory r = hf::read((d / "out").string());
  EXPECT_EQ(json_string(r.config.at("torch_dtype")), "bfloat16");
  ASSERT_EQ(r.tensors.size(), 3u);
  for (const auto& [name, t] : r.tensors) EXPECT_EQ(t.dtype(), DType::f32) << name;
  expect_equal(r.tensors[0].second, tensors[0].second);  // quarter steps are exact in bf16
  const float* norm = r.tensors[2].second.data<float>();
  EXPECT_EQ(norm[0], 1.0f);
  EXPECT_EQ(norm[1], 1.0f + 1.0f / 64);
}

TEST(HfDirectory, F16AndBf16FilesReadAsF32AndPositionIdsSkipped) {
  const fs::path d = tests::temp("hf_f16");
  put(d / "config.json", json_dump(small_config()));
  Tensor ids = Tensor::empty({1, 4}, DType::i64);
  for (int i = 0; i < 4; ++i) ids.data<int64_t>()[i] = i;
  safetensors::save((d / "model.safetensors").string(),
                    {{"a", filled({3}, 0.5f).to(DType::f16)}, {"b", filled({2}, -1).to(DType::bf16)},
                     {"bert.embeddings.position_ids", ids}});
  const hf::Directory r = hf::read(d.string());
  ASSERT_EQ(r.tensors.size(), 2u);
  expect_equal(r.tensors[0].second, filled({3}, 0.5f));
  expect_equal(r.tensors[1].second, filled({2}, -1));
}

TEST(HfDirectory, BrokenDirectoriesAreRefusedNamingTheFile) {
  const fs::path d = tests::temp("hf_broken");
  EXPECT_NE(error_of([&] { hf::read(d.string()); }).find("has no config.json"), std::string::npos);
  put(d / "config.json", "[1, 2]");
  EXPECT_NE(error_of([&] { hf::read(d.string()); }).find("config.json' is not a JSON object"), std::string::npos);
  put(d / "config.json", json_dump(small_config()));
  EXPECT_NE(error_of([&] { hf::read(d.string()); }).find("has no weights: neither model.safetensors nor"),
            std::string::npos);

  // Shards: written, then broken one way at a time.
  hf::WriteOptions o;
  o.max_shard_bytes = 128;
  hf::write((d / "s").string(), small_config(), three_tensors(), o);
  const fs::path s = d / "s", index = s / "model.safetensors.index.json";
  const std::string good_index = tests::slurp(index);
  Json j = json_parse(good_index);
  j["weight_map"]["model.extra.weight"] = "model-00002-of-00002.safetensors";
  put(index, json_dump(j));
  std::string e = error_of([&] { hf::read(s.string()); });
  EXPECT_NE(e.find("places tensor 'model.extra.weight' in shard 'model-00002-of-00002.safetensors', which does not hold it"),
            std::string::npos)
      << e;
  j = json_parse(good_index);
  j["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  put(index, json_dump(j));
  e = error_of([&] { hf::read(s.string()); });
  EXPECT_NE(e.find("tensor 'model.norm.weight' is in shard 'model-00002-of-00002.safetensors' but "
                   "model.safetensors.index.json places it in 'model-00001-of-00002.safetensors'"),
            std::string::npos)
      << e;
  j = json_parse(good_index);
  j["weight_map"]["model.norm.weight"] = "../escape.safetensors";
  put(index, json_dump(j));
  EXPECT_NE(error_of([&] { hf::read(s.string()); }).find("is not a file name inside the directory"), std::string::npos);
  put(index, good_index);
  fs::rename(s / "model-00002-of-00002.safetensors", d / "aside");
  e = error_of([&] { hf::read(s.string()); });
  EXPECT_NE(e.find("names shard 'model-00002-of-00002.safetensors', which is missing"), std::string::npos) << e;
  // Truncated: the message names the directory and the shard.
  const std::string bytes = tests::slurp(d / "aside");
  put(s / "model-00002-of-00002.safetensors", bytes.substr(0, bytes.size() - 10));
  e = error_of([&] { hf::read(s.string()); });
  EXPECT_NE(e.find("cannot read shard 'model-00002-of-00002.safetensors'"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find(s.string()), std::string::npos) << e;

  // A tensor that is not floating point (and not a position_ids buffer).
  const fs::path t = d / "ints";
  fs::create_directories(t);
  put(t / "config.json", json_dump(small_config()));
  safetensors::save((t / "model.safetensors").string(), {{"w", Tensor::empty({2}, DType::i32)}});
  e = error_of([&] { hf::read(t.string()); });
  EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("F32, BF16 or F16"), std::string::npos) << e;
}

TEST(HfDirectory, WriteRefusesExistingFilesAndOutputsAtTheInput) {
  const fs::path d = tests::temp("hf_refuse");
  put(d / "keep.txt", "mine");
  const auto tensors = three_tensors();
  // A non-empty folder and a file are left as they were.
  std::string e = error_of([&] { hf::write(d.string(), small_config(), tensors); });
  EXPECT_NE(e.find("exists and is not empty"), std::string::npos) << e;
  e = error_of([&] { hf::write((d / "keep.txt").string(), small_config(), tensors); });
  EXPECT_NE(e.find("exists and is not a folder"), std::string::npos) << e;
  EXPECT_EQ(tests::slurp(d / "keep.txt"), "mine");
  // Onto, inside, or around an input.
  fs::create_directories(d / "run");
  hf::WriteOptions o;
  o.inputs = {(d / "run").string()};
  for (const fs::path& out : {d / "run" / "hf", d / "run" / ".." / "run"}) {
    e = error_of([&] { hf::write(out.string(), small_config(), tensors, o); });
    EXPECT_NE(e.find("onto or inside the input"), std::string::npos) << out << ": " << e;
  }
  // An empty folder is written into; a failure part way leaves no temporary folder behind.
  fs::create_directories(d / "empty");
  hf::write((d / "empty").string(), small_config(), tensors);
  EXPECT_TRUE(fs::is_regular_file(d / "empty" / "config.json"));
  safetensors::Named twice = {{"a", filled({2}, 0)}, {"a", filled({2}, 0)}};
  EXPECT_NE(error_of([&] { hf::write((d / "twice").string(), small_config(), twice); }).find("named twice"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(d / "twice"));
  hf::WriteOptions missing;
  missing.extra_files = {(d / "nope.json").string()};
  EXPECT_NE(error_of([&] { hf::write((d / "m").string(), small_config(), tensors, missing); }).find("is missing"),
            std::string::npos);
  for (const auto& x : fs::directory_iterator(d)) EXPECT_NE(x.path().filename().string()[0], '.') << x.path();
}

TEST(HfDirectory, SizesReadAsTransformersWritesThem) {
  EXPECT_EQ(hf::parse_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(hf::parse_size("500MB"), 500'000'000ull);
  EXPECT_EQ(hf::parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(hf::parse_size("1000"), 1000ull);
  EXPECT_EQ(hf::parse_size("10kb"), 10'000ull);
  for (const char* bad : {"", "GB", "5 GB", "5TB", "0", "-1GB", "1.5GB"})
    EXPECT_THROW(hf::parse_size(bad), Error) << bad;
}
