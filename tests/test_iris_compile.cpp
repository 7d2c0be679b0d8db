// test_iris_compile.cpp — the Iris Xe compile gate. No Iris Xe is reachable from the build
// machines, so every kernel program is compiled by Intel's own offline compiler (ocloc, package
// intel-opencl-icd) exactly as the host would build it on an Iris Xe: the same source string
// (program_source: common.cl prepended) and the same options string (build_options of the tuning
// selected for a recorded Gen12LP device, tests/data/devices/iris_xe_gen12lp.json), for every
// ocloc target the fixture names (tgllp, adl-p). The compiler sees exactly the fixture's extension
// list (-cl-ext=-all,+...), and the portable baseline (a device without fp16 or sub-groups, only
// the OpenCL 1.2 core extensions) is compiled too. The fast paths the Iris Xe gets (sub-groups
// sub-groups of 16, int8 with dp4a) are in its options string, and each is also compiled alone, so a
// failure names the path; the int8 kernels are disassembled (iga64) to prove dp4a is emitted and
// nothing spills. Negative controls prove that a kernel using
// `double`, or half arithmetic without cl_khr_fp16, fails the gate. Skips when ocloc is not
// installed ($XELM_OCLOC overrides the path).
//
// With $XELM_IRIS_DUMP_DIR set, IrisFixture.WritesProgramsForTheIsaReport writes each program's
// source and the option strings there (tools/iris_isa_report.py runs it to get them).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/build_options.h"
#include "host/device_info.h"
#include "host/embedded_kernels.h"
#include "host/program_cache.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using opencl::DeviceInfo;

struct DeviceFixture {
  DeviceInfo info;
  std::vector<std::string> ocloc_devices;  // ocloc -device targets that stand for this device
};

// A recorded device (clinfo fields as JSON) into a DeviceInfo, feature flags derived from the
// extension list the same way query_device_info derives them from a live device.
DeviceFixture load_device_fixture(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open device fixture " + path);
  const nlohmann::json j = nlohmann::json::parse(in);
  DeviceFixture f;
  DeviceInfo& d = f.info;
  d.platform_name = j.at("platform_name");
  d.platform_vendor = j.value("platform_vendor", "");
  d.platform_version = j.value("platform_version", "");
  d.name = j.at("name");
  d.vendor = j.at("vendor");
  d.vendor_id = j.value("vendor_id", 0u);
  d.driver_version = j.value("driver_version", "");
  d.device_version = j.value("device_version", "");
  d.opencl_c_version = j.value("opencl_c_version", "");
  const std::string type = j.at("type");
  d.type = type == "gpu"   ? opencl::DeviceType::Gpu
           : type == "cpu" ? opencl::DeviceType::Cpu
           : type == "accelerator" ? opencl::DeviceType::Accelerator
                                   : opencl::DeviceType::Other;
  d.compute_units = j.value("compute_units", 0u);
  d.max_clock_mhz = j.value("max_clock_mhz", 0u);
  d.global_memory_bytes = j.value("global_memory_bytes", uint64_t{0});
  d.local_memory_bytes = j.value("local_memory_bytes", uint64_t{0});
  d.max_alloc_bytes = j.value("max_alloc_bytes", uint64_t{0});
  d.max_work_group_size = j.value("max_work_group_size", uint64_t{0});
  d.unified_memory = j.value("unified_memory", false);
  d.extensions = j.value("extensions", std::vector<std::string>{});
  std::sort(d.extensions.begin(), d.extensions.end());
  d.fp16 = d.has_extension("cl_khr_fp16");
  d.fp64 = d.has_extension("cl_khr_fp64");
  d.intel_subgroups = d.has_extension("cl_intel_subgroups");
  d.subgroups = d.intel_subgroups || d.has_extension("cl_khr_subgroups");
  d.required_subgroup_size = d.has_extension("cl_intel_required_subgroup_size");
  if (d.required_subgroup_size) d.subgroup_sizes = j.value("subgroup_sizes", std::vector<uint32_t>{});
  d.integer_dot_product = d.has_extension("cl_khr_integer_dot_product");
  d.intel_ip_version = j.value("intel_ip_version", 0u);
  f.ocloc_devices = j.value("ocloc_devices", std::vector<std::string>{});
  return f;
}

DeviceFixture iris_xe() { return load_device_fixture(test::data_path("devices/iris_xe_gen12lp.json")); }

// The portable baseline: a conformant OpenCL 1.2 GPU with none of the optional features (no fp16,
// no sub-groups, no integer dot product, no Intel attributes), only the 1.2 core extensions.
DeviceInfo portable_baseline() {
  DeviceInfo d;
  d.platform_name = "Any OpenCL 1.2";
  d.name = "portable baseline";
  d.vendor = "portable";
  d.type = opencl::DeviceType::Gpu;
  d.compute_units = 8;
  d.local_memory_bytes = 32 * 1024;
  d.max_alloc_bytes = 128ull << 20;
  d.max_work_group_size = 256;
  d.extensions = {"cl_khr_byte_addressable_store", "cl_khr_global_int32_base_atomics",
                  "cl_khr_global_int32_extended_atomics", "cl_khr_local_int32_base_atomics",
                  "cl_khr_local_int32_extended_atomics"};
  return d;
}

// The options string the host passes for this device (OpenClBackendImpl: build_options of the
// selected tuning and fast paths).
std::string host_options(const DeviceInfo& info) {
  const opencl::KernelTuning tuning = opencl::select_tuning(info);
  return opencl::build_options(tuning, opencl::select_fast_paths(info, tuning));
}

// ocloc internal options that make the front end see exactly the device's extensions.
std::string extension_options(const DeviceInfo& info) {
  std::string s = "-cl-ext=-all";
  for (const std::string& e : info.extensions) s += ",+" + e;
  return s;
}

std::vector<std::string> program_files() {
  std::vector<std::string> files;
  for (const opencl::EmbeddedKernelSource& k : opencl::embedded_kernel_sources()) {
    if (k.file_name != "common.cl") files.emplace_back(k.file_name);
  }
  return files;
}

std::string find_on_path(const std::string& tool);

std::string find_ocloc() {
  if (const char* env = std::getenv("XELM_OCLOC"); env != nullptr && *env != '\0') {
    return ::access(env, X_OK) == 0 ? env : "";
  }
  return find_on_path("ocloc");
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct CompileResult {
  bool ok = false;
  std::string log;
};

// ocloc compile of `source` for `device`; ok when ocloc exits 0 and wrote a binary.
CompileResult ocloc_compile(const std::string& ocloc, const test::ScratchDir& dir, const std::string& name,
                            const std::string& source, const std::string& device, const std::string& options,
                            const std::string& internal_options) {
  const std::string src = dir.file(name + ".cl"), out_dir = dir.file(name + "-" + device), log = out_dir + ".log";
  std::ofstream(src) << source;
  std::filesystem::create_directories(out_dir);
  const std::string cmd = shell_quote(ocloc) + " compile -q -file " + shell_quote(src) + " -device " +
                          shell_quote(device) + " -options " + shell_quote(options) + " -internal_options " +
                          shell_quote(internal_options) + " -out_dir " + shell_quote(out_dir) + " >" +
                          shell_quote(log) + " 2>&1";
  const int status = std::system(cmd.c_str());
  CompileResult r;
  std::ifstream in(log);
  r.log = std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  bool wrote_binary = false;
  for (const auto& entry : std::filesystem::directory_iterator(out_dir)) {
    wrote_binary = wrote_binary || entry.path().extension() == ".bin";
  }
  r.ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && wrote_binary;
  if (!r.ok) r.log = "$ " + cmd + "\n" + r.log;
  return r;
}

class IrisCompile : public ::testing::Test {
 protected:
  void SetUp() override {
    ocloc_ = find_ocloc();
    if (ocloc_.empty()) GTEST_SKIP() << "ocloc not installed (apt-get install intel-opencl-icd)";
  }
  // Compiles every program for `device`; a failure carries ocloc's build log.
  void compile_every_program(const DeviceInfo& info, const std::string& device) {
    const std::string options = host_options(info), internal = extension_options(info);
    std::printf("[iris] %s as %s, options: %s\n", info.name.c_str(), device.c_str(), options.c_str());
    for (const std::string& file : program_files()) {
      const CompileResult r = ocloc_compile(ocloc_, dir_, file.substr(0, file.find('.')),
                                            opencl::program_source(file), device, options, internal);
      EXPECT_TRUE(r.ok) << "kernels/" << file << " does not build for " << device << " with options '" << options
                        << "':\n"
                        << r.log;
    }
  }
  std::string ocloc_;
  test::ScratchDir dir_;
};

TEST(IrisFixture, LoadsTheRecordedGen12lpDevice) {
  const DeviceFixture xe = iris_xe();
  const DeviceInfo& d = xe.info;
  EXPECT_TRUE(d.is_intel());
  EXPECT_EQ(d.type, opencl::DeviceType::Gpu);
  EXPECT_EQ(d.compute_units, 96u);
  EXPECT_TRUE(d.unified_memory);
  EXPECT_TRUE(d.fp16);
  EXPECT_FALSE(d.fp64);
  EXPECT_TRUE(d.subgroups);
  EXPECT_TRUE(d.intel_subgroups);
  EXPECT_TRUE(d.required_subgroup_size);
  EXPECT_EQ(d.subgroup_sizes, (std::vector<uint32_t>{8, 16, 32}));
  EXPECT_TRUE(d.integer_dot_product);
  EXPECT_TRUE(d.has_extension("cl_intel_subgroups_short"));
  EXPECT_TRUE(d.has_extension("cl_intel_subgroups_char"));
  EXPECT_EQ(d.local_memory_bytes, 64u * 1024u);
  EXPECT_EQ(d.max_alloc_bytes / (1024 * 1024), 4095u);
  EXPECT_EQ(opencl::device_architecture(d), "gen12lp");
  EXPECT_EQ(xe.ocloc_devices, (std::vector<std::string>{"tgllp", "adl-p"}));

  // The options come from the gen12lp row of the tuning table, and differ from the baseline's.
  const std::string options = host_options(d);
  for (const opencl::TuningEntry& e : opencl::tuning_table()) {
    if (e.vendor == "intel" && e.architecture == "gen12lp" && e.device.empty()) {
      const opencl::KernelTuning fitted = opencl::fit_tuning(d, e.tuning);
      EXPECT_EQ(options, opencl::build_options(fitted, opencl::select_fast_paths(d, fitted)));
    }
  }
  EXPECT_NE(options, host_options(portable_baseline()));
  EXPECT_EQ(options.find("fast-relaxed-math"), std::string::npos) << options;
  EXPECT_EQ(options.find("finite-math"), std::string::npos) << options;
}

TEST(IrisFixture, WritesProgramsForTheIsaReport) {
  const char* dir = std::getenv("XELM_IRIS_DUMP_DIR");
  if (dir == nullptr || *dir == '\0') GTEST_SKIP() << "set XELM_IRIS_DUMP_DIR to write the programs";
  std::filesystem::create_directories(dir);
  const DeviceFixture xe = iris_xe();
  for (const std::string& file : program_files()) std::ofstream(std::string(dir) + "/" + file) << opencl::program_source(file);
  std::ofstream(std::string(dir) + "/options.txt") << host_options(xe.info) << "\n";
  std::ofstream(std::string(dir) + "/internal_options.txt") << extension_options(xe.info) << "\n";
  std::ofstream(std::string(dir) + "/device.txt") << xe.info.name << "\n";
}

TEST_F(IrisCompile, EveryProgramBuildsForTgllp) { compile_every_program(iris_xe().info, "tgllp"); }

TEST_F(IrisCompile, EveryProgramBuildsForAdlP) { compile_every_program(iris_xe().info, "adl-p"); }

TEST_F(IrisCompile, EveryProgramBuildsAsThePortableBaseline) {
  compile_every_program(portable_baseline(), "tgllp");
}

// The Iris Xe gets the sub-group and int8 fast paths (fp16 only on request: fp16_math is off in its
// tuning row); the baseline none.
TEST(IrisFixture, SelectsTheFastPathsForIrisXeAndNoneForTheBaseline) {
  const DeviceInfo xe = iris_xe().info;
  const opencl::FastPaths f = opencl::select_fast_paths(xe, opencl::select_tuning(xe));
  EXPECT_FALSE(f.fp16);
  EXPECT_TRUE(opencl::select_fast_paths(xe, opencl::select_tuning(xe), "fp16,subgroups,int8").fp16);
  EXPECT_TRUE(f.subgroups);
  EXPECT_EQ(f.subgroup_size, 16);
  EXPECT_TRUE(f.int8);
  EXPECT_EQ(f.int8_dot, opencl::Int8Dot::IntelAsm);
  const std::string options = host_options(xe);
  for (const char* d : {"-DXELM_SUBGROUPS", "-DXELM_SUBGROUP_SIZE=16", "-DXELM_INT8", "-DXELM_DOT_INTEL_ASM"}) {
    EXPECT_NE(options.find(d), std::string::npos) << d << " missing from " << options;
  }
  EXPECT_EQ(host_options(portable_baseline()).find("XELM_"), std::string::npos) << host_options(portable_baseline());
  EXPECT_EQ(opencl::select_fast_paths(portable_baseline(), opencl::select_tuning(portable_baseline())).describe(),
            "none");
}

// Each fast path alone (the baseline tuning plus one path's -D options) builds for tgllp with the
// fixture's extensions, so a failure names the path.
TEST_F(IrisCompile, EachFastPathBuildsAloneForTgllp) {
  const DeviceInfo xe = iris_xe().info;
  const opencl::KernelTuning tuning = opencl::select_tuning(xe);
  for (const std::string request : {"fp16", "subgroups", "int8", "none"}) {
    const std::string options = opencl::build_options(tuning, opencl::select_fast_paths(xe, tuning, request));
    for (const std::string file : {"matmul.cl", "gemm.cl"}) {
      const CompileResult r = ocloc_compile(ocloc_, dir_, request + "_" + file.substr(0, file.find('.')),
                                            opencl::program_source(file), "tgllp", options, extension_options(xe));
      EXPECT_TRUE(r.ok) << "fast path " << request << ": kernels/" << file << " does not build with '" << options
                        << "':\n"
                        << r.log;
    }
  }
}

std::string find_on_path(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + tool;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The int8 fast path's machine code for Iris Xe: the Q8_0/Q4_0 products use dp4a (one per four
// int8 products), and the fast-path matmuls use no scratch space (no register spills).
TEST_F(IrisCompile, Int8PathEmitsDp4aAndNothingSpills) {
  const std::string iga = find_on_path("iga64");
  if (iga.empty()) GTEST_SKIP() << "iga64 not installed (apt-get install libigc-tools)";
  const DeviceInfo xe = iris_xe().info;
  const std::string options = host_options(xe);
  const CompileResult r = ocloc_compile(ocloc_, dir_, "matmul_isa", opencl::program_source("matmul.cl"), "tgllp",
                                        options, extension_options(xe));
  ASSERT_TRUE(r.ok) << r.log;
  std::string binary;
  for (const auto& e : std::filesystem::directory_iterator(dir_.file("matmul_isa-tgllp"))) {
    if (e.path().extension() == ".bin") binary = e.path().string();
  }
  const std::string dis = dir_.file("matmul_isa-dis");
  std::filesystem::create_directories(dis);
  const std::string cmd = shell_quote(ocloc_) + " disasm -file " + shell_quote(binary) + " -device tgllp -dump " +
                          shell_quote(dis) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string ptm = read_text(dis + "/PTM.txt");
  ASSERT_FALSE(ptm.empty());
  for (const std::string kernel : {"kernel_matmul_q8_0_q8", "kernel_matmul_q4_0_q8", "kernel_matmul_q4_k_f32",
                                   "kernel_matmul_q8_0_f32"}) {
    const std::string asm_path = dis + "/" + kernel + ".asm";
    const std::string iga_cmd = shell_quote(iga) + " -d -p=12p1 " + shell_quote(dis + "/" + kernel + "_KernelHeap.dat") +
                                " >" + shell_quote(asm_path) + " 2>/dev/null";
    ASSERT_EQ(std::system(iga_cmd.c_str()), 0) << iga_cmd;
    const std::string text = read_text(asm_path);
    size_t dp4a = 0, scratch = 0;
    for (size_t at = text.find("dp4a "); at != std::string::npos; at = text.find("dp4a ", at + 1)) ++dp4a;
    for (size_t at = text.find("scratch"); at != std::string::npos; at = text.find("scratch", at + 1)) ++scratch;
    std::printf("[iris] %s: %zu dp4a, %zu scratch messages\n", kernel.c_str(), dp4a, scratch);
    if (kernel.ends_with("_q8")) {
      EXPECT_GT(dp4a, 0u) << kernel << " has no dp4a";
    } else {
      EXPECT_EQ(dp4a, 0u) << kernel;
    }
    EXPECT_EQ(scratch, 0u) << kernel << " spills";
  }
}

TEST_F(IrisCompile, TheFixtureNamesOnlyTargetsOclocKnows) {
  for (const std::string& device : iris_xe().ocloc_devices) {
    const CompileResult r = ocloc_compile(ocloc_, dir_, "probe", "kernel void k(global float* x) { x[0] = 1.0f; }",
                                          device, "-cl-std=CL1.2", extension_options(iris_xe().info));
    EXPECT_TRUE(r.ok) << device << ":\n" << r.log;
  }
}

// The gate must be able to fail: `double` on Gen12LP (no fp64), and half arithmetic on the baseline
// (no cl_khr_fp16), while the portable form (vload_half into float) passes both.
TEST_F(IrisCompile, NegativeControlsFail) {
  const DeviceInfo xe = iris_xe().info, base = portable_baseline();
  const std::string good = "kernel void k(global float* x) { x[1] = vload_half(0, (global const half*)x) * 2.0f; }";
  const std::string uses_double = "kernel void k(global float* x) { double d = x[0]; x[0] = (float)(d * 2.0); }";
  const std::string uses_half = "kernel void k(global half* x) { half h = x[0]; x[0] = h * h; }";
  const std::string options = host_options(xe);
  EXPECT_TRUE(ocloc_compile(ocloc_, dir_, "good_xe", good, "tgllp", options, extension_options(xe)).ok);
  EXPECT_TRUE(ocloc_compile(ocloc_, dir_, "good_base", good, "tgllp", host_options(base), extension_options(base)).ok);
  const CompileResult d = ocloc_compile(ocloc_, dir_, "double", uses_double, "tgllp", options, extension_options(xe));
  EXPECT_FALSE(d.ok) << "a kernel using double built for tgllp:\n" << d.log;
  const CompileResult h =
      ocloc_compile(ocloc_, dir_, "half", uses_half, "tgllp", host_options(base), extension_options(base));
  EXPECT_FALSE(h.ok) << "half arithmetic built without cl_khr_fp16:\n" << h.log;
}

}  // namespace
}  // namespace xelm
