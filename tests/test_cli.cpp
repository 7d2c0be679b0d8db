// test_cli.cpp — the `xelm` binary end to end: subcommands work from the command line, text goes to
// stdout and logs to stderr, and bad input ends with a one-line error and a non-zero exit code.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <regex>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace xelm {
namespace {

using test::run_xelm;

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Cli, HelpForEverySubcommand) {
  test::ScratchDir dir;
  EXPECT_EQ(run_xelm("--help", dir).exit_code, 0);
  for (const char* sub : {"run", "info", "quantize", "make-test-model"}) {
    const test::XelmRun r = run_xelm(std::string(sub) + " --help", dir);
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_THAT(r.out, HasSubstr("Usage")) << sub;
  }
}

TEST(Cli, MakeInfoQuantizeRun) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf"), q8 = dir.file("m-q8.gguf");
  test::XelmRun r = run_xelm("make-test-model -o " + model + " --layers 2 --embd 64 --heads 4 --kv-heads 2 --head-dim 16 --ff 128 --type F16", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");  // logs only

  r = run_xelm("info " + model, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("arch:        qwen3"));
  EXPECT_THAT(r.out, HasSubstr("gpt2 / pre 'qwen2', 151936 tokens"));  // real tokenizer, padded to the vocab
  EXPECT_THAT(r.out, HasSubstr("blk.1.ffn_down.weight"));

  r = run_xelm("quantize " + model + " " + q8 + " Q8_0", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("blk.0.attn_q.weight"));
  EXPECT_THAT(r.err, HasSubstr("F16 -> Q8_0"));

  r = run_xelm("run -m " + q8 + " --tokens 9707,11,1879 -n 8 --ids", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int count = 0;
  for (char c : r.out) count += c == ' ';
  EXPECT_EQ(count, 8) << r.out;  // eight ids on stdout
  EXPECT_THAT(r.err, HasSubstr("generated: 8 tokens"));
  EXPECT_THAT(r.out, Not(HasSubstr("info")));
}

TEST(Cli, BadInputGivesOneLineErrors) {
  test::ScratchDir dir;
  const std::string bogus = dir.file("bogus.gguf");
  std::ofstream(bogus) << "this is not a gguf file";
  test::XelmRun r = run_xelm("info " + bogus, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("bogus.gguf"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  r = run_xelm("run -m " + dir.file("missing.gguf") + " --tokens 1", dir);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("missing.gguf"));

  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_xelm("make-test-model -o " + model, dir).exit_code, 0);
  r = run_xelm("run -m " + model + " --tokens 1,x", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--tokens: 'x' is not a token id"));
  r = run_xelm("run -m " + model + " --tokens 1 --temp -1", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--temp"));
  r = run_xelm("run -m " + model + " --tokens 1 -ngl many", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("-ngl: 'many' is not a layer count or auto"));
  r = run_xelm("quantize " + model + " " + dir.file("o.gguf") + " Q9_Z", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("unknown quantization type 'Q9_Z'"));
  r = run_xelm("make-test-model -o " + dir.file("x.gguf") + " --heads 3 --kv-heads 2 --tokenizer none", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("invalid shape"));
}

}  // namespace
}  // namespace xelm

namespace xelm {
namespace {

// -ngl on the command line: the plan printout, `auto` under a capped device memory, and the
// refusal of a plan that cannot fit, naming the limit. Skips without an OpenCL device.
TEST(Cli, OffloadPlanAutoAndRefusal) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_xelm("make-test-model -o " + model + " --layers 8 --embd 128 --heads 4 --kv-heads 2 --head-dim 32 --ff 256 --type F16", dir).exit_code, 0);
  test::XelmRun r = run_xelm("run -m " + model + " --tokens 1,2,3 -n 4 -c 256 -b 32 -ngl 3 --ids", dir);
  if (r.err.find("OpenCL is not usable") != std::string::npos) GTEST_SKIP() << "no OpenCL device";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("offload plan: GPU: layers 5-7, output head; CPU: embedding, layers 0-4"));
  EXPECT_THAT(r.err, HasSubstr("OpenCL per decoded token"));
  EXPECT_THAT(r.err, HasSubstr("copied to the device"));
  const std::string devices = run_xelm("devices", dir).out;
  if (devices.find("unified memory:    no") == std::string::npos) {  // PoCL, iGPUs: weights used in place
    EXPECT_THAT(r.err, HasSubstr("used in place, 0.0 KiB copied to the device"));
  }

  // Capped at 58 MiB the device holds the head (38 MiB tied embedding, 151936 x 128 F16, and 19 MiB of
  // logits scratch) and a few of the 0.36 MiB layers, not all.
  r = run_xelm("run -m " + model + " --tokens 1,2,3 -n 4 -c 256 -b 32 -ngl auto --ids", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("-ngl auto: 8 of 8 layers"));
  const std::string capped = "XELM_DEVICE_MEMORY_MB=58 " + std::string(XELM_BINARY_PATH);
  FILE* pipe = popen((capped + " run -m " + model + " --tokens 1,2,3 -n 4 -c 256 -b 32 -ngl auto --ids 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  for (size_t got; (got = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, got);
  EXPECT_EQ(pclose(pipe), 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(-ngl auto: (\d+) of 8 layers)"))) << out;
  EXPECT_GT(std::stoi(m[1]), 0);
  EXPECT_LT(std::stoi(m[1]), 8);

  pipe = popen((capped + " run -m " + model + " --tokens 1 -n 1 -c 256 -b 32 -ngl 99 2>&1").c_str(), "r");
  out.clear();
  for (size_t got; (got = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, got);
  EXPECT_NE(pclose(pipe), 0);
  EXPECT_THAT(out, HasSubstr("but the device offers 58.0 MiB"));
}

}  // namespace
}  // namespace xelm
