// test_tokenizer.cpp — the Qwen BPE tokenizer against Hugging Face `tokenizers`
// (tests/data/tokenizer/fixtures.json, from tools/gen_tokenizer_fixtures.py): identical ids with and
// without special-token parsing, decode round trips, streaming decode, invalid UTF-8, bad files.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "runtime/error.h"
#include "runtime/file_io.h"
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"
#include "runtime/vocab.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

struct Case {
  std::string category, text, decoded;
  std::vector<int32_t> ids, ids_no_special;
};

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bytes_ = read_file_bytes(test::data_path("tokenizer/qwen3-tokenizer.gguf.gz"));
    file_ = gguf::GgufFile::parse(bytes_, "qwen3-tokenizer.gguf");
    tokenizer_ = Tokenizer::from_gguf(*file_);
    std::ifstream in(test::data_path("tokenizer/fixtures.json"));
    const nlohmann::json fixtures = nlohmann::json::parse(in);
    for (const nlohmann::json& c : fixtures.at("cases")) {
      Case k{c.at("category"), c.at("text"), c.value("decoded", c.at("text").get<std::string>()),
             c.at("ids").get<std::vector<int32_t>>(), c.at("ids_no_special").get<std::vector<int32_t>>()};
      cases_.push_back(std::move(k));
    }
  }
  static void TearDownTestSuite() {
    tokenizer_.reset();
    file_.reset();
  }

  static bool is_valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
      const size_t n = utf8_sequence_length(s, i);
      if (n == 0) return false;
      i += n;
    }
    return true;
  }

  static inline std::vector<uint8_t> bytes_;
  static inline std::unique_ptr<gguf::GgufFile> file_;
  static inline std::unique_ptr<Tokenizer> tokenizer_;
  static inline std::vector<Case> cases_;
};

TEST_F(TokenizerTest, FixturesCoverTheCorpus) {
  EXPECT_GE(cases_.size(), 150u);
}

TEST_F(TokenizerTest, IdsMatchHuggingFaceWithSpecialTokens) {
  size_t matched = 0;
  for (const Case& c : cases_) {
    const std::vector<int32_t> ids = tokenizer_->encode(c.text, true);
    EXPECT_EQ(ids, c.ids) << c.category << ": " << c.text.substr(0, 200);
    matched += ids == c.ids;
  }
  EXPECT_EQ(matched, cases_.size());
}

TEST_F(TokenizerTest, IdsMatchHuggingFaceWithSpecialTokensAsText) {
  size_t matched = 0;
  for (const Case& c : cases_) {
    const std::vector<int32_t> ids = tokenizer_->encode(c.text, false);
    EXPECT_EQ(ids, c.ids_no_special) << c.category << ": " << c.text.substr(0, 200);
    matched += ids == c.ids_no_special;
  }
  EXPECT_EQ(matched, cases_.size());
}

TEST_F(TokenizerTest, DecodeGivesTheTextInNfc) {
  for (const Case& c : cases_) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(c.text, true)), c.decoded) << c.category;
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(c.text, false)), c.decoded) << c.category;
  }
}

TEST_F(TokenizerTest, StreamingDecodeEmitsWholeCharacters) {
  for (const Case& c : cases_) {
    Utf8Stream stream;
    std::string streamed;
    for (const int32_t id : c.ids) {
      const std::string chunk = stream.push(tokenizer_->vocab().piece(id));
      EXPECT_TRUE(is_valid_utf8(chunk)) << c.category << ": after token " << id;
      streamed += chunk;
    }
    EXPECT_EQ(stream.flush(), "") << c.category;
    EXPECT_EQ(streamed, c.decoded) << c.category;
  }
}

TEST_F(TokenizerTest, ControlTokensAreTextWithoutParseSpecial) {
  const Vocabulary& vocab = tokenizer_->vocab();
  auto count_control = [&](const std::vector<int32_t>& ids) {
    return std::count_if(ids.begin(), ids.end(), [&](int32_t id) { return vocab.type(id) == TokenType::Control; });
  };
  size_t with_control = 0;
  for (const Case& c : cases_) {
    with_control += count_control(c.ids) > 0;
    EXPECT_EQ(count_control(tokenizer_->encode(c.text, false)), 0) << c.category << ": " << c.text.substr(0, 200);
  }
  EXPECT_GE(with_control, 20u);  // the corpus does exercise control tokens

  const int32_t im_end = tokenizer_->token_id("<|im_end|>").value();
  EXPECT_EQ(tokenizer_->encode("<|im_end|>", true), std::vector<int32_t>{im_end});
  const std::vector<int32_t> typed = tokenizer_->encode("<|im_end|>", false);
  EXPECT_GT(typed.size(), 1u);
  EXPECT_EQ(tokenizer_->decode(typed), "<|im_end|>");
  // User-defined added tokens stay tokens either way (HF encode_special_tokens, llama.cpp).
  const int32_t think = tokenizer_->token_id("<think>").value();
  EXPECT_EQ(tokenizer_->encode("<think>", false), std::vector<int32_t>{think});
}

TEST_F(TokenizerTest, TokenIdLooksUpStoredText) {
  EXPECT_EQ(tokenizer_->token_id("<|im_start|>"), 151644);
  EXPECT_EQ(tokenizer_->token_id("<think>"), 151667);
  EXPECT_EQ(tokenizer_->token_id("Hello"), 9707);
  EXPECT_EQ(tokenizer_->token_id("Ġworld"), 1879);
  EXPECT_EQ(tokenizer_->token_id("no such token"), std::nullopt);
}

TEST_F(TokenizerTest, EmptyTextHasNoTokens) {
  EXPECT_TRUE(tokenizer_->encode("").empty());
  EXPECT_EQ(tokenizer_->decode(std::vector<int32_t>{}), "");
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const int32_t too_big = static_cast<int32_t>(tokenizer_->vocab().size());
  EXPECT_THROW(tokenizer_->decode(std::vector<int32_t>{1, too_big}), Error);
  EXPECT_THROW(tokenizer_->decode(std::vector<int32_t>{-1}), Error);
}

TEST_F(TokenizerTest, InvalidUtf8IsEncodedByteForByte) {
  const std::vector<std::string> invalid = {
      "\xFF", "a\xFF" "b", "\xE4\xB8", "\xE4\xB8" "abc", "\xC0\xAF", "\xED\xA0\x80" "surrogate",
      "\xF4\x90\x80\x80", "\x80\x80\x80", "ok \xF0\x9F\x98 cut emoji", "<|im_end|>\xFE<think>\xFF",
  };
  for (const std::string& text : invalid) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false)), text);
  }
  // Bytes that never occur in UTF-8 form one pre-token: "\xFF\xFF" is as BPE merges it, alone.
  EXPECT_EQ(tokenizer_->encode("a \xFF\xFF b"), [&] {
    std::vector<int32_t> ids = tokenizer_->encode("a ");
    const std::vector<int32_t> word = tokenizer_->encode("\xFF\xFF");
    const std::vector<int32_t> rest = tokenizer_->encode(" b");
    ids.insert(ids.end(), word.begin(), word.end());
    ids.insert(ids.end(), rest.begin(), rest.end());
    return ids;
  }());
}

// Random byte strings: each valid stretch comes back in NFC, every invalid byte as it was.
TEST_F(TokenizerTest, RandomBytesRoundTrip) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 64), ascii(0, 4);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    for (int i = length(rng); i > 0; --i) {  // mostly ASCII, so valid and invalid stretches mix
      text.push_back(static_cast<char>(ascii(rng) == 0 ? byte(rng) : 0x20 + byte(rng) % 0x5F));
    }
    std::string expected;
    for (size_t i = 0; i < text.size();) {
      const size_t start = i;
      for (size_t n; i < text.size() && (n = utf8_sequence_length(text, i)) > 0;) i += n;
      if (i > start) {
        utf8proc_uint8_t* nfc = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                                                static_cast<utf8proc_ssize_t>(i - start), &nfc,
                                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        ASSERT_GE(n, 0);
        expected.append(reinterpret_cast<const char*>(nfc), static_cast<size_t>(n));
        std::free(nfc);
      }
      for (; i < text.size() && utf8_sequence_length(text, i) == 0; ++i) expected.push_back(text[i]);
    }
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false)), expected) << "trial " << trial;
  }
}

TEST(TokenizerErrors, FileWithoutTokenizer) {
  const std::vector<uint8_t> bytes = test::read_binary(test::data_path("gguf/reference_v3.gguf"));
  const auto file = gguf::GgufFile::parse(bytes, "reference_v3.gguf");
  EXPECT_THAT([&] { Tokenizer::from_gguf(*file); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("reference_v3.gguf: the file has no tokenizer")));
}

TEST(TokenizerErrors, UnsupportedModelOrPreTokenizer) {
  auto file_with = [](const std::string& model, const std::string& pre) {
    gguf::GgufWriter w;
    w.set_string("tokenizer.ggml.model", model);
    w.set_string("tokenizer.ggml.pre", pre);
    w.set_strings("tokenizer.ggml.tokens", {"a", "b"});
    return w.write_to_memory();
  };
  const std::vector<uint8_t> llama = file_with("llama", "default");
  EXPECT_THAT([&] { Tokenizer::from_gguf(*gguf::GgufFile::parse(llama, "spm.gguf")); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("spm.gguf: tokenizer.ggml.model is 'llama'")));
  const std::vector<uint8_t> gpt2 = file_with("gpt2", "llama3");
  EXPECT_THAT([&] { Tokenizer::from_gguf(*gguf::GgufFile::parse(gpt2, "l3.gguf")); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("l3.gguf: tokenizer.ggml.pre is 'llama3'")));
}

}  // namespace
}  // namespace xelm
