// chat_prompt.cpp — splits the rendered prompt into markup and typed text and encodes each part.
#include "runtime/chat_prompt.h"

namespace xelm {

std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer, const std::string& rendered,
                                          std::span<const ChatMessage> messages) {
  std::vector<int32_t> ids;
  auto append = [&](std::string_view text, bool parse_special) {
    if (text.empty()) return;
    const std::vector<int32_t> part = tokenizer.encode(text, parse_special);
    ids.insert(ids.end(), part.begin(), part.end());
  };
  size_t pos = 0;
  for (const ChatMessage& m : messages) {
    if (m.content.empty() || (m.role != "user" && m.role != "system" && m.role != "tool")) continue;
    const size_t at = rendered.find(m.content, pos);
    if (at == std::string::npos) continue;  // the template rewrote it: leave it to the markup pass
    append(std::string_view(rendered).substr(pos, at - pos), true);
    append(m.content, false);
    pos = at + m.content.size();
  }
  append(std::string_view(rendered).substr(pos), true);
  return ids;
}

}  // namespace xelm
