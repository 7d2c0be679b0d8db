// reply_stream.cpp — stop-string matching with held-back prefixes, and the reasoning/answer split.
#include "runtime/reply_stream.h"

#include <algorithm>

#include "runtime/vocab.h"

namespace xelm {

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_sequence_length(text, pos);
    if (length == 0) {
      out.append("\xEF\xBF\xBD");
      ++pos;
    } else {
      out.append(text.substr(pos, length));
      pos += length;
    }
  }
  return out;
}

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStringMatcher::push(std::string_view text) {
  if (matched_) return "";
  pending_.append(text);
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) first = std::min(first, pending_.find(stop));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail of pending_ that some stop string starts with.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, pending_.size()); n > hold; --n) {
      if (std::string_view(pending_).substr(pending_.size() - n) == std::string_view(stop).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringMatcher::flush() {
  std::string out = matched_ ? "" : pending_;
  pending_.clear();
  return out;
}

namespace {

// Until a section (reasoning or content) has started, drops the newlines that open it; returns
// false while nothing else has arrived.
bool skip_opening_newlines(std::string_view& text, bool& started) {
  if (started) return true;
  const size_t first = text.find_first_not_of('\n');
  if (first == std::string_view::npos) return false;
  text.remove_prefix(first);
  started = true;
  return true;
}

}  // namespace

ReplyStream::ReplyStream(const Tokenizer& tokenizer, std::span<const int32_t> prompt, ReplyOptions options)
    : options_(std::move(options)), stop_(options_.stop) {
  if (!options_.split_reasoning) return;
  think_open_ = tokenizer.token_id("<think>");
  think_close_ = tokenizer.token_id("</think>");
  for (int32_t t : prompt) {
    if (think_open_ && t == *think_open_) in_reasoning_ = true;
    if (think_close_ && t == *think_close_) in_reasoning_ = false;
  }
}

ReplyDelta ReplyStream::emit(std::string reasoning, std::string content) {
  reasoning_ += reasoning;
  content_ += content;
  return {std::move(reasoning), std::move(content)};
}

ReplyDelta ReplyStream::push(int32_t token, std::string_view raw_text) {
  if (stop_.matched()) return {};
  const std::string valid = replace_invalid_utf8(raw_text);
  const std::string_view text = valid;
  if (!options_.split_reasoning) return emit("", stop_.push(text));
  if (think_open_ && token == *think_open_) {
    in_reasoning_ = true;
    reasoning_started_ = false;
    held_newlines_.clear();
    return {};
  }
  if (think_close_ && token == *think_close_) {
    in_reasoning_ = false;
    held_newlines_.clear();  // newlines before </think> are not part of the reasoning
    return {};
  }
  if (in_reasoning_) {
    std::string_view rest = text;
    if (!skip_opening_newlines(rest, reasoning_started_)) return {};
    const size_t last = rest.find_last_not_of('\n');
    if (last == std::string_view::npos) {  // only newlines: show them once more reasoning follows
      held_newlines_.append(rest);
      return {};
    }
    std::string out = std::move(held_newlines_);
    held_newlines_.clear();
    out.append(rest.substr(0, last + 1));
    held_newlines_.assign(rest.substr(last + 1));
    return emit(std::move(out), "");
  }
  std::string_view rest = text;
  if (!skip_opening_newlines(rest, content_started_)) return {};
  return emit("", stop_.push(rest));
}

ReplyDelta ReplyStream::finish() { return emit("", stop_.flush()); }

}  // namespace xelm
