// The plugin loader: a good library, and each way a library is refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/registry.h"

using namespace scion;
using namespace scion::runtime;
namespace fs = std::filesystem;

namespace {
const std::string kTp = SCION_TEST_PLUGINS;

std::string error_of(PluginRegistry& reg, const std::string& path) {
  try {
    reg.load_library(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Loader, LoadsAGoodLibraryAndMakesItsPlugins) {
  PluginRegistry reg;
  reg.load_library(kTp + "/good/libscion_testing.so");
  ASSERT_NE(reg.find("test.mse"), nullptr);
  EXPECT_EQ(reg.find("test.linear")->entry.kind, PluginKind::model);
  EXPECT_EQ(reg.names(), (std::vector<std::string>{"test.hooks", "test.lagrangian", "test.linear", "test.mse", "test.shift",
                                                 "test.step_count", "test.synthetic", "test.tokenizer"}));
  struct None : NodeResolver {
    std::shared_ptr<Plugin> node(const std::string&) const override { return nullptr; }
  } none;
  Json p;
  p["trace"] = Json("");
  p["sleep_ms"] = Json(0);
  p["dim"] = Json(3);
  p["bias_every"] = Json(0);
  auto m = std::dynamic_pointer_cast<Model>(reg.create("test.linear", Params(p, "m", NodeContext{1, 0, 1, {}}), none));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->module().parameter_count(), 4);
}

TEST(Loader, RefusesAnotherAbiVersion) {
  PluginRegistry reg;
  const std::string path = kTp + "/bad_abi/libscion_bad_abi.so";
  const std::string e = error_of(reg, path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("ABI 99.0"), std::string::npos) << e;
  EXPECT_NE(e.find("rebuild"), std::string::npos) << e;
}

TEST(Loader, RefusesAnotherBuildFingerprint) {
  PluginRegistry reg;
  const std::string path = kTp + "/bad_fingerprint/libscion_bad_fingerprint.so";
  const std::string e = error_of(reg, path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("cuda-99"), std::string::npos) << e;
  EXPECT_NE(e.find(SCION_BUILD_FINGERPRINT), std::string::npos) << e;  // the host's, for comparison
}

// A header without a fingerprint used to throw std::logic_error past the scan, breaking every
// command; it is one library's problem like any other.
TEST(Loader, RefusesANullFingerprintAndTheScanGoesOn) {
  PluginRegistry reg;
  const std::string path = kTp + "/null_fingerprint/libscion_null_fingerprint.so";
  const std::string e = error_of(reg, path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("the plugin header has no build fingerprint"), std::string::npos) << e;
  PluginRegistry scanned;
  scanned.scan({kTp + "/null_fingerprint", kTp + "/good"});
  EXPECT_NE(scanned.find("test.synthetic"), nullptr);
  ASSERT_EQ(scanned.problems().size(), 1u);
  EXPECT_NE(scanned.problems()[0].find("no build fingerprint"), std::string::npos);
}

// Files that are no shared library are named for what they are, not by an errno.
TEST(Loader, RefusesAnEmptyOrTextFileInWords) {
  const fs::path dir = fs::temp_directory_path() / ("scion_loader_text_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "libempty.so");
  std::ofstream(dir / "libtext.so") << "#!/bin/sh\n";
  PluginRegistry reg;
  EXPECT_NE(error_of(reg, (dir / "libempty.so").string()).find("is empty (0 bytes), not a shared library"),
            std::string::npos);
  EXPECT_NE(error_of(reg, (dir / "libtext.so").string()).find("is not a shared library (10 bytes without an ELF header"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Loader, TheFingerprintNamesCompilerStdlibAndCuda) {
  const std::string f = SCION_BUILD_FINGERPRINT;
  EXPECT_NE(f.find("libstdc++"), std::string::npos) << f;
  EXPECT_NE(f.find(";cuda-"), std::string::npos) << f;
}

TEST(Loader, RefusesALibraryWithoutEntryPoint) {
  PluginRegistry reg;
  const std::string path = kTp + "/no_entry/libscion_no_entry.so";
  const std::string e = error_of(reg, path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("not a Scion plugin"), std::string::npos) << e;
}

TEST(Loader, RefusesADuplicateNameNamingBothFiles) {
  PluginRegistry reg;
  reg.load_library(kTp + "/good/libscion_testing.so");
  const std::string dup = kTp + "/duplicate/libscion_duplicate.so";
  const std::string e = error_of(reg, dup);
  EXPECT_NE(e.find("test.mse"), std::string::npos) << e;
  EXPECT_NE(e.find("libscion_testing.so"), std::string::npos) << e;
  EXPECT_NE(e.find(dup), std::string::npos) << e;
  EXPECT_EQ(reg.find("test.mse")->entry.version, "1.0.0");  // the first one stays
}

TEST(Loader, RefusesAMissingFile) {
  PluginRegistry reg;
  const std::string e = error_of(reg, kTp + "/nowhere/libnothing.so");
  EXPECT_NE(e.find("/nowhere/libnothing.so"), std::string::npos) << e;
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

TEST(Loader, ScanKeepsGoodLibrariesAndReportsBadOnes) {
  PluginRegistry reg;
  reg.scan({kTp + "/good", kTp + "/bad_abi", kTp + "/missing-folder"});
  EXPECT_NE(reg.find("test.synthetic"), nullptr);
  ASSERT_EQ(reg.problems().size(), 1u);
  EXPECT_NE(reg.problems()[0].find("libscion_bad_abi.so"), std::string::npos);
}

TEST(Loader, InstancesKeepTheirLibraryLoaded) {
  std::shared_ptr<Plugin> inst;
  {
    PluginRegistry reg;
    reg.load_library(kTp + "/good/libscion_testing.so");
    struct None : NodeResolver {
      std::shared_ptr<Plugin> node(const std::string&) const override { return nullptr; }
    } none;
    Json p;
    p["trace"] = Json("");
    p["sleep_ms"] = Json(0);
    inst = reg.create("test.mse", Params(p, "l"), none);
  }  // the registry is gone; the instance still works (its code is still mapped)
  std::map<std::string, double> m;
  Tensor a = Tensor::ones({3, 1}), b = Tensor::zeros({3, 1});
  EXPECT_FLOAT_EQ(std::dynamic_pointer_cast<Loss>(inst)->compute({{"pred", a}, {"target", b}}, {}, m).item(), 1.f);
  inst.reset();
}
