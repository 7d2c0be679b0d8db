// cmd_chat.cpp — `xelm chat`: the interactive chat, the product's front door. Streams answers,
// shows Qwen3's thinking dimmed (or hides it; runtime/reply_stream.h splits it off), keeps the
// conversation in the KV cache between turns, edits lines with history (libedit), and runs
// non-interactively from a pipe: one answer per input line (or one answer to -p).
#include <editline/readline.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/chat_prompt.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/generation.h"
#include "runtime/reply_stream.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"
#include "tools/xelm/sampling_options.h"

namespace xelm::cli {
namespace {

std::atomic<bool> g_cancel{false};
std::atomic<bool> g_generating{false};

void on_sigint(int) {
  if (g_generating.load()) {
    g_cancel.store(true);
  } else {
    const char msg[] = "\n";
    [[maybe_unused]] auto ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(130);
  }
}

struct ChatOptions {
  EngineOptions engine;
  std::string system_prompt;
  std::string prompt;           // -p: one message, answer, exit
  int n_predict = -1;
  bool enable_thinking = true;  // Qwen3: --think (the default) / --no-think
  bool show_thinking = false, hide_thinking = false;
  bool drop_oldest = false;
  bool keep_thinking_kv = false;
  bool stats = true;
  SamplerParams sampling;
};

class ChatSession {
 public:
  ChatSession(const ChatOptions& options, CLI::App& cmd, const Environment& env)
      : options_(options), engine_(load_engine(options.engine, env)) {
    tokenizer_ = Tokenizer::from_gguf(engine_.model->file());
    template_ = std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(engine_.model->file()));
    generator_ = std::make_unique<Generator>(*engine_.transformer, *tokenizer_);
    system_ = options.system_prompt;
    is_qwen3_ = template_->kind() == ChatTemplateKind::Qwen3;
    enable_thinking_ = is_qwen3_ && options.enable_thinking;
    // Sampling defaults follow Qwen3's recommendations per mode unless a flag was given.
    user_set_sampling_ = mode_preset_flags_given(cmd);
    if (is_qwen3_ && options.sampling.temperature <= 0.0f) {
      spdlog::warn("greedy decoding (--temp 0) makes Qwen3 models repeat themselves; Qwen recommends --temp 0.6 (thinking) or 0.7");
    }
    const bool tty = isatty(STDOUT_FILENO) != 0;
    show_thinking_ = options.show_thinking || (tty && !options.hide_thinking);
    color_ = tty;
  }

  // One user turn: appends the message, generates and streams the answer, records it.
  void answer(const std::string& user_text) {
    messages_.push_back({"user", user_text, ""});
    std::vector<int32_t> prompt = render_prompt();
    const int64_t reserve = options_.n_predict > 0 ? options_.n_predict : 256;
    while (static_cast<int64_t>(prompt.size()) + reserve > engine_.transformer->n_ctx()) {
      if (!options_.drop_oldest || messages_.size() <= 1) {
        messages_.pop_back();
        throw Error(fmt::format("context full: the conversation needs {} tokens + {} for the answer, the context holds "
                                "{}; use /reset, a larger -c, or --drop-oldest",
                                prompt.size(), reserve, engine_.transformer->n_ctx()));
      }
      // Drop the oldest turn (a user message and the replies up to the next user message).
      auto next_user = std::find_if(messages_.begin() + 1, messages_.end(), [](const ChatMessage& m) { return m.role == "user"; });
      const size_t dropped = static_cast<size_t>(next_user - messages_.begin());
      messages_.erase(messages_.begin(), next_user);
      spdlog::info("context full: dropped the oldest turn ({} messages)", dropped);
      prompt = render_prompt();
    }

    Sampler sampler(sampling_params());
    ReplyStream reply(*tokenizer_, prompt, {.split_reasoning = true, .stop = {}});
    g_cancel = false;
    g_generating = true;
    const GenerationResult r = generator_->generate(
        prompt, options_.n_predict, sampler,
        [&](int32_t token, std::string_view text) {
          const bool was_reasoning = reply.in_reasoning();
          const ReplyDelta delta = reply.push(token, text);
          if (!was_reasoning && reply.in_reasoning() && show_thinking_ && color_) std::fputs("\x1b[2m", stdout);
          if (show_thinking_) std::fwrite(delta.reasoning.data(), 1, delta.reasoning.size(), stdout);
          if (was_reasoning && !reply.in_reasoning() && show_thinking_) std::fputs(color_ ? "\x1b[0m\n" : "\n", stdout);
          std::fwrite(delta.content.data(), 1, delta.content.size(), stdout);
          std::fflush(stdout);
          return true;
        },
        &g_cancel);
    g_generating = false;
    reply.finish();
    if (reply.in_reasoning() && show_thinking_ && color_) std::fputs("\x1b[0m", stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (r.stop == StopReason::Cancelled) std::fputs("[stopped]\n", stderr);
    if (r.stop == StopReason::ContextFull) spdlog::warn("the answer filled the context ({} tokens)", engine_.transformer->n_ctx());

    std::string content = reply.content();
    while (!content.empty() && content.back() == '\n') content.pop_back();
    messages_.push_back({"assistant", std::move(content), reply.reasoning()});
    last_ = r;
    evicted_ = options_.keep_thinking_kv ? 0 : evict_dropped_thinking();
    if (options_.stats) print_stats(r);
  }

  bool command(const std::string& line) {  // returns false to leave the chat
    const std::string name = line.substr(0, line.find(' '));
    const std::string arg = line.find(' ') == std::string::npos ? "" : line.substr(line.find(' ') + 1);
    if (name == "/exit" || name == "/quit" || name == "/bye") return false;
    if (name == "/help") {
      std::fputs("commands:\n  /help               this list\n  /reset              forget the conversation\n"
                 "  /think, /no_think   turn Qwen3's thinking on or off for the next answers\n"
                 "  /system TEXT        set the system prompt (empty TEXT removes it)\n"
                 "  /stats              figures of the last answer and the context\n"
                 "  /save FILE          save the conversation as JSON\n  /load FILE          load a saved conversation\n"
                 "  /exit               leave (or Ctrl-D)\n"
                 "input: end a line with \\ to continue it, or wrap several lines in \"\"\"; Ctrl-C stops an answer\n",
                 stderr);
    } else if (name == "/reset") {
      messages_.clear();
      generator_->reset();
      std::fputs("conversation cleared\n", stderr);
    } else if (name == "/think" || name == "/no_think") {
      if (!is_qwen3_) {
        std::fputs("this model has no thinking mode\n", stderr);
      } else {
        enable_thinking_ = name == "/think";
        std::fprintf(stderr, "thinking %s\n", enable_thinking_ ? "on" : "off");
      }
    } else if (name == "/system") {
      system_ = arg;
      std::fputs(arg.empty() ? "system prompt removed\n" : "system prompt set\n", stderr);
    } else if (name == "/stats") {
      if (last_) print_stats(*last_);
      std::fprintf(stderr, "context: %zu / %lld tokens, %zu messages, thinking %s\n", generator_->cached_tokens().size(),
                   static_cast<long long>(engine_.transformer->n_ctx()), messages_.size(), enable_thinking_ ? "on" : "off");
    } else if (name == "/save") {
      if (arg.empty()) throw Error("/save needs a file name");
      save(arg);
      std::fprintf(stderr, "saved %zu messages to %s\n", messages_.size(), arg.c_str());
    } else if (name == "/load") {
      if (arg.empty()) throw Error("/load needs a file name");
      load(arg);
      std::fprintf(stderr, "loaded %zu messages from %s\n", messages_.size(), arg.c_str());
    } else {
      std::fprintf(stderr, "unknown command %s (try /help)\n", name.c_str());
    }
    return true;
  }

 private:
  // The prompt for the next answer; with_next_user: as it will render once another user message
  // follows (its content empty).
  std::vector<int32_t> render_prompt(bool with_next_user = false) const {
    std::vector<ChatMessage> all;
    if (!system_.empty()) all.push_back({"system", system_, ""});
    all.insert(all.end(), messages_.begin(), messages_.end());
    if (with_next_user) all.push_back({"user", "", ""});
    const std::string text = template_->render(all, /*add_generation_prompt=*/true, enable_thinking_);
    return tokenize_chat_prompt(*tokenizer_, text, all);
  }

  // The next turn's prompt renders this answer without its thinking (Qwen3's template drops the
  // <think> block of earlier turns): evict that span from the cache now, so the next turn processes
  // only the new message. Returns the positions freed.
  int64_t evict_dropped_thinking() { return generator_->evict_dropped_span(render_prompt(/*with_next_user=*/true)); }

  SamplerParams sampling_params() const {
    if (is_qwen3_ && !user_set_sampling_) return with_qwen3_mode_preset(options_.sampling, enable_thinking_);
    return options_.sampling;
  }

  void print_stats(const GenerationResult& r) const {
    const std::string evicted =
        evicted_ > 0 ? fmt::format(" | thinking evicted: {} tokens, {:.1f} MiB", evicted_,
                                   static_cast<double>(evicted_) * static_cast<double>(engine_.transformer->page_bytes()) /
                                       static_cast<double>(engine_.transformer->kv_pages().page_size()) / (1 << 20))
                     : "";
    const std::string line =
        fmt::format("prompt {} tokens ({} new) {:.1f} tok/s | answer {} tokens {:.1f} tok/s{} | context {}/{} | {}",
                    r.n_prompt, r.n_prompt_new, r.prompt_seconds > 0 ? r.n_prompt_new / r.prompt_seconds : 0.0,
                    r.n_generated, r.generate_seconds > 0 ? r.n_generated / r.generate_seconds : 0.0, evicted,
                    generator_->cached_tokens().size(), engine_.transformer->n_ctx(), engine_.description);
    std::fprintf(stderr, color_ ? "\x1b[2m%s\x1b[0m\n" : "%s\n", line.c_str());
  }

  void save(const std::string& path) const {
    nlohmann::json j;
    j["format"] = "xelm-chat-1";
    j["system"] = system_;
    j["enable_thinking"] = enable_thinking_;
    j["messages"] = nlohmann::json::array();
    for (const ChatMessage& m : messages_) {
      j["messages"].push_back({{"role", m.role}, {"content", m.content}, {"reasoning_content", m.reasoning_content}});
    }
    std::ofstream out(path);
    if (!out) throw Error(path + ": cannot write");
    out << j.dump(2) << "\n";
  }

  void load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
      if (j.value("format", "") != "xelm-chat-1") throw Error(path + ": not an xelm chat transcript");
      std::vector<ChatMessage> loaded;
      for (const auto& m : j.at("messages")) {
        loaded.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>(),
                          m.value("reasoning_content", "")});
      }
      messages_ = std::move(loaded);
      system_ = j.value("system", "");
      enable_thinking_ = is_qwen3_ && j.value("enable_thinking", enable_thinking_);
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ": malformed transcript: " + e.what());
    }
  }

  const ChatOptions& options_;
  Engine engine_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> template_;
  std::unique_ptr<Generator> generator_;
  std::vector<ChatMessage> messages_;  // user/assistant/tool turns (the system prompt is kept apart)
  std::string system_;
  bool is_qwen3_ = false;
  bool enable_thinking_ = false;
  bool user_set_sampling_ = false;
  bool show_thinking_ = false;
  bool color_ = false;
  std::optional<GenerationResult> last_;
  int64_t evicted_ = 0;  // positions the last answer's thinking eviction freed
};

// Reads one user message interactively: a line ending in '\' continues, """ opens/closes a block.
std::optional<std::string> read_message() {
  std::string message;
  bool in_block = false;
  for (;;) {
    char* raw = readline(message.empty() && !in_block ? ">>> " : "... ");
    if (raw == nullptr) return message.empty() ? std::nullopt : std::optional<std::string>(message);
    std::string line(raw);
    std::free(raw);
    if (line == "\"\"\"" || (!in_block && message.empty() && line.rfind("\"\"\"", 0) == 0)) {
      if (in_block) return message;
      in_block = true;
      line = line.substr(3);
      if (line.empty()) continue;
    }
    if (in_block) {
      message += (message.empty() ? "" : "\n") + line;
      continue;
    }
    if (!line.empty() && line.back() == '\\') {
      message += line.substr(0, line.size() - 1) + "\n";
      continue;
    }
    message += line;
    if (!message.empty()) add_history(message.c_str());
    return message;
  }
}

int chat(const ChatOptions& o, CLI::App& cmd, const Environment& env) {
  ChatSession session(o, cmd, env);
  std::signal(SIGINT, on_sigint);
  auto handle = [&](const std::string& text) -> bool {
    if (text.empty()) return true;
    try {
      if (text[0] == '/' && text.find('\n') == std::string::npos) return session.command(text);
      session.answer(text);
    } catch (const Error& e) {
      spdlog::error("{}", e.what());
    }
    return true;
  };
  if (!o.prompt.empty()) {
    session.answer(o.prompt);
    return 0;
  }
  if (isatty(STDIN_FILENO) == 0) {  // scripted: one answer per input line
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!handle(line)) break;
    }
    return 0;
  }
  const std::string history = env.chat_history_file.string();
  if (!history.empty()) {
    std::error_code ignored;
    std::filesystem::create_directories(env.chat_history_file.parent_path(), ignored);
    read_history(history.c_str());
  }
  std::fputs("xelm chat — /help for commands, Ctrl-D or /exit to leave\n", stderr);
  bool ended_by_eof = true;
  while (const std::optional<std::string> message = read_message()) {
    if (!handle(*message)) {
      ended_by_eof = false;
      break;
    }
  }
  if (ended_by_eof) std::fputs("\n", stderr);  // Ctrl-D leaves the cursor after the prompt
  if (!history.empty()) write_history(history.c_str());
  return 0;
}

}  // namespace

Subcommand add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal (or from a pipe)");
  o->engine.add_to(*cmd);
  cmd->add_option("-s,--system", o->system_prompt, "System prompt");
  cmd->add_option("-p,--prompt", o->prompt, "Answer this one message and exit");
  cmd->add_option("-n,--n-predict", o->n_predict, "Most tokens per answer (-1: until done or the context is full)")
      ->check(CLI::Range(-1, 1 << 24));
  CLI::Option* think = cmd->add_flag("--think", o->enable_thinking, "Qwen3: think before answering (default)");
  cmd->add_flag("!--no-think", o->enable_thinking, "Qwen3: answer directly, without thinking")->excludes(think);
  cmd->add_flag("--show-thinking", o->show_thinking, "Show the thinking even when output is not a terminal");
  cmd->add_flag("--hide-thinking", o->hide_thinking, "Never show the thinking");
  cmd->add_flag("--drop-oldest", o->drop_oldest, "When the context is full, drop the oldest turns instead of refusing");
  cmd->add_flag("--keep-thinking-kv", o->keep_thinking_kv,
                "Keep an answer's thinking in the KV cache (by default it is evicted once the answer is done, as the "
                "template drops it from later turns: the next turn then reuses the answer's cache, computed with the "
                "thinking in view, instead of processing it again)");
  cmd->add_flag("!--no-stats", o->stats, "Do not print per-answer figures");
  o->sampling = SamplerParams::qwen3_thinking();
  add_sampling_options(*cmd, o->sampling, "--seed");
  return {cmd, [o, cmd](const Environment& env) { return chat(*o, *cmd, env); }};
}

}  // namespace xelm::cli
