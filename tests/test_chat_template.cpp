// test_chat_template.cpp — the native chat template renderer against Python jinja2 renderings of
// the real templates (tests/data/chat/fixtures.json from tools/gen_chat_template_fixtures.py):
// byte-identical output for every case, template detection, and errors for bad conversations.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/gguf.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const json& fixtures() {
  static const json parsed = json::parse(read_text(test::data_path("chat/fixtures.json")));
  return parsed;
}

ChatTemplateKind kind_for_fixture(const std::string& name) {
  if (name == "qwen3") return ChatTemplateKind::Qwen3;
  if (name == "qwen2.5") return ChatTemplateKind::Qwen25;
  if (name == "chatml") return ChatTemplateKind::ChatML;
  throw Error("fixtures.json: unknown template '" + name + "'");
}

std::vector<ChatMessage> messages_from(const json& conversation) {
  std::vector<ChatMessage> messages;
  for (const json& m : conversation) {
    messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>(),
                        m.value("reasoning_content", std::string{})});
  }
  return messages;
}

TEST(ChatTemplateFixtures, EveryCaseRendersByteIdentically) {
  const json& all = fixtures();
  std::map<std::string, std::vector<ChatMessage>> conversations;
  for (const auto& [name, conversation] : all.at("conversations").items()) conversations[name] = messages_from(conversation);
  ASSERT_GE(conversations.size(), 25u);

  std::map<std::string, int> checked_per_template;
  for (const json& c : all.at("cases")) {
    const std::string template_name = c.at("template").get<std::string>();
    const std::string conversation = c.at("conversation").get<std::string>();
    const bool add_generation_prompt = c.at("add_generation_prompt").get<bool>();
    // Unset enable_thinking renders like true in every template.
    const bool enable_thinking = c.at("enable_thinking").is_null() || c.at("enable_thinking").get<bool>();
    const ChatTemplate chat_template(kind_for_fixture(template_name));
    const std::string rendered = chat_template.render(conversations.at(conversation), add_generation_prompt, enable_thinking);
    EXPECT_EQ(rendered, c.at("expected").get<std::string>())
        << template_name << " / " << conversation << " / add_generation_prompt=" << add_generation_prompt
        << " / enable_thinking=" << c.at("enable_thinking").dump();
    ++checked_per_template[template_name];
  }
  EXPECT_EQ(checked_per_template.size(), 3u);
  for (const auto& [name, count] : checked_per_template) EXPECT_GE(count, 150) << name;
}

TEST(ChatTemplateDetect, RealTemplateSources) {
  const json& sources = fixtures().at("templates");
  EXPECT_EQ(ChatTemplate::detect(sources.at("qwen3").get<std::string>()).kind(), ChatTemplateKind::Qwen3);
  EXPECT_EQ(ChatTemplate::detect(read_text(test::data_path("chat/qwen2.5_chat_template.jinja"))).kind(),
            ChatTemplateKind::Qwen25);
  EXPECT_EQ(ChatTemplate::detect(sources.at("chatml").get<std::string>()).kind(), ChatTemplateKind::ChatML);
  EXPECT_EQ(ChatTemplate::detect("").kind(), ChatTemplateKind::ChatML);
  EXPECT_EQ(ChatTemplate::detect("{{ messages[0].content }}").kind(), ChatTemplateKind::ChatML);
}

TEST(ChatTemplateDetect, FromGgufMetadata) {
  gguf::GgufWriter with_template;
  with_template.set_string("general.architecture", "qwen3");
  with_template.set_string("tokenizer.chat_template", fixtures().at("templates").at("qwen3").get<std::string>());
  const std::vector<uint8_t> bytes = with_template.write_to_memory();
  EXPECT_EQ(ChatTemplate::from_gguf(*gguf::GgufFile::parse(bytes, "with.gguf")).kind(), ChatTemplateKind::Qwen3);

  gguf::GgufWriter qwen25;
  qwen25.set_string("tokenizer.chat_template", read_text(test::data_path("chat/qwen2.5_chat_template.jinja")));
  const std::vector<uint8_t> qwen25_bytes = qwen25.write_to_memory();
  EXPECT_EQ(ChatTemplate::from_gguf(*gguf::GgufFile::parse(qwen25_bytes, "qwen25.gguf")).kind(), ChatTemplateKind::Qwen25);

  gguf::GgufWriter without_template;
  without_template.set_string("general.architecture", "qwen3");
  const std::vector<uint8_t> bare = without_template.write_to_memory();
  EXPECT_EQ(ChatTemplate::from_gguf(*gguf::GgufFile::parse(bare, "bare.gguf")).kind(), ChatTemplateKind::ChatML);
}

TEST(ChatTemplateErrors, UnknownRoleThrowsOneLineNamingIt) {
  const std::vector<ChatMessage> messages = {{"user", "hi", ""}, {"narrator", "meanwhile", ""}};
  for (ChatTemplateKind kind : {ChatTemplateKind::Qwen3, ChatTemplateKind::Qwen25, ChatTemplateKind::ChatML}) {
    try {
      (void)ChatTemplate(kind).render(messages, true);
      ADD_FAILURE() << "no error for an unknown role with " << chat_template_kind_name(kind);
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(),
                   "chat template: message 1 has unknown role 'narrator' (expected system, user, assistant or tool)");
    }
  }
}

TEST(ChatTemplateErrors, EmptyConversationThrows) {
  EXPECT_THROW((void)ChatTemplate(ChatTemplateKind::Qwen3).render({}, true), Error);
}

TEST(ChatTemplateRender, ThinkingSwitchOnlyChangesTheQwen3GenerationPrompt) {
  const std::vector<ChatMessage> messages = {{"user", "Hi /no_think", ""}};
  const ChatTemplate qwen3(ChatTemplateKind::Qwen3);
  EXPECT_EQ(qwen3.render(messages, true, false),
            "<|im_start|>user\nHi /no_think<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(qwen3.render(messages, true, true), "<|im_start|>user\nHi /no_think<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(qwen3.render(messages, false, false), "<|im_start|>user\nHi /no_think<|im_end|>\n");
  const ChatTemplate qwen25(ChatTemplateKind::Qwen25);
  EXPECT_EQ(qwen25.render(messages, true, false), qwen25.render(messages, true, true));
}

}  // namespace
}  // namespace xelm
