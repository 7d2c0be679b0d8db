// chat_template.h — renders chat conversations into Qwen's ChatML prompt text, natively (no Jinja
// engine), byte for byte as Hugging Face transformers renders the model's Jinja chat template.
//
// Kinds (chosen from the GGUF's tokenizer.chat_template text by detect()):
//   Qwen3   the Qwen3 template. Assistant turns before the last real user query lose their
//           <think>…</think> block; turns after it keep their reasoning (from reasoning_content,
//           else parsed out of <think>…</think> in content); the final assistant turn always gets
//           a think block. enable_thinking=false appends "<think>\n\n</think>\n\n" to the
//           generation prompt, which makes the model skip thinking.
//   Qwen25  Qwen2/2.5-Instruct ChatML; with no leading system message it inserts the default
//           "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.".
//   ChatML  plain ChatML, the fallback for an unknown or absent template.
// Tool results (role "tool") are wrapped in <tool_response> and consecutive ones share one user
// turn (Qwen3, Qwen25); ChatML renders them as plain "tool" turns.
//
// The "/think" and "/no_think" soft switches are plain user text to the template: it renders
// them unchanged and the Qwen3 model itself, trained on them, switches thinking on or off for
// that turn. Acting on them at run time (e.g. choosing the sampler preset) is the chat CLI's job.
//
// Not rendered: tool definitions (the template's `tools` argument, which adds a "# Tools" system
// block) and assistant tool_calls; tool calls can be carried in the assistant content as text.
// An empty reasoning_content counts as absent (the Jinja template would then skip parsing
// <think> out of content). Unknown roles throw xelm::Error, where the Jinja templates would drop
// the message silently; an empty conversation throws too (the Qwen templates fail on it).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "runtime/gguf.h"

namespace xelm {

struct ChatMessage {
  std::string role;               // system, user, assistant or tool
  std::string content;
  std::string reasoning_content;  // assistant turns only; empty = none
};

enum class ChatTemplateKind { Qwen3, Qwen25, ChatML };

std::string_view chat_template_kind_name(ChatTemplateKind kind);  // "qwen3", "qwen2.5", "chatml"

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatTemplateKind kind) : kind_(kind) {}  // a given kind, e.g. a user's override

  // From tokenizer.chat_template; absent → ChatML with a logged warning.
  static ChatTemplate from_gguf(const gguf::GgufFile& file);
  // Qwen3 if the source mentions enable_thinking or <think>, Qwen25 if it carries the
  // "You are Qwen, created by Alibaba Cloud" default, otherwise ChatML with a logged warning.
  static ChatTemplate detect(std::string_view jinja_source);

  ChatTemplateKind kind() const { return kind_; }

  // The prompt text; add_generation_prompt opens an assistant turn for the model to continue.
  // enable_thinking only matters for Qwen3. Throws xelm::Error for an unknown role or no messages.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                     bool enable_thinking = true) const;

 private:
  ChatTemplateKind kind_;
};

}  // namespace xelm
