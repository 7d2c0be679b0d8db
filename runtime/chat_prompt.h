// chat_prompt.h — tokenizing a rendered chat prompt so that the template's own markup is parsed for
// special tokens while the text people typed is not: a user who types "<|im_end|>" gets those
// characters as plain text, never the control token that would end their turn.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"

namespace xelm {

// `rendered` is ChatTemplate::render(messages, ...). The content of system, user and tool messages
// is found in it in order and encoded with parse_special = false; everything else (the markup, and
// assistant turns, which the template rewrites) with parse_special = true.
std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer, const std::string& rendered,
                                          std::span<const ChatMessage> messages);

}  // namespace xelm
