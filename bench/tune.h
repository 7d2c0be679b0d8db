// tune.h — `xelm tune`: the offload sweep (-ngl 0, n/4, n/2, 3n/4, n, and everything including the
// embedding lookup, × optional thread and batch lists), its pp/tg measurements, the recommendation
// per goal, and the SVG chart of tok/s against the offload count.
//
// Memory per config is estimate_memory's figure for the run's shape (CPU + GPU; on an integrated
// GPU both are system RAM), not a measurement: VmHWM (recorded alongside) is the whole process's
// peak so far and only ever grows across the sweep.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/model_bench.h"

namespace xelm::bench {

struct TuneParams {
  std::string model_path;
  std::vector<int> n_threads = {0};
  std::vector<int> n_batch = {512};
  int n_prompt = 128;
  int n_gen = 32;
  int repetitions = 2;
  std::string kv_type = "f16";
  std::string device;
};

// 0, n/4, n/2, 3n/4, n and n+1 (everything, embedding lookup included), duplicates removed.
std::vector<int> offload_steps(int64_t n_layer);

// The sweep in run order: -ngl 0 runs on the cpu backend, the rest on opencl.
std::vector<BenchConfig> tune_plan(const TuneParams& params, int64_t n_layer);

struct TuneMeasurement {
  BenchConfig config;
  double pp_ts = 0, pp_sd = 0;  // 0: not measured (interrupted)
  double tg_ts = 0, tg_sd = 0;
  uint64_t memory_estimate_bytes = 0;  // estimate_memory: CPU + GPU
  uint64_t vm_hwm_bytes = 0;           // process peak resident memory after this config
  std::string gpu_name, gpu_driver;    // empty for CPU-only configs
};

// Runs the plan; `progress` is told before each config (index from 0). A set `stop` ends the sweep
// after the current repetition; what was measured is returned. OpenCL configs are skipped with a
// warning when no OpenCL device is usable.
std::vector<TuneMeasurement> run_tune(const TuneParams& params, const cli::Environment& environment,
                                      const std::vector<BenchConfig>& plan, const std::atomic<bool>& stop,
                                      const std::function<void(size_t index, const BenchConfig&)>& progress);

struct Recommendation {
  std::string goal;  // tg, pp, balanced, memory
  TuneMeasurement choice;
  std::string reason;  // one line
};

inline const std::vector<std::string> kTuneGoals = {"tg", "pp", "balanced", "memory"};

// One recommendation per goal that the measurements allow (a goal needing tg is skipped when no tg
// was measured).
std::vector<Recommendation> recommend(const std::vector<TuneMeasurement>& measurements);

// "-ngl 14 -t 4 -b 512" (the flags that reproduce a config).
std::string config_flags(const BenchConfig& config);

// An SVG line chart of tok/s (y, log scale) against layers on the GPU (x): one pp and one tg series per
// thread/batch combination.
std::string render_tune_svg(const std::vector<TuneMeasurement>& measurements, const std::string& title,
                            int64_t n_layer, int n_prompt, int n_gen);

}  // namespace xelm::bench
