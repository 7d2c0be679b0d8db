// model_bench.h — `xelm bench`: llama-bench-style prompt-processing (pp), generation (tg) and
// combined (pp+tg) speed of a model, one result row per combination of the parameter lists
// (backend × -ngl × threads × batch × KV type × test), with effective weight bandwidth next to
// the machine's measured read bandwidth, OpenCL launch/sync counts per token, and optionally a
// per-op time breakdown (--profile). `xelm tune` runs its sweep through the same functions.
//
// OpenCL rows are built by load_engine's -ngl machinery (tools/xelm/engine_options.h), so a bench
// row runs exactly what `xelm run -ngl N` would.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/xelm/environment.h"

namespace xelm::bench {

// One engine to measure: what load_engine gets for `--backend B -ngl N -t T -b B --kv-type K`.
struct BenchConfig {
  std::string backend = "cpu";  // cpu (AVX2 when available), ref (scalar), opencl (layers per n_gpu_layers)
  int n_gpu_layers = 0;         // opencl only; above the layer count: everything incl. the embedding lookup
  int n_threads = 0;            // 0: one per physical core
  int n_batch = 512;
  std::string kv_type = "f16";  // f16, f32, q8_0
};

// pp: (n_prompt, 0); tg: (0, n_gen) after a short untimed prompt; pg: both, timed together. With
// n_seq > 1, that many sequences run together in one Transformer (each prompt and each decode step of
// all sequences as one batched eval), and the speed is their aggregate.
struct BenchTest {
  int n_prompt = 0;
  int n_gen = 0;
  int n_seq = 1;
  std::string name() const;  // "pp512", "tg128", "pp512+tg128"; "tg128@np4" for 4 sequences
};

struct BenchParams {
  std::string model_path;
  std::vector<std::string> backends = {"cpu"};
  std::vector<int> n_gpu_layers = {99};         // used by opencl rows
  std::vector<int> n_threads = {0};
  std::vector<int> n_prompt = {512};            // pp tests (0 entries are skipped)
  std::vector<int> n_gen = {128};               // tg tests (0 entries are skipped)
  std::vector<int> prompt_gen;                  // -pg: flat list of (n_prompt, n_gen) pairs
  std::vector<int> n_seq = {1};                 // -np: sequences decoding together (every test per count)
  int n_ctx = 0;                                // -c: KV pool positions (0: what the largest test needs)
  std::vector<int> n_batch = {512};
  std::vector<std::string> kv_types = {"f16"};
  int repetitions = 5;
  double bandwidth_gbps = 0.0;  // the machine's read bandwidth (measured by the caller when not given)
  std::string output = "md";    // md, csv or json
  bool profile = false;
  std::string device;           // OpenCL device: index or name substring
  std::string cpu_isa = "auto"; // --cpu-isa: the CPU backend's product kernels (auto, avx2, avxvnni, avx512)
  std::string layer_plan;       // --layer-plan: layer surgery at load time (runtime/layer_plan.h)
};

// Time of one op summed over the timed repetitions, on one backend.
struct OpProfile {
  std::string backend, op;
  double ms_per_run = 0;
  double calls_per_run = 0;
  double share_pct = 0;  // of that backend's profiled op time
};

// Where resident memory goes: the model file's mapped pages, shared libraries' pages (an OpenCL
// runtime such as PoCL brings its LLVM), and the rest (heap, anonymous: KV cache, activations,
// device buffers of host-memory devices).
struct ResidentBreakdown {
  uint64_t model_bytes = 0;
  uint64_t library_bytes = 0;
  uint64_t other_bytes = 0;
};

struct BenchResult {
  std::string build_commit, model_filename, model_name, model_type, model_filetype;
  std::string backend, cpu_info, gpu_info, gpu_driver;  // gpu_* empty for CPU-only rows
  std::string cpu_kernels;              // ISA of the CPU backend's product kernels (avx2, avxvnni, avx512); "" for ref
  uint64_t model_size = 0, model_n_params = 0;
  uint64_t weight_bytes_per_token = 0;  // bytes of every matrix a token's forward pass reads
  int n_threads = 0, n_batch = 0, n_gpu_layers = 0, n_prompt = 0, n_gen = 0, n_seq = 1;
  std::string type_k, type_v;
  std::string offload;                  // the plan, "layers 20-27 + head on GPU; ..." or "cpu"
  uint64_t memory_cpu_bytes = 0, memory_gpu_bytes = 0;  // estimate_memory for this run's shape
  std::string test_time;                // ISO 8601, when the test started
  std::vector<double> samples_ns;       // one per repetition
  double avg_ns = 0, stddev_ns = 0, avg_ts = 0, stddev_ts = 0;
  double gbps = 0, bw_pct = 0;          // weight bytes per token × tok/s; share of measured bandwidth
  bool has_gpu_counters = false;        // OpenCL rows: the fields below up to unified_memory are set
  double launches_per_token = 0, syncs_per_token = 0;
  int gpu_layers = 0;                   // repeating layers placed on the GPU
  double launches_per_layer_token = 0;  // kernel launches inside GPU layers / (gpu_layers × timed tokens)
  double h2d_bytes_per_token = 0, d2h_bytes_per_token = 0;  // host → device and device → host transfers
  uint64_t weight_bytes_copied = 0;     // weight bytes copied into device buffers at load (0 when zero-copy)
  uint64_t weight_bytes_zero_copy = 0;  // weight bytes the device uses in place (CL_MEM_USE_HOST_PTR)
  bool unified_memory = false;          // the device shares host memory
  uint64_t file_size = 0;               // bytes of the GGUF file
  uint64_t peak_rss_bytes = 0;          // VmHWM over this config's load and runs (0: not measured)
  double peak_rss_ratio() const { return file_size > 0 ? static_cast<double>(peak_rss_bytes) / file_size : 0.0; }
  ResidentBreakdown resident;           // what was resident after the config's last run
  std::vector<OpProfile> profile;       // --profile only
  std::string test_name() const;
};

// The engine configurations a parameter set asks for, in row order (cpu/ref rows once per -ngl list,
// ref once per thread list: it is single-threaded).
std::vector<BenchConfig> expand_configs(const BenchParams& params);
std::vector<BenchTest> expand_tests(const BenchParams& params);

struct RunSettings {
  int repetitions = 5;
  double bandwidth_gbps = 0.0;
  bool profile = false;
  std::string device;
  std::string cpu_isa = "auto";
  std::string layer_plan = "";   // layer surgery applied at load time
  int n_ctx = 0;                 // KV pool positions; 0 (or fewer than a test needs): what the tests need
  cli::Environment environment;  // what main read: OpenCL settings, device memory cap
  // Reset the process's peak RSS (VmHWM) before loading and record it per config: the peak of this
  // config alone. `xelm tune` leaves it off and reports the cumulative peak.
  bool measure_peak_rss = false;
};

// Loads the engine for `config` once and runs every test on it (one warm-up run each, excluded).
// `stop`, when set between repetitions, ends the config early: tests with at least one timed
// repetition are kept. Throws xelm::Error when an OpenCL config finds no usable device.
std::vector<BenchResult> run_config(const std::string& model_path, const BenchConfig& config,
                                    const std::vector<BenchTest>& tests, const RunSettings& settings,
                                    const std::atomic<bool>* stop = nullptr);

// Every combination of `params`.
std::vector<BenchResult> run_benchmarks(const BenchParams& params, const cli::Environment& environment);

// Formats results (md, csv, json) with llama-bench's column names where they overlap.
std::string format_results(const std::vector<BenchResult>& results, const std::string& format, double bandwidth_gbps);

// How --profile measured each backend (printed with the profile).
std::string profile_method_note();

// Resident bytes of this process by kind (/proc/self/smaps; all 0 where unavailable).
ResidentBreakdown resident_breakdown(const std::string& model_path);

// VmHWM from /proc/self/status in bytes (0 where unavailable).
uint64_t peak_resident_bytes();
// Resets VmHWM to the current RSS (/proc/self/clear_refs, Linux 4.0+); false where that is refused.
bool reset_peak_resident();

}  // namespace xelm::bench
