// batch_scheduler.h — continuous batching over one Transformer, for `xelm serve`: many requests
// share the paged KV pool and every forward step. Each step decodes one token for every request that
// is generating and fills the rest of the batch (at most n_batch rows) with prompt chunks of requests
// that are still reading their prompt; requests join and leave between steps, each with its own
// sampler and seed (batch invariance makes a seeded answer the same under load as alone).
//
// Prefix cache: a new request forks the sequence (live or finished) that shares the longest prefix
// with its prompt (shared pages, no copy) and processes only the rest. Finished sequences stay
// cached until their pages are needed, the least recently used released first.
//
// Memory: a request is admitted (at most `parallel` run at once) when the free pages, after
// releasing cached sequences, cover its prompt and the prompts still being read. When a step lacks
// pages (answers grow), cached sequences go first, then the youngest running request gives its pages
// up and waits at the head of the queue; when admitted again it re-reads its prompt and answer so
// far (recomputation, as vLLM's preemption) and continues where it was, same tokens. A request that
// could never fit is refused at submit().
//
// Threads: submit(), occupancy(), stats() and evict_dropped_span() from any thread; step() / run()
// from one scheduler thread, which also calls the requests' callbacks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/generation.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/transformer.h"

namespace xelm {

struct BatchResult {
  int64_t n_prompt = 0;
  int64_t n_cached = 0;      // prompt tokens found in the prefix cache at admission
  int64_t n_generated = 0;
  StopReason stop = StopReason::Cancelled;
  std::string error;         // non-empty: the request failed (stop is Cancelled)
  double queued_seconds = 0.0;    // submit to first admission
  double prompt_seconds = 0.0;    // first admission to the first answer token
  double generate_seconds = 0.0;  // first answer token to the end
  int64_t preemptions = 0;        // times it gave its pages up to others
};

struct BatchRequest {
  uint64_t id = 0;                 // the caller's number for it (logs, /slots, evict_dropped_span)
  std::vector<int32_t> prompt;
  int64_t n_predict = -1;          // < 0: until the context is full
  SamplerParams sampling;
  // Each answer token and the text it completes (token -1: text flushed at the end). Return false
  // to end the answer (StopReason::Callback).
  TokenCallback on_token;
  // Once, when the request ends (or fails, or is cancelled before it started).
  std::function<void(const BatchResult&)> on_done;
  // Optional: set from any thread to end the request at the next step; its pages are freed then.
  std::shared_ptr<const std::atomic<bool>> cancel;
};

// One running request, as GET /slots shows it.
struct SlotInfo {
  int slot = 0;
  uint64_t id = 0;
  bool generating = false;         // false: still reading its prompt
  int64_t n_prompt = 0, n_cached = 0, n_generated = 0, n_predict = 0;
  SamplerParams sampling;
};

struct SchedulerStats {
  uint64_t requests_finished = 0;
  uint64_t prompt_tokens = 0;      // prompt tokens of admitted requests (cached ones included)
  uint64_t prompt_tokens_cached = 0;
  uint64_t generated_tokens = 0;
  double busy_seconds = 0.0;       // time spent in forward steps
  uint64_t thinking_tokens_evicted = 0;
  int64_t kv_pages_used = 0, kv_pages_free = 0, kv_pages_total = 0, kv_page_size = 0;
  int64_t cached_sequences = 0;    // finished sequences kept for the prefix cache
  int64_t queued = 0, running = 0;
  std::vector<SlotInfo> slots;
};

class BatchScheduler {
 public:
  BatchScheduler(Transformer& transformer, const Tokenizer& tokenizer, int parallel);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues a request. Throws xelm::Error, queueing nothing, when it can never run (empty prompt, a
  // prompt over n_ctx(), prompt + n_predict over the whole pool), its sampling parameters are out of
  // range, or the scheduler is closed.
  void submit(BatchRequest request);

  // One step: takes new requests, ends cancelled ones, admits what fits, evaluates one batch and
  // delivers the sampled tokens. Returns false when there was nothing to evaluate.
  bool step();
  // Steps until close(), waiting while there is nothing to do.
  void run();
  // Ends every queued and running request (StopReason::Cancelled) and makes run() return.
  void close();

  // The finished sequence of request `id`, if still cached, drops the span that `history` (the
  // conversation's next prompt) leaves out (runtime/dropped_span.h: Qwen3's earlier thinking), so
  // the next turn continues its cache. Applied at the next step, before new requests are admitted.
  void evict_dropped_span(uint64_t id, std::vector<int32_t> history);

  size_t occupancy() const { return occupancy_.load(); }  // requests queued or running
  SchedulerStats stats() const;
  int parallel() const { return parallel_; }

 private:
  struct Active;
  struct Cached {
    SeqId seq;
    uint64_t id;                  // the request that left it
    std::vector<int32_t> tokens;  // what its positions hold
    uint64_t last_used;
  };
  struct Eviction {
    uint64_t id;
    std::vector<int32_t> history;
  };

  void take_incoming();
  void apply_evictions(std::vector<Eviction> evictions);
  void admit();
  // Releases the least recently used cached sequence; false when there is none.
  bool release_lru();
  // Gives up the pages of the youngest running request and queues it again; false unless two run.
  bool preempt_youngest();
  std::unique_ptr<Active> detach(Active* r);  // takes a request out of running_, freeing its slot
  // Ends a request: calls its callbacks, caches its sequence (released instead when cancelled).
  void finish(std::unique_ptr<Active> r, StopReason stop, std::string error = "");
  void publish_stats();

  Transformer& transformer_;
  const Tokenizer& tokenizer_;
  int parallel_;
  std::atomic<size_t> occupancy_{0};

  mutable std::mutex mutex_;       // guards the members below it up to stats_
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Active>> incoming_;
  std::vector<Eviction> evictions_;
  bool closed_ = false;
  SchedulerStats stats_;

  // Scheduler thread only.
  std::deque<std::unique_ptr<Active>> queue_;   // in arrival order
  std::vector<std::unique_ptr<Active>> running_;
  std::vector<Cached> cached_;
  std::vector<bool> slot_used_;
  uint64_t clock_ = 0, arrivals_ = 0;
  SchedulerStats totals_;          // the counters; copied into stats_ with the gauges
};

}  // namespace xelm
