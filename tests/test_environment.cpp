// test_environment.cpp — tools/xelm/environment.h: each variable reaches its option, unset and
// empty variables leave the defaults, the XDG directories fall back to HOME, a malformed value is a
// one-line error naming the variable and what it expects, and the xelm binary hands the values to
// the OpenCL backend (or stops with that error before loading anything).
#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

using cli::Environment;
using cli::parse_environment;
using ::testing::HasSubstr;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// The message of the xelm::Error that parsing `variables` throws ("" when it does not throw).
std::string error_of(const cli::EnvironmentVariables& variables) {
  try {
    parse_environment(variables);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Environment, NothingSetLeavesTheDefaults) {
  const Environment env = parse_environment({});
  const opencl::OpenClOptions defaults;
  EXPECT_EQ(env.opencl.device, "");
  EXPECT_EQ(env.opencl.max_alloc_bytes, 0u);
  EXPECT_EQ(env.opencl.fast_paths, defaults.fast_paths);
  EXPECT_EQ(env.opencl.gemm_min_tokens, std::nullopt);
  EXPECT_TRUE(env.opencl.fused);
  EXPECT_EQ(env.opencl.cache_dir, "");  // no HOME either: no kernel cache
  EXPECT_EQ(env.device_memory_cap_bytes, 0u);
  EXPECT_TRUE(env.tune_store_dir.empty());
  EXPECT_TRUE(env.chat_history_file.empty());
}

TEST(Environment, ValuesReachTheOptions) {
  const Environment env = parse_environment({{"XELM_OPENCL_DEVICE", "llvmpipe"},
                                             {"XELM_OPENCL_MAX_ALLOC_MB", "3"},
                                             {"XELM_OPENCL_FAST_PATHS", "int8"},
                                             {"XELM_OPENCL_GEMM_MIN_TOKENS", "0"},
                                             {"XELM_OPENCL_FUSED", "0"},
                                             {"XELM_KERNEL_CACHE_DIR", "/tmp/kernels"},
                                             {"XELM_DEVICE_MEMORY_MB", "58"}});
  EXPECT_EQ(env.opencl.device, "llvmpipe");
  EXPECT_EQ(env.opencl.max_alloc_bytes, 3 * kMiB);
  EXPECT_EQ(env.opencl.fast_paths, "int8");
  EXPECT_EQ(env.opencl.gemm_min_tokens, std::optional<int>(0));
  EXPECT_FALSE(env.opencl.fused);
  EXPECT_EQ(env.opencl.cache_dir, "/tmp/kernels");
  EXPECT_EQ(env.device_memory_cap_bytes, 58 * kMiB);

  EXPECT_TRUE(parse_environment({{"XELM_OPENCL_FUSED", "1"}}).opencl.fused);
  EXPECT_EQ(parse_environment({{"XELM_OPENCL_GEMM_MIN_TOKENS", "1000000"}}).opencl.gemm_min_tokens,
            std::optional<int>(1000000));
}

TEST(Environment, EmptyValuesCountAsUnsetButAnEmptyKernelCacheDirTurnsTheCacheOff) {
  const Environment env = parse_environment({{"XELM_OPENCL_DEVICE", ""},
                                             {"XELM_OPENCL_MAX_ALLOC_MB", ""},
                                             {"XELM_OPENCL_FAST_PATHS", ""},
                                             {"XELM_OPENCL_GEMM_MIN_TOKENS", ""},
                                             {"XELM_OPENCL_FUSED", ""},
                                             {"XELM_DEVICE_MEMORY_MB", ""},
                                             {"XELM_KERNEL_CACHE_DIR", ""},
                                             {"HOME", "/home/u"}});
  EXPECT_EQ(env.opencl.device, "");
  EXPECT_EQ(env.opencl.max_alloc_bytes, 0u);
  EXPECT_EQ(env.opencl.fast_paths, "auto");
  EXPECT_EQ(env.opencl.gemm_min_tokens, std::nullopt);
  EXPECT_TRUE(env.opencl.fused);
  EXPECT_EQ(env.device_memory_cap_bytes, 0u);
  EXPECT_EQ(env.opencl.cache_dir, "");
}

TEST(Environment, XdgDirectoriesFallBackToHome) {
  const Environment home = parse_environment({{"HOME", "/home/u"}});
  EXPECT_EQ(home.opencl.cache_dir, "/home/u/.cache/xelm/kernels");
  EXPECT_EQ(home.tune_store_dir, "/home/u/.config/xelm/tune");
  EXPECT_EQ(home.chat_history_file, "/home/u/.local/state/xelm/chat_history");

  const Environment xdg = parse_environment({{"HOME", "/home/u"},
                                             {"XDG_CACHE_HOME", "/c"},
                                             {"XDG_CONFIG_HOME", "/cfg"},
                                             {"XDG_STATE_HOME", "/s"}});
  EXPECT_EQ(xdg.opencl.cache_dir, "/c/xelm/kernels");
  EXPECT_EQ(xdg.tune_store_dir, "/cfg/xelm/tune");
  EXPECT_EQ(xdg.chat_history_file, "/s/xelm/chat_history");

  const Environment empty_xdg = parse_environment({{"HOME", "/home/u"}, {"XDG_CONFIG_HOME", ""}});
  EXPECT_EQ(empty_xdg.tune_store_dir, "/home/u/.config/xelm/tune");
  // XELM_KERNEL_CACHE_DIR wins over the XDG default.
  EXPECT_EQ(parse_environment({{"XDG_CACHE_HOME", "/c"}, {"XELM_KERNEL_CACHE_DIR", "/k"}}).opencl.cache_dir, "/k");
}

TEST(Environment, MalformedValuesAreOneLineErrorsNamingTheVariable) {
  struct Case {
    const char* name;
    const char* value;
    const char* expects;
  };
  const Case cases[] = {
      {"XELM_OPENCL_MAX_ALLOC_MB", "abc", "a positive number of MiB"},
      {"XELM_OPENCL_MAX_ALLOC_MB", "0", "a positive number of MiB"},
      {"XELM_OPENCL_MAX_ALLOC_MB", "12x", "a positive number of MiB"},
      {"XELM_OPENCL_MAX_ALLOC_MB", "-1", "a positive number of MiB"},
      {"XELM_OPENCL_MAX_ALLOC_MB", "99999999999999999999", "a positive number of MiB"},
      {"XELM_OPENCL_GEMM_MIN_TOKENS", "-1", "a token count (0 = off)"},
      {"XELM_OPENCL_GEMM_MIN_TOKENS", "many", "a token count (0 = off)"},
      {"XELM_OPENCL_GEMM_MIN_TOKENS", "1000001", "a token count (0 = off)"},
      {"XELM_OPENCL_FUSED", "2", "0 (the unfused ops) or 1"},
      {"XELM_OPENCL_FUSED", "off", "0 (the unfused ops) or 1"},
      {"XELM_DEVICE_MEMORY_MB", "0", "a positive number of MiB"},
      {"XELM_DEVICE_MEMORY_MB", "1G", "a positive number of MiB"},
  };
  for (const Case& c : cases) {
    const std::string message = error_of({{c.name, c.value}});
    EXPECT_EQ(message, std::string(c.name) + "='" + c.value + "' is not " + c.expects);
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Environment, ReadsTheProcessEnvironment) {
  ASSERT_EQ(::setenv("XELM_OPENCL_GEMM_MIN_TOKENS", "7", 1), 0);
  const Environment env = cli::read_environment();
  ::unsetenv("XELM_OPENCL_GEMM_MIN_TOKENS");
  EXPECT_EQ(env.opencl.gemm_min_tokens, std::optional<int>(7));
}

// The xelm binary: a malformed value stops any command with the one-line error; a good one reaches
// the OpenCL backend that load_engine builds.
TEST(Environment, TheBinaryReportsMalformedValuesAndPassesGoodOnes) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(test::run_xelm("make-test-model -o " + model + " --layers 2 --embd 64 --heads 4 --kv-heads 2 --head-dim 16 "
                           "--ff 128 --type F16", dir).exit_code, 0);
  const std::string run = "--log-level debug run -m " + model + " --tokens 1,2 -n 1 --ids -ngl 99";
  test::XelmRun r = test::run_xelm(run, dir, "", "XELM_OPENCL_FUSED=yes");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: XELM_OPENCL_FUSED='yes' is not 0 (the unfused ops) or 1\n");

  r = test::run_xelm(run, dir, "", "XELM_OPENCL_GEMM_MIN_TOKENS=5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  if (r.err.find("OpenCL is not usable") != std::string::npos) GTEST_SKIP() << "no OpenCL device";
  EXPECT_THAT(r.err, HasSubstr("GEMM from 5 tokens"));

  r = test::run_xelm(run, dir, "", "XELM_OPENCL_DEVICE=no-such-device-xyz");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("OpenCL is not usable (--device 'no-such-device-xyz'"));
}

}  // namespace
}  // namespace xelm
