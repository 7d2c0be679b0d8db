// server_status.cpp — the /metrics text and the /slots JSON of tools/xelm/serve/server_status.h.
#include "tools/xelm/serve/server_status.h"

#include <spdlog/fmt/fmt.h>

namespace xelm::serve {

std::string metrics_text(const SchedulerStats& s) {
  std::string out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    out += fmt::format("# HELP xelm_{0} {1}\n# TYPE xelm_{0} {2}\nxelm_{0} {3}\n", name, help, type, value);
  };
  metric("requests_total", "counter", "Requests ended (answered, stopped or cancelled).", s.requests_finished);
  metric("prompt_tokens_total", "counter", "Prompt tokens of started requests.", s.prompt_tokens);
  metric("prompt_tokens_cached_total", "counter", "Prompt tokens found in the prefix cache.", s.prompt_tokens_cached);
  metric("generated_tokens_total", "counter", "Answer tokens generated.", s.generated_tokens);
  metric("thinking_tokens_evicted_total", "counter", "Earlier answers' thinking tokens evicted from the KV cache.",
         s.thinking_tokens_evicted);
  metric("busy_seconds_total", "counter", "Seconds spent in forward steps.", s.busy_seconds);
  metric("tokens_per_second", "gauge", "Answer tokens generated per second of forward steps, since start.",
         s.busy_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.busy_seconds : 0.0);
  metric("kv_pages_used", "gauge", "KV cache pages in use (running and cached sequences).", s.kv_pages_used);
  metric("kv_pages_free", "gauge", "KV cache pages free.", s.kv_pages_free);
  metric("kv_pages_total", "gauge", "KV cache pages in the pool (-c positions).", s.kv_pages_total);
  metric("kv_page_size", "gauge", "Positions per KV cache page.", s.kv_page_size);
  metric("cached_sequences", "gauge", "Finished sequences kept for the prefix cache.", s.cached_sequences);
  metric("queue_depth", "gauge", "Requests waiting for a slot or KV cache pages.", s.queued);
  metric("requests_processing", "gauge", "Requests running.", s.running);
  return out;
}

nlohmann::json slots_json(const SchedulerStats& stats, int parallel) {
  nlohmann::json slots = nlohmann::json::array();
  for (int i = 0; i < parallel; ++i) slots.push_back({{"id", i}, {"state", "idle"}, {"is_processing", false}});
  for (const SlotInfo& s : stats.slots) {
    const SamplerParams& p = s.sampling;
    slots[static_cast<size_t>(s.slot)] = {
        {"id", s.slot},
        {"id_task", s.id},
        {"state", s.generating ? "generating" : "prompt"},
        {"is_processing", true},
        {"n_prompt_tokens", s.n_prompt},
        {"n_cached_tokens", s.n_cached},
        {"n_decoded", s.n_generated},
        {"n_predict", s.n_predict},
        {"params",
         {{"temperature", p.temperature}, {"top_k", p.top_k}, {"top_p", p.top_p}, {"min_p", p.min_p},
          {"repeat_penalty", p.repeat_penalty}, {"presence_penalty", p.presence_penalty},
          {"frequency_penalty", p.frequency_penalty}, {"seed", p.seed}}}};
  }
  return slots;
}

}  // namespace xelm::serve
