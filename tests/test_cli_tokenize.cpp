// test_cli_tokenize.cpp — `xelm tokenize` end to end: llama-tokenize style output, --ids,
// --no-parse-special, -f, and one-line errors for files without a tokenizer.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace xelm {
namespace {

using test::run_xelm;

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kTokenizer = test::data_path("tokenizer/qwen3-tokenizer.gguf.gz");

TEST(CliTokenize, PiecesAndIds) {
  test::ScratchDir dir;
  test::XelmRun r = run_xelm("tokenize -m " + kTokenizer + " -p 'Hello world'", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "  9707 -> 'Hello'\n  1879 -> ' world'\n");

  r = run_xelm("tokenize -m " + kTokenizer + " -p 'Hello world' --ids", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[9707, 1879]\n");
}

TEST(CliTokenize, SpecialTokensParsedUnlessAskedNotTo) {
  test::ScratchDir dir;
  test::XelmRun r = run_xelm("tokenize -m " + kTokenizer + " -p '<|im_start|>user' --ids", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[151644, 872]\n");

  r = run_xelm("tokenize -m " + kTokenizer + " -p '<|im_start|>user' --ids --no-parse-special", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("151644")));
  EXPECT_THAT(r.out, HasSubstr(", 872]"));
}

TEST(CliTokenize, ReadsTheTextFromAFile) {
  test::ScratchDir dir;
  const std::string prompt = dir.file("prompt.txt");
  std::ofstream(prompt, std::ios::binary) << "Hello world\n";
  const test::XelmRun r = run_xelm("tokenize -m " + kTokenizer + " -f " + prompt + " --ids", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[9707, 1879, 198]\n");  // the newline is part of the text
}

TEST(CliTokenize, Errors) {
  test::ScratchDir dir;
  const std::string no_tokenizer = test::data_path("gguf/reference_v3.gguf");
  test::XelmRun r = run_xelm("tokenize -m " + no_tokenizer + " -p hi", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("reference_v3.gguf: the file has no tokenizer"));
  EXPECT_EQ(r.out, "");

  r = run_xelm("tokenize -m " + kTokenizer, dir);  // neither -p nor -f
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--prompt"));
}

}  // namespace
}  // namespace xelm
