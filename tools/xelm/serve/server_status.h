// server_status.h — what `xelm serve` tells about itself beside the API: GET /metrics in Prometheus'
// text format (counters since start, tokens/s, KV cache pages, queue) and GET /slots as JSON (each
// of the --parallel slots: idle, or the request it runs with its token counts and sampling
// parameters, after llama.cpp's /slots), both from the batch scheduler's statistics.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/batch_scheduler.h"

namespace xelm::serve {

std::string metrics_text(const SchedulerStats& stats);
nlohmann::json slots_json(const SchedulerStats& stats, int parallel);

}  // namespace xelm::serve
