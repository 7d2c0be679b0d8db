// chat_template.cpp — the Qwen3, Qwen2.5 and plain ChatML prompt renderers, each a direct
// transcription of its Jinja template (see chat_template.h for the behaviour they reproduce).
#include "runtime/chat_template.h"

#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "runtime/error.h"

namespace xelm {
namespace {

constexpr std::string_view kQwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Python's str.lstrip('\n'), str.rstrip('\n') and str.strip('\n').
std::string_view lstrip_newlines(std::string_view s) {
  const size_t first = s.find_first_not_of('\n');
  return first == std::string_view::npos ? std::string_view{} : s.substr(first);
}
std::string_view rstrip_newlines(std::string_view s) {
  const size_t last = s.find_last_not_of('\n');
  return last == std::string_view::npos ? std::string_view{} : s.substr(0, last + 1);
}
std::string_view strip_newlines(std::string_view s) { return rstrip_newlines(lstrip_newlines(s)); }

// Python's s.split(sep)[-1] and s.split(sep)[0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  const size_t at = s.rfind(sep);
  return at == std::string_view::npos ? s : s.substr(at + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
  const size_t at = s.find(sep);
  return at == std::string_view::npos ? s : s.substr(0, at);
}

void check_roles(std::span<const ChatMessage> messages) {
  if (messages.empty()) throw Error("chat template: no messages to render");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      throw Error("chat template: message " + std::to_string(i) + " has unknown role '" + role +
                  "' (expected system, user, assistant or tool)");
    }
  }
}

void append_turn(std::string& out, std::string_view role, std::string_view content) {
  out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
}

// Tool results: consecutive tool messages share one user turn, each in <tool_response> tags.
void append_tool_response(std::string& out, std::span<const ChatMessage> messages, size_t i) {
  if (i == 0 || messages[i - 1].role != "tool") out.append("<|im_start|>user");
  out.append("\n<tool_response>\n").append(messages[i].content).append("\n</tool_response>");
  if (i + 1 == messages.size() || messages[i + 1].role != "tool") out.append("<|im_end|>\n");
}

// Index of the last user message that is a real query (not a <tool_response> wrapper), or the last
// index when there is none: assistant turns after it keep their reasoning (ns.last_query_index).
size_t last_query_index(std::span<const ChatMessage> messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    const std::string& content = messages[i].content;
    const bool wrapped_tool_response = content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
    if (messages[i].role == "user" && !wrapped_tool_response) return i;
  }
  return messages.size() - 1;
}

void append_qwen3_assistant(std::string& out, const ChatMessage& message, bool keep_reasoning, bool is_last) {
  std::string_view content = message.content;
  std::string_view reasoning;
  if (!message.reasoning_content.empty()) {
    reasoning = message.reasoning_content;
  } else if (content.find("</think>") != std::string_view::npos) {
    reasoning = lstrip_newlines(after_last(rstrip_newlines(before_first(content, "</think>")), "<think>"));
    content = lstrip_newlines(after_last(content, "</think>"));
  }
  out.append("<|im_start|>assistant\n");
  if (keep_reasoning && (is_last || !reasoning.empty())) {
    out.append("<think>\n").append(strip_newlines(reasoning)).append("\n</think>\n\n").append(lstrip_newlines(content));
  } else {
    out.append(content);
  }
  out.append("<|im_end|>\n");
}

std::string render_qwen3(std::span<const ChatMessage> messages, bool add_generation_prompt, bool enable_thinking) {
  std::string out;
  if (messages.front().role == "system") append_turn(out, "system", messages.front().content);
  const size_t query_index = last_query_index(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "user" || (message.role == "system" && i > 0)) {
      append_turn(out, message.role, message.content);
    } else if (message.role == "assistant") {
      append_qwen3_assistant(out, message, i > query_index, i + 1 == messages.size());
    } else if (message.role == "tool") {
      append_tool_response(out, messages, i);
    }
  }
  if (add_generation_prompt) {
    out.append("<|im_start|>assistant\n");
    if (!enable_thinking) out.append("<think>\n\n</think>\n\n");
  }
  return out;
}

std::string render_qwen25(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  if (messages.front().role != "system") append_turn(out, "system", kQwen25DefaultSystem);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "tool") {
      append_tool_response(out, messages, i);
    } else {
      append_turn(out, message.role, message.content);
    }
  }
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& message : messages) append_turn(out, message.role, message.content);
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

}  // namespace

std::string_view chat_template_kind_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::Qwen3: return "qwen3";
    case ChatTemplateKind::Qwen25: return "qwen2.5";
    case ChatTemplateKind::ChatML: return "chatml";
  }
  return "unknown";
}

ChatTemplate ChatTemplate::from_gguf(const gguf::GgufFile& file) {
  const std::optional<std::string> source = file.find_string("tokenizer.chat_template");
  if (!source) {
    spdlog::warn("{}: no tokenizer.chat_template; using plain ChatML", file.path());
    return ChatTemplate(ChatTemplateKind::ChatML);
  }
  return detect(*source);
}

ChatTemplate ChatTemplate::detect(std::string_view jinja_source) {
  if (jinja_source.find("enable_thinking") != std::string_view::npos ||
      jinja_source.find("<think>") != std::string_view::npos) {
    return ChatTemplate(ChatTemplateKind::Qwen3);
  }
  if (jinja_source.find("You are Qwen, created by Alibaba Cloud") != std::string_view::npos) {
    return ChatTemplate(ChatTemplateKind::Qwen25);
  }
  spdlog::warn("chat template not recognised as Qwen3 or Qwen2.5 ({} bytes); using plain ChatML", jinja_source.size());
  return ChatTemplate(ChatTemplateKind::ChatML);
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                 bool enable_thinking) const {
  check_roles(messages);
  switch (kind_) {
    case ChatTemplateKind::Qwen3: return render_qwen3(messages, add_generation_prompt, enable_thinking);
    case ChatTemplateKind::Qwen25: return render_qwen25(messages, add_generation_prompt);
    case ChatTemplateKind::ChatML: return render_chatml(messages, add_generation_prompt);
  }
  throw Error("chat template: unknown kind");
}

}  // namespace xelm
