// batch_scheduler.cpp — admission, the prefix cache, batch assembly and preemption of
// runtime/batch_scheduler.h.
#include "runtime/batch_scheduler.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/dropped_span.h"
#include "runtime/error.h"

namespace xelm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

struct BatchScheduler::Active {
  BatchRequest request;
  uint64_t order = 0;            // arrival order: the queue's order, and the youngest gives way first
  std::vector<int32_t> tokens;   // the prompt, then the answer's tokens
  int64_t n_kv = 0;              // tokens[0, n_kv) are in the sequence
  SeqId seq = -1;
  int slot = -1;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<SequenceDecoder> decoder;
  BatchResult result;
  bool started = false;          // admitted at least once
  bool generating = false;       // sampled its first token
  bool waiting_logged = false;
  Clock::time_point submitted, admitted, first_token;

  bool cancelled() const { return request.cancel && request.cancel->load(); }
  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - n_kv; }  // tokens still to evaluate
};

BatchScheduler::BatchScheduler(Transformer& transformer, const Tokenizer& tokenizer, int parallel)
    : transformer_(transformer),
      tokenizer_(tokenizer),
      parallel_(parallel) {
  if (parallel < 1) throw Error(fmt::format("parallel requests must be at least 1 (got {})", parallel));
  slot_used_.assign(static_cast<size_t>(parallel), false);
  publish_stats();
}

BatchScheduler::~BatchScheduler() {
  for (const auto& r : running_) transformer_.release(r->seq);
  for (const Cached& c : cached_) transformer_.release(c.seq);
}

void BatchScheduler::submit(BatchRequest request) {
  const auto n_prompt = static_cast<int64_t>(request.prompt.size());
  const int64_t n_ctx = transformer_.n_ctx();
  if (n_prompt == 0) throw Error("empty prompt");
  if (n_prompt > n_ctx) {
    throw Error(fmt::format("the prompt has {} tokens; one sequence holds at most {} (-c)", n_prompt, n_ctx));
  }
  // The positions it may come to hold: the prompt and every answer token but the last.
  const int64_t n_answer = request.n_predict < 0 ? n_ctx : std::max<int64_t>(request.n_predict, 1);
  const int64_t positions = std::min(n_ctx, n_prompt + n_answer - 1);
  const KvPages& pool = transformer_.kv_pages();
  const int64_t pages = (positions + pool.page_size() - 1) / pool.page_size();
  if (pages > pool.n_pages()) {
    throw Error(fmt::format("the prompt and answer need {} KV pages of {} positions; the whole pool (-c) has {}", pages,
                            pool.page_size(), pool.n_pages()));
  }
  auto r = std::make_unique<Active>();
  r->sampler = std::make_unique<Sampler>(request.sampling);
  r->decoder = std::make_unique<SequenceDecoder>(tokenizer_, *r->sampler, request.prompt, request.n_predict, n_ctx);
  r->tokens = request.prompt;
  r->result.n_prompt = n_prompt;
  r->submitted = Clock::now();
  r->request = std::move(request);
  {
    std::lock_guard lock(mutex_);
    if (closed_) throw Error("the server is shutting down");
    incoming_.push_back(std::move(r));
    ++occupancy_;
  }
  wake_.notify_all();
}

void BatchScheduler::evict_dropped_span(uint64_t id, std::vector<int32_t> history) {
  {
    std::lock_guard lock(mutex_);
    evictions_.push_back({id, std::move(history)});
  }
  wake_.notify_all();
}

void BatchScheduler::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  wake_.notify_all();
}

void BatchScheduler::run() {
  for (;;) {
    if (step()) continue;
    std::unique_lock lock(mutex_);
    if (closed_) {
      if (incoming_.empty() && queue_.empty() && running_.empty()) return;
      continue;
    }
    wake_.wait(lock, [&] { return closed_ || !incoming_.empty() || !evictions_.empty(); });
  }
}

bool BatchScheduler::step() {
  std::vector<Eviction> evictions;
  bool closed = false;
  {
    std::lock_guard lock(mutex_);
    for (auto& r : incoming_) {
      r->order = ++arrivals_;
      queue_.push_back(std::move(r));
    }
    incoming_.clear();
    evictions.swap(evictions_);
    closed = closed_;
  }
  apply_evictions(std::move(evictions));

  // Cancelled requests (a client went away) and, when closed, all of them end now.
  for (size_t i = 0; i < queue_.size();) {
    if (closed || queue_[i]->cancelled()) {
      std::unique_ptr<Active> r = std::move(queue_[i]);
      queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
      finish(std::move(r), StopReason::Cancelled);
    } else {
      ++i;
    }
  }
  for (size_t i = 0; i < running_.size();) {
    if (closed || running_[i]->cancelled()) {
      finish(detach(running_[i].get()), StopReason::Cancelled);
    } else {
      ++i;
    }
  }

  admit();
  if (running_.empty()) {
    if (!queue_.empty()) {  // cannot happen after submit()'s check; never leave a request hanging
      std::unique_ptr<Active> r = std::move(queue_.front());
      queue_.pop_front();
      finish(std::move(r), StopReason::Cancelled, "the request does not fit the KV cache pool (raise -c)");
    }
    publish_stats();
    return false;
  }

  struct Entry {
    Active* r;
    int64_t n;
    bool logits;
  };
  std::vector<Entry> entries;
  const int64_t n_batch = transformer_.n_batch();
  for (;;) {
    entries.clear();
    int64_t rows = 0, pages = 0;
    // One token for every generating request (its last sampled one) ...
    for (const auto& r : running_) {
      if (r->pending() != 1 || rows == n_batch) continue;
      entries.push_back({r.get(), 1, true});
      pages += transformer_.pages_needed(r->seq, 1);
      ++rows;
    }
    if (pages > transformer_.kv_pages().n_free()) {
      if (!release_lru() && !preempt_youngest()) break;
      continue;
    }
    // ... then prompt chunks, oldest request first, in the rows and pages left.
    for (const auto& r : running_) {
      if (r->pending() <= 1 || rows == n_batch) continue;
      int64_t chunk = std::min(r->pending(), n_batch - rows);
      while (transformer_.pages_needed(r->seq, chunk) > transformer_.kv_pages().n_free() - pages && release_lru()) {
      }
      const int64_t avail = transformer_.kv_pages().n_free() - pages;
      if (transformer_.pages_needed(r->seq, chunk) > avail) {  // the longest chunk that fits
        int64_t lo = 0, hi = chunk;
        while (lo < hi) {
          const int64_t mid = (lo + hi + 1) / 2;
          if (transformer_.pages_needed(r->seq, mid) <= avail) {
            lo = mid;
          } else {
            hi = mid - 1;
          }
        }
        chunk = lo;
      }
      if (chunk == 0) continue;
      pages += transformer_.pages_needed(r->seq, chunk);
      entries.push_back({r.get(), chunk, chunk == r->pending()});
      rows += chunk;
    }
    if (!entries.empty()) break;
    if (!preempt_youngest()) break;  // nothing fits: make room, then try again
  }
  if (entries.empty()) {  // cannot happen after submit()'s check; fail rather than spin
    while (!running_.empty()) {
      finish(detach(running_.front().get()), StopReason::Cancelled, "the request does not fit the KV cache pool (raise -c)");
    }
    publish_stats();
    return false;
  }

  std::vector<SeqInput> inputs;
  inputs.reserve(entries.size());
  for (const Entry& e : entries) {
    inputs.push_back({e.r->seq, std::span<const int32_t>(e.r->tokens).subspan(static_cast<size_t>(e.r->n_kv),
                                                                              static_cast<size_t>(e.n)),
                      e.logits ? SeqInput::Logits::Last : SeqInput::Logits::None});
  }
  const auto start = Clock::now();
  std::vector<float> logits;
  try {
    logits = transformer_.eval(inputs);
  } catch (const Error& error) {
    spdlog::error("forward step of {} sequences failed: {}", entries.size(), error.what());
    for (const Entry& e : entries) finish(detach(e.r), StopReason::Cancelled, error.what());
    publish_stats();
    return true;
  }
  const auto now = Clock::now();
  totals_.busy_seconds += seconds_between(start, now);

  const auto n_vocab = static_cast<size_t>(transformer_.config().n_vocab);
  size_t row = 0;
  for (const Entry& e : entries) {
    Active& r = *e.r;
    r.n_kv += e.n;
    if (!e.logits) continue;
    const std::span<const float> last(logits.data() + row++ * n_vocab, n_vocab);
    if (!r.generating) {
      r.generating = true;
      r.first_token = now;
      r.result.prompt_seconds = seconds_between(r.admitted, now);
    }
    const SequenceDecoder::Step s = r.decoder->sample(last);
    if (s.stop == StopReason::EndOfGeneration) {
      finish(detach(&r), StopReason::EndOfGeneration);
      continue;
    }
    r.tokens.push_back(s.token);
    ++totals_.generated_tokens;
    if (r.request.on_token && !r.request.on_token(s.token, s.text)) {
      finish(detach(&r), StopReason::Callback);
    } else if (s.stop) {
      finish(detach(&r), *s.stop);
    }
  }
  publish_stats();
  return true;
}

void BatchScheduler::admit() {
  while (!queue_.empty() && static_cast<int>(running_.size()) < parallel_) {
    Active& r = *queue_.front();
    // The longest cached prefix, at most all tokens but the last (whose logits the next sample needs).
    const std::span<const int32_t> tokens(r.tokens);
    const int64_t limit = static_cast<int64_t>(tokens.size()) - 1;
    SeqId source = -1;
    int64_t best = 0;
    for (const auto& a : running_) {
      const int64_t n = std::min(limit, common_prefix(tokens, std::span<const int32_t>(a->tokens).first(static_cast<size_t>(a->n_kv))));
      if (n > best) best = n, source = a->seq;
    }
    for (const Cached& c : cached_) {
      const int64_t n = std::min(limit, common_prefix(tokens, c.tokens));
      if (n > best) best = n, source = c.seq;
    }
    const SeqId seq = best > 0 ? transformer_.fork(source, best) : transformer_.new_sequence();
    const int64_t n_new = static_cast<int64_t>(tokens.size()) - best;
    // Pages the running requests' next tokens and unread prompts take, then this one's.
    auto shortfall = [&] {
      int64_t promised = transformer_.pages_needed(seq, n_new);
      for (const auto& a : running_) promised += transformer_.pages_needed(a->seq, a->pending());
      return promised - transformer_.kv_pages().n_free();
    };
    while (shortfall() > 0 && release_lru()) {
    }
    if (const int64_t missing = shortfall(); missing > 0) {
      transformer_.release(seq);
      if (!r.waiting_logged) {
        spdlog::info("request {}: waiting for KV cache pages ({} more needed; {} running)", r.request.id, missing,
                     running_.size());
        r.waiting_logged = true;
      }
      return;
    }
    // A cached sequence this one continues entirely is superseded; one it shares a part of was used.
    if (const auto c = std::find_if(cached_.begin(), cached_.end(), [&](const Cached& x) { return x.seq == source; });
        c != cached_.end()) {
      if (best == static_cast<int64_t>(c->tokens.size())) {
        transformer_.release(c->seq);
        cached_.erase(c);
      } else {
        c->last_used = ++clock_;
      }
    }
    r.seq = seq;
    r.n_kv = best;
    r.waiting_logged = false;
    r.slot = static_cast<int>(std::find(slot_used_.begin(), slot_used_.end(), false) - slot_used_.begin());
    slot_used_[static_cast<size_t>(r.slot)] = true;
    const auto now = Clock::now();
    if (!r.started) {
      r.started = true;
      r.admitted = now;
      r.result.n_cached = best;
      r.result.queued_seconds = seconds_between(r.submitted, now);
      totals_.prompt_tokens += static_cast<uint64_t>(r.result.n_prompt);
      totals_.prompt_tokens_cached += static_cast<uint64_t>(best);
      spdlog::info("request {}: started in slot {}: prompt {} tokens ({} cached), at most {} to generate{}", r.request.id,
                   r.slot, r.result.n_prompt, best, r.request.n_predict,
                   r.result.queued_seconds >= 0.01 ? fmt::format(", after {:.2f} s in the queue", r.result.queued_seconds) : "");
    } else {
      spdlog::info("request {}: resumed in slot {}: re-reading {} tokens ({} cached)", r.request.id, r.slot, n_new, best);
    }
    running_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

bool BatchScheduler::release_lru() {
  if (cached_.empty()) return false;
  const auto lru = std::min_element(cached_.begin(), cached_.end(),
                                    [](const Cached& a, const Cached& b) { return a.last_used < b.last_used; });
  transformer_.release(lru->seq);
  cached_.erase(lru);
  return true;
}

bool BatchScheduler::preempt_youngest() {
  if (running_.size() < 2) return false;  // the last one always fits (submit()'s check)
  const auto youngest = std::max_element(running_.begin(), running_.end(),
                                         [](const auto& a, const auto& b) { return a->order < b->order; });
  std::unique_ptr<Active> r = detach(youngest->get());
  transformer_.release(r->seq);
  r->seq = -1;
  r->n_kv = 0;
  ++r->result.preemptions;
  spdlog::info("request {}: the KV cache is full: gave its pages up to older requests; it continues when they fit",
               r->request.id);
  const auto at = std::find_if(queue_.begin(), queue_.end(), [&](const auto& q) { return q->order > r->order; });
  queue_.insert(at, std::move(r));
  return true;
}

std::unique_ptr<BatchScheduler::Active> BatchScheduler::detach(Active* r) {
  const auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& a) { return a.get() == r; });
  std::unique_ptr<Active> owned = std::move(*it);
  running_.erase(it);
  if (owned->slot >= 0) slot_used_[static_cast<size_t>(owned->slot)] = false;
  owned->slot = -1;
  return owned;
}

void BatchScheduler::finish(std::unique_ptr<Active> r, StopReason stop, std::string error) {
  const auto now = Clock::now();
  BatchResult& result = r->result;
  result.stop = stop;
  result.error = std::move(error);
  result.n_generated = r->decoder->n_generated();
  if (r->generating) result.generate_seconds = seconds_between(r->first_token, now);
  if (!r->started) result.queued_seconds = seconds_between(r->submitted, now);
  if (result.error.empty()) {
    const std::string rest = r->decoder->flush();
    if (!rest.empty() && r->request.on_token) r->request.on_token(-1, rest);
  }
  if (r->seq >= 0) {
    if (stop == StopReason::Cancelled || r->cancelled() || r->n_kv == 0) {
      transformer_.release(r->seq);  // a client that went away gets nothing cached: its pages are free now
    } else {
      cached_.push_back({r->seq, r->request.id,
                         std::vector<int32_t>(r->tokens.begin(), r->tokens.begin() + static_cast<std::ptrdiff_t>(r->n_kv)),
                         ++clock_});
    }
    r->seq = -1;
  }
  ++totals_.requests_finished;
  --occupancy_;
  if (r->request.on_done) r->request.on_done(result);
}

void BatchScheduler::apply_evictions(std::vector<Eviction> evictions) {
  for (const Eviction& e : evictions) {
    const auto c = std::find_if(cached_.begin(), cached_.end(), [&](const Cached& x) { return x.id == e.id; });
    if (c == cached_.end()) continue;  // already released or continued by another request
    const int64_t used_before = transformer_.kv_pages().n_used();
    std::optional<DroppedSpan> span;
    try {
      span = xelm::evict_dropped_span(transformer_, c->seq, c->tokens, e.history);
    } catch (const Error& error) {
      spdlog::warn("request {}: thinking not evicted ({}); the cache keeps what precedes it", e.id, error.what());
      continue;
    }
    if (!span) continue;
    const int64_t freed = used_before - transformer_.kv_pages().n_used();
    totals_.thinking_tokens_evicted += static_cast<uint64_t>(span->end - span->begin);
    spdlog::info("request {}: thinking evicted from the KV cache: {} tokens; {} pages ({:.2f} MiB) freed", e.id,
                 span->end - span->begin, freed,
                 static_cast<double>(freed) * static_cast<double>(transformer_.page_bytes()) / (1 << 20));
  }
}

void BatchScheduler::publish_stats() {
  SchedulerStats s = totals_;
  const KvPages& pages = transformer_.kv_pages();
  s.kv_pages_used = pages.n_used();
  s.kv_pages_free = pages.n_free();
  s.kv_pages_total = pages.n_pages();
  s.kv_page_size = pages.page_size();
  s.cached_sequences = static_cast<int64_t>(cached_.size());
  s.running = static_cast<int64_t>(running_.size());
  for (const auto& r : running_) {
    s.slots.push_back({.slot = r->slot,
                       .id = r->request.id,
                       .generating = r->generating,
                       .n_prompt = r->result.n_prompt,
                       .n_cached = r->result.n_cached,
                       .n_generated = r->decoder->n_generated(),
                       .n_predict = r->request.n_predict,
                       .sampling = r->request.sampling});
  }
  std::sort(s.slots.begin(), s.slots.end(), [](const SlotInfo& a, const SlotInfo& b) { return a.slot < b.slot; });
  std::lock_guard lock(mutex_);
  s.queued = static_cast<int64_t>(queue_.size() + incoming_.size());
  stats_ = std::move(s);
}

SchedulerStats BatchScheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace xelm
