// `scion export`: a Scion model checkpoint written as a Hugging Face model directory
// (scion/hf_directory.h) that transformers' from_pretrained loads. The model node is made from
// the checkpoint as `scion eval` makes it; its plugin gives the config.json (Model::hf_config)
// and its parameters already carry the Hugging Face names.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "cli/cli.h"
#include "scion/checkpoint.h"
#include "scion/hf_directory.h"
#include "scion/safetensors.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace scion::cli {

namespace {

// Whether a .safetensors file is a model's weights written by Scion (its header names the plugin).
std::string model_plugin_of(const std::string& file) {
  try {
    const auto m = safetensors::load_metadata(file);
    auto it = m.find(checkpoint::kPluginKey);
    return it == m.end() ? "" : it->second;
  } catch (const Error&) {
    return "";
  }
}

// The model file `--checkpoint` names: the file itself, or in a checkpoint folder
// (step_<N>), a checkpoints folder (its latest.json) or a run folder (checkpoints/latest.json)
// the one model file (`node` picks one where there are several).
std::string model_file(const std::string& given, const std::string& node) {
  std::error_code ec;
  SCION_CHECK(fs::exists(given, ec), "export: --checkpoint '", given, "' does not exist");
  if (fs::is_regular_file(given, ec)) return given;
  fs::path folder = given;
  for (const fs::path& latest : {folder / "checkpoints" / checkpoint::kLatestFile, folder / checkpoint::kLatestFile}) {
    if (!fs::is_regular_file(latest, ec)) continue;
    std::ifstream in(latest);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const Json j = json_parse(text, latest.string());
    folder = latest.parent_path() / json_string(j.at(checkpoint::kLatestCheckpoint));
    break;
  }
  std::vector<std::string> models;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    if (!e.is_regular_file() || e.path().extension() != ".safetensors") continue;
    if (e.path().filename() == checkpoint::kOptimizerFile) continue;
    if (!node.empty() && e.path().stem() != node) continue;
    if (!model_plugin_of(e.path().string()).empty()) models.push_back(e.path().string());
  }
  std::sort(models.begin(), models.end());
  SCION_CHECK(!models.empty(), "export: no model checkpoint in '", folder.string(), "'",
              node.empty() ? "" : " for node '" + node + "'",
              " (give a model .safetensors written by scion, a checkpoint folder step_<N>, a run folder, or a "
              "Hugging Face model directory)");
  if (models.size() > 1) {
    std::string list;
    for (const auto& m : models) list += "\n  " + m;
    throw Error("export: '" + folder.string() + "' holds several models; name one with --model NODE or give its file:" +
                list);
  }
  return models.front();
}

}  // namespace

int cmd_export(int argc, char** argv) {
  std::vector<std::string> plugin_dirs;
  std::string ckpt, out, tokenizer, node, max_shard = "5GB", dtype = "f32";
  po::options_description d("scion export options");
  d.add_options()("checkpoint", po::value(&ckpt)->required(),
                  "model .safetensors written by scion, its checkpoint folder, or a run folder (its latest checkpoint)")(
      "out", po::value(&out)->required(), "the Hugging Face directory to write (must not exist, or be empty)")(
      "tokenizer", po::value(&tokenizer),
      "a tokenizer file, or a folder whose tokenizer files (tokenizer.json, tokenizer_config.json, ...) are copied")(
      "max-shard-size", po::value(&max_shard), "largest weights file before sharding (5GB; e.g. 500MB, 2GiB)")(
      "dtype", po::value(&dtype), "weights written as f32 or bf16 (f32)")(
      "model", po::value(&node), "the model node's file in a folder holding several")(
      "plugin-dir", po::value(&plugin_dirs)->composing(), "extra folder of plugin libraries");
  if (!parse(argc, argv, d, nullptr, "usage: scion export --checkpoint X --out DIR [--tokenizer DIR_OR_FILE] [options]"))
    return 0;
  hf::WriteOptions options;
  options.max_shard_bytes = hf::parse_size(max_shard);
  SCION_CHECK(dtype == "f32" || dtype == "bf16", "export: --dtype ", dtype, " (f32 or bf16)");
  options.dtype = dtype == "bf16" ? DType::bf16 : DType::f32;
  options.inputs = {ckpt};
  if (!tokenizer.empty()) {
    std::error_code ec;
    options.inputs.push_back(tokenizer);
    if (fs::is_directory(tokenizer, ec)) {
      for (const std::string& f : hf::tokenizer_file_names())
        if (fs::is_regular_file(fs::path(tokenizer) / f, ec)) options.extra_files.push_back((fs::path(tokenizer) / f).string());
      SCION_CHECK(!options.extra_files.empty(), "export: --tokenizer folder '", tokenizer, "' holds none of the tokenizer files");
    } else {
      SCION_CHECK(fs::is_regular_file(tokenizer, ec), "export: --tokenizer '", tokenizer, "' does not exist");
      options.extra_files.push_back(tokenizer);
    }
  }
  // The output is checked before the model is read: a refusal costs nothing.
  hf::check_output_folder(out, options.inputs);
  // A Hugging Face directory is a model too (re-exported: another dtype, shard size or tokenizer).
  const std::string file = hf::is_model_directory(ckpt) ? ckpt : model_file(ckpt, node);
  runtime::PluginRegistry reg = load_registry(plugin_dirs);
  auto model = model_from_checkpoint(reg, file, "");
  const std::string plugin = hf::is_model_directory(ckpt) ? "the model of " + ckpt : model_plugin_of(file);
  SCION_CHECK(model, "export: '", file, "' did not make a model node");
  Json config;
  try {
    config = model->hf_config();
  } catch (const Error& e) {
    throw Error("export: model " + plugin + " (from '" + file + "'): " + e.what());
  }
  nn::Module& module = model->module();
  for (const auto& [name, b] : module.named_buffers())
    SCION_CHECK(name.find("gate") == std::string::npos, "export: '", file, "' has the structural gate '", name,
                "' set (a model mid-growth or mid-pruning); finalize it first (op.cofi_prune after CoFi, or let the "
                "growth finish and checkpoint) so that the exported weights are the model it computes");
  // A tied head is the embedding itself: written once, under the embedding's name.
  safetensors::Named tensors;
  std::set<const void*> seen;
  for (auto& [name, t] : module.named_parameters())
    if (t.numel() == 0 || seen.insert(t.raw_data()).second) tensors.emplace_back(name, t);
  hf::write(out, config, tensors, options);
  std::printf("exported %s (%s, %zu tensors) to %s\n", file.c_str(), plugin.c_str(), tensors.size(), out.c_str());
  return 0;
}

}  // namespace scion::cli
