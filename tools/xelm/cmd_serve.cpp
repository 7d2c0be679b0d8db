// cmd_serve.cpp — `xelm serve`: an OpenAI-compatible HTTP server (cpp-httplib) over one loaded model.
// POST /v1/chat/completions and /v1/completions (whole answers or SSE streams), GET /v1/models,
// /health, /metrics (Prometheus) and /slots. Requests are validated and tokenized on the HTTP
// threads and handed to the batch scheduler (runtime/batch_scheduler.h), whose own thread runs up
// to --parallel of them together in every forward step over one paged KV pool, with a prefix cache
// across requests. Each request's tokens come back to its HTTP thread through an Exchange (reply
// text split and stop strings matched on the scheduler thread, so a stop string ends the answer at
// once). A client that goes away frees its pages at the next step: streams notice at the next
// write, whole answers at the next whitespace heartbeat written ahead of the JSON (legal JSON, and
// the only way to notice a closed socket without writing the body). Request parsing and the JSON
// shapes live in serve/openai_api.h, /metrics and /slots in serve/server_status.h.
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include <httplib.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/batch_scheduler.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/generation.h"
#include "runtime/reply_stream.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/version.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"
#include "tools/xelm/sampling_options.h"
#include "tools/xelm/serve/openai_api.h"
#include "tools/xelm/serve/server_status.h"

namespace xelm::cli {
namespace {

using serve::ApiError;
using serve::Endpoint;

struct ServeOptions {
  EngineOptions engine;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string alias;
  int64_t max_tokens = 4096;
  size_t max_body_bytes = 4u << 20;
  int max_queue = 32;
  int parallel = 4;
  bool no_think = false;
  bool keep_thinking_kv = false;
  SamplerParams sampling;
};

// Tokens between whitespace heartbeats of a whole (non-stream) answer.
constexpr int64_t kHeartbeatTokens = 8;

// Header fields a request may have (cpp-httplib 0.11 bounds each line at 8 KiB but not their number).
constexpr size_t kMaxHeaderFields = 100;

// One request between its HTTP thread and the scheduler thread: the scheduler's callbacks push the
// bytes to write and the end; the HTTP thread writes them and reports a client gone by `cancel`.
struct Exchange {
  Exchange(uint64_t number_, serve::CompletionRequest request_, std::vector<int32_t> prompt_,
           serve::ResponseBuilder response_, const Tokenizer& tokenizer)
      : number(number_),
        request(std::move(request_)),
        prompt(std::move(prompt_)),
        response(std::move(response_)),
        reply(tokenizer, prompt, {.split_reasoning = request.endpoint == Endpoint::ChatCompletions, .stop = request.stop}) {}

  uint64_t number;
  serve::CompletionRequest request;
  std::vector<int32_t> prompt;
  serve::ResponseBuilder response;
  ReplyStream reply;  // the scheduler thread's until `result` is set, then the HTTP thread's
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);

  std::mutex mutex;  // guards the members below
  std::condition_variable changed;
  std::string out;             // SSE chunks not yet written
  int64_t new_tokens = 0;      // tokens since the HTTP thread last looked (heartbeats)
  std::optional<BatchResult> result;
};

// cpp-httplib 0.11 listens with a backlog of 5, so a burst of connections (64 clients at once)
// overflows it and clients see resets. listen() again on the bound socket raises it (Linux allows
// this); the socket is found among the open descriptors as the listening one on `port`.
void raise_listen_backlog(int port) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    int listening = 0;
    socklen_t length = sizeof(listening);
    sockaddr_storage address{};
    socklen_t address_length = sizeof(address);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening == 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) {
      continue;
    }
    const int bound_port = address.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port)
                           : address.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port)
                                                          : -1;
    if (bound_port == port) ::listen(fd, SOMAXCONN);
  }
}

void set_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(serve::json_text(serve::error_json(e)), "application/json");
}

class ApiServer {
 public:
  ApiServer(const ServeOptions& options, bool sampling_flags_given, const Environment& env)
      : options_(options), engine_(load_engine(options.engine, env)), sampling_flags_given_(sampling_flags_given) {
    tokenizer_ = Tokenizer::from_gguf(engine_.model->file());
    template_ = std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(engine_.model->file()));
    scheduler_ = std::make_unique<BatchScheduler>(*engine_.transformer, *tokenizer_, options.parallel);
    scheduler_thread_ = std::thread([this] { scheduler_->run(); });
    is_qwen3_ = template_->kind() == ChatTemplateKind::Qwen3;
    default_thinking_ = is_qwen3_ && !options.no_think;
    limits_.max_tokens = options.max_tokens;
    model_id_ = options.alias.empty() ? std::filesystem::path(options.engine.model_path).stem().string() : options.alias;
    started_ = static_cast<int64_t>(std::time(nullptr));
    id_salt_ = static_cast<uint32_t>(std::random_device{}());
    route();
  }
  ~ApiServer() {
    scheduler_->close();
    scheduler_thread_.join();
  }

  // Binds and serves until stop(); false when the address cannot be bound.
  bool bind() {
    port_ = options_.port == 0 ? http_.bind_to_any_port(options_.host) : options_.port;
    if (port_ < 0 || (options_.port != 0 && !http_.bind_to_port(options_.host, options_.port))) return false;
    raise_listen_backlog(port_);
    if (options_.host != "127.0.0.1" && options_.host != "localhost" && options_.host != "::1" && options_.api_key.empty()) {
      spdlog::warn("listening on {} without --api-key: anyone who can reach this address can use the model", options_.host);
    }
    const KvPages& pages = engine_.transformer->kv_pages();
    spdlog::info("KV cache: {} pages of {} positions ({:.1f} MiB), up to {} requests at once, {} positions each at most",
                 pages.n_pages(), pages.page_size(),
                 static_cast<double>(pages.n_pages()) * static_cast<double>(engine_.transformer->page_bytes()) / (1 << 20),
                 options_.parallel, engine_.transformer->n_ctx());
    spdlog::info("listening on http://{}:{} (model {}, {}, context {} tokens{})", options_.host, port_, model_id_,
                 engine_.description, engine_.transformer->n_ctx(), options_.api_key.empty() ? "" : ", API key required");
    return true;
  }
  void listen() { http_.listen_after_bind(); }

  // Turns away queued requests, ends the running generation and stops listening (from any thread).
  void stop() {
    stopping_ = true;
    scheduler_->close();
    http_.stop();
  }

 private:
  void route() {
    // One HTTP thread for every request --max-queue lets in, and 8 more for the cheap ones (health,
    // metrics, the 503s that shed load, slow or hostile clients): with cpp-httplib's default of 8
    // threads, 8 streams or slow clients would hold them all and the 503 limit would never be reached.
    const size_t http_threads = static_cast<size_t>(options_.max_queue) + 8;
    http_.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
    http_.set_payload_max_length(options_.max_body_bytes);
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.headers.size() > kMaxHeaderFields) {
        set_error(res, ApiError(431, fmt::format("the request has {} header fields; this server accepts at most {}",
                                                 req.headers.size(), kMaxHeaderFields)));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (options_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      const std::string expected = "Bearer " + options_.api_key;
      const std::string given = req.get_header_value("Authorization");
      // Constant-time comparison: the time taken tells nothing about how much of the key matched.
      unsigned diff = given.size() == expected.size() ? 0u : 1u;
      for (size_t i = 0; i < std::min(given.size(), expected.size()); ++i) diff |= static_cast<unsigned>(given[i] ^ expected[i]);
      if (diff == 0) return httplib::Server::HandlerResponse::Unhandled;
      set_error(res, ApiError(401, "a valid API key is required: send the header 'Authorization: Bearer <key>'", "",
                              "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const nlohmann::json body = {{"status", "ok"}, {"requests_in_progress", scheduler_->occupancy()}};
      res.set_content(serve::json_text(body), "application/json");
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve::metrics_text(scheduler_->stats()), "text/plain; version=0.0.4");
    });
    http_.Get("/slots", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve::json_text(serve::slots_json(scheduler_->stats(), scheduler_->parallel())), "application/json");
    });
    auto models = [this](const httplib::Request&, httplib::Response& res) {
      const nlohmann::json model = {{"id", model_id_}, {"object", "model"}, {"created", started_}, {"owned_by", "xelm"}};
      res.set_content(serve::json_text({{"object", "list"}, {"data", {model}}}), "application/json");
    };
    http_.Get("/v1/models", models);
    http_.Get("/models", models);
    for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
      http_.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
        accept(Endpoint::ChatCompletions, req, res);
      });
    }
    for (const char* path : {"/v1/completions", "/completions"}) {
      http_.Post(path, [this](const httplib::Request& req, httplib::Response& res) { accept(Endpoint::Completions, req, res); });
    }
    http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;  // an error the handlers already described
      std::string message;
      switch (res.status) {
        case 404: message = "no such endpoint: " + req.method + " " + req.path; break;
        case 413: message = fmt::format("the request body is larger than this server's limit of {} bytes", options_.max_body_bytes); break;
        case 400: message = "malformed HTTP request"; break;
        default: message = "HTTP error " + std::to_string(res.status); break;
      }
      res.set_content(serve::json_text(serve::error_json(res.status, message)), "application/json");
    });
    http_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("{} {}: internal error: {}", req.method, req.path, what);
      set_error(res, ApiError(500, "internal error: " + what));
    });
    http_.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      if (req.path != "/health") spdlog::debug("{}:{} {} {} -> {}", req.remote_addr, req.remote_port, req.method, req.path, res.status);
    });
  }

  SamplerParams sampling_defaults(const serve::CompletionRequest& request) const {
    if (is_qwen3_ && request.endpoint == Endpoint::ChatCompletions && !sampling_flags_given_) {
      return with_qwen3_mode_preset(options_.sampling, request.enable_thinking.value_or(default_thinking_));
    }
    return options_.sampling;
  }

  // Validates and tokenizes on the HTTP thread and hands the request to the scheduler; the answer is
  // written by a content provider, which cpp-httplib calls on this same thread once the headers are out.
  void accept(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
    const uint64_t number = ++requests_;
    try {
      serve::CompletionRequest request = endpoint == Endpoint::ChatCompletions
                                             ? serve::parse_chat_request(req.body, limits_)
                                             : serve::parse_completion_request(req.body, limits_);
      std::vector<int32_t> prompt = serve::build_prompt(request, *template_, *tokenizer_, default_thinking_);
      const int64_t n_predict = serve::tokens_to_generate(request, static_cast<int64_t>(prompt.size()),
                                                          engine_.transformer->n_ctx(), limits_);
      const SamplerParams sampling =
          request.sampling.apply_to(sampling_defaults(request), tokenizer_->vocab().end_of_generation());
      try {
        Sampler check(sampling);
      } catch (const Error& e) {
        throw ApiError(400, e.what());
      }
      if (stopping_) throw ApiError(503, "the server is shutting down", "", "server_shutting_down");
      if (scheduler_->occupancy() >= static_cast<size_t>(options_.max_queue)) {
        throw ApiError(503, fmt::format("the server is busy ({} requests in progress or waiting); try again later",
                                        scheduler_->occupancy()),
                       "", "server_busy");
      }
      const char* prefix = endpoint == Endpoint::ChatCompletions ? "chatcmpl" : "cmpl";
      auto ex = std::make_shared<Exchange>(number, std::move(request), std::move(prompt),
                                           serve::ResponseBuilder(endpoint, fmt::format("{}-{:08x}{:06d}", prefix, id_salt_, number),
                                                                  static_cast<int64_t>(std::time(nullptr)), model_id_),
                                           *tokenizer_);
      submit(ex, n_predict, sampling);
      const bool stream = ex->request.stream;
      if (stream) res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          stream ? "text/event-stream" : "application/json", [this, ex](size_t, httplib::DataSink& sink) { return run(*ex, sink); },
          [ex](bool success) {
            if (!success) *ex->cancel = true;  // the answer was not (all) written: stop generating it
          });
    } catch (const ApiError& e) {
      spdlog::info("request {}: {} {}", number, e.status(), replace_invalid_utf8(e.what()));  // may quote the body
      set_error(res, e);
    }
  }

  // Queues the request with callbacks that run on the scheduler thread.
  void submit(const std::shared_ptr<Exchange>& ex, int64_t n_predict, const SamplerParams& sampling) {
    BatchRequest batch{
        .id = ex->number,
        .prompt = ex->prompt,
        .n_predict = n_predict,
        .sampling = sampling,
        .on_token =
            [this, ex](int32_t token, std::string_view text) {
              const ReplyDelta delta = ex->reply.push(token, text);
              {
                std::lock_guard lock(ex->mutex);
                if (ex->request.stream && !delta.empty()) ex->out += serve::sse_event(ex->response.delta_chunk(delta));
                if (token >= 0) ++ex->new_tokens;
              }
              ex->changed.notify_all();
              return !ex->cancel->load() && !ex->reply.stopped() && !stopping_.load();
            },
        .on_done =
            [ex](const BatchResult& result) {
              {
                std::lock_guard lock(ex->mutex);
                ex->result = result;
              }
              ex->changed.notify_all();
            },
        .cancel = ex->cancel};
    try {
      scheduler_->submit(std::move(batch));
    } catch (const Error& e) {
      if (stopping_) throw ApiError(503, "the server is shutting down", "", "server_shutting_down");
      throw ApiError(400, e.what(), ex->request.max_tokens ? "max_tokens" : "", "context_length_exceeded");
    }
  }

  // Writes the answer as the scheduler produces it. Returns false when the client went away
  // (cpp-httplib then closes the connection).
  bool run(Exchange& ex, httplib::DataSink& sink) {
    const bool stream = ex.request.stream;
    bool client_gone = false;
    auto write = [&](std::string_view data) {
      if (!client_gone && !sink.write(data.data(), data.size())) client_gone = true;
      return !client_gone;
    };
    auto fail = [&](const ApiError& e) {
      const nlohmann::json body = serve::error_json(e);
      write(stream ? serve::sse_event(body) : serve::json_text(body));
      sink.done();
      return true;
    };

    const serve::ResponseBuilder& response = ex.response;
    if (stream) {
      if (const nlohmann::json first = response.first_chunk(); !first.is_null()) write(serve::sse_event(first));
    }
    int64_t tokens_since_heartbeat = 0;
    BatchResult result;
    for (;;) {
      std::string out;
      int64_t new_tokens = 0;
      std::optional<BatchResult> done;
      {
        std::unique_lock lock(ex.mutex);
        ex.changed.wait(lock, [&] { return !ex.out.empty() || ex.new_tokens > 0 || ex.result.has_value(); });
        out.swap(ex.out);
        std::swap(new_tokens, ex.new_tokens);
        done = ex.result;
      }
      if (!out.empty()) write(out);
      if (!stream && (tokens_since_heartbeat += new_tokens) >= kHeartbeatTokens) {
        tokens_since_heartbeat = 0;
        write(" ");
      }
      if (client_gone) *ex.cancel = true;  // the scheduler frees its pages at the next step
      if (done) {
        result = *done;
        break;
      }
    }
    if (client_gone) {
      spdlog::warn("request {}: the client disconnected; generation stopped after {} tokens", ex.number, result.n_generated);
      return false;
    }
    if (!result.error.empty()) {
      spdlog::error("request {}: generation failed: {}", ex.number, result.error);
      return fail(ApiError(500, "generation failed: " + result.error));
    }
    const bool stop_string = ex.reply.stopped();
    if (stopping_ && (result.stop == StopReason::Cancelled || (result.stop == StopReason::Callback && !stop_string))) {
      spdlog::info("request {}: stopped after {} tokens by the shutdown", ex.number, result.n_generated);
      return fail(ApiError(503, "the server is shutting down", "", "server_shutting_down"));
    }
    const ReplyDelta tail = ex.reply.finish();
    evict_thinking(ex);  // before the answer is out: the next turn must find the cache ready
    const serve::Usage usage{.prompt_tokens = result.n_prompt,
                             .cached_tokens = result.n_cached,
                             .completion_tokens = result.n_generated};
    const std::string_view finish = serve::finish_reason(result.stop, stop_string);
    if (stream) {
      if (!tail.empty()) write(serve::sse_event(response.delta_chunk(tail)));
      write(serve::sse_event(response.final_chunk(finish)));
      if (ex.request.include_usage) write(serve::sse_event(response.usage_chunk(usage)));
      write(serve::kSseDone);
    } else {
      write(serve::json_text(response.complete(ex.reply.reasoning(), ex.reply.content(), finish, usage)));
    }
    spdlog::info("request {}: prompt {} tokens ({} cached), answer {} tokens in {:.2f} s ({:.1f} tok/s), finish {}",
                 ex.number, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens,
                 result.prompt_seconds + result.generate_seconds,
                 result.generate_seconds > 0 ? static_cast<double>(result.n_generated) / result.generate_seconds : 0.0, finish);
    if (client_gone) return false;
    sink.done();
    return true;
  }

  // Qwen3's template drops this answer's thinking from later turns: the cached sequence drops it too
  // (unless --keep-thinking-kv), so the conversation's next turn continues the cache.
  void evict_thinking(const Exchange& ex) {
    if (options_.keep_thinking_kv || !is_qwen3_ || ex.request.endpoint != Endpoint::ChatCompletions) return;
    try {
      const ChatMessage answer{"assistant", ex.reply.content(), ex.reply.reasoning()};
      scheduler_->evict_dropped_span(ex.number, serve::next_turn_prompt(ex.request, answer, *template_, *tokenizer_,
                                                                        default_thinking_));
    } catch (const std::exception& e) {
      spdlog::debug("request {}: no thinking eviction: {}", ex.number, e.what());
    }
  }

  const ServeOptions& options_;
  Engine engine_;
  bool sampling_flags_given_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> template_;
  std::unique_ptr<BatchScheduler> scheduler_;
  std::thread scheduler_thread_;  // runs scheduler_: every forward step, and the requests' callbacks
  serve::RequestLimits limits_;
  bool is_qwen3_ = false, default_thinking_ = false;
  std::string model_id_;
  int64_t started_ = 0;
  uint32_t id_salt_ = 0;
  int port_ = 0;
  std::atomic<uint64_t> requests_{0};
  std::atomic<bool> stopping_{false};
  httplib::Server http_;
};

int serve_forever(const ServeOptions& o, const CLI::App& cmd, const Environment& env) {
  // SIGINT and SIGTERM go to one watcher thread (blocked everywhere else, so every thread started
  // from here on inherits the mask); a write to a closed socket must return an error, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::mutex lifecycle;  // guards `running` and `finished` between this thread and the watcher
  ApiServer* running = nullptr;
  bool finished = false;
  std::thread watcher([&] {
    int received = 0;
    sigwait(&signals, &received);
    for (bool first = true;; first = false) {
      {
        std::lock_guard lock(lifecycle);
        if (finished) return;
        if (running == nullptr) {  // still loading: nothing to shut down cleanly
          spdlog::info("interrupted while loading the model");
          std::_Exit(130);
        }
        if (first) spdlog::info("{}: shutting down", received == SIGINT ? "SIGINT" : "SIGTERM");
        running->stop();  // may come before the listen loop has started: repeat until it has ended
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto end_watcher = [&] {
    {
      std::lock_guard lock(lifecycle);
      finished = true;
      running = nullptr;
    }
    ::kill(::getpid(), SIGTERM);  // blocked in every thread: wakes the watcher's sigwait if no signal came
    watcher.join();
  };

  try {
    ApiServer server(o, mode_preset_flags_given(cmd), env);
    {
      std::lock_guard lock(lifecycle);
      running = &server;
    }
    if (!server.bind()) throw Error(fmt::format("cannot listen on {}:{} (address in use or not available here)", o.host, o.port));
    server.listen();
    end_watcher();  // before the server goes away
    spdlog::info("server stopped");
  } catch (...) {
    if (watcher.joinable()) end_watcher();
    throw;
  }
  return 0;
}

}  // namespace

Subcommand add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat completions, completions, models)");
  o->engine.add_to(*cmd);
  cmd->add_option("--host", o->host, "Address to listen on (127.0.0.1: this machine only)")->capture_default_str();
  cmd->add_option("--port", o->port, "Port to listen on (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on every request but GET /health");
  cmd->add_option("--alias", o->alias, "Model id in the API (default: the model file's name without .gguf)");
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens one answer may have (a request's max_tokens above is refused)")
      ->check(CLI::Range(1, 1 << 24))->capture_default_str();
  cmd->add_option("--max-body", o->max_body_bytes, "Largest request body in bytes")
      ->check(CLI::Range(1024, 1 << 30))->capture_default_str();
  cmd->add_option("--max-queue", o->max_queue, "Most requests in progress or waiting; more get 503")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--parallel", o->parallel,
                  "-np: most requests generating at once (each step decodes a token for each); -c is the KV cache positions "
                  "they share, as one pool")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_flag("--keep-thinking-kv", o->keep_thinking_kv,
                "Keep an answer's thinking in the KV cache (by default it is evicted once the answer is done, as the "
                "template drops it from later turns: the next turn then reuses the answer's cache, computed with the "
                "thinking in view, so close to but not exactly a fresh prefill)");
  cmd->add_flag("--no-think", o->no_think, "Qwen3: answer without thinking unless a request sets enable_thinking");
  o->sampling = SamplerParams::qwen3_thinking();
  add_sampling_options(*cmd, o->sampling, "--seed");
  return {cmd, [o, cmd](const Environment& env) { return serve_forever(*o, *cmd, env); }};
}

}  // namespace xelm::cli
