// model_bench.cpp — the pp/tg/pg measurements behind `xelm bench` (and `xelm tune`) and their
// md/csv/json reports.
#include "bench/model_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "bench/profiling_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "runtime/error.h"
#include "runtime/file_type.h"
#include "runtime/model.h"
#include "runtime/offload_plan.h"
#include "runtime/transformer.h"
#include "runtime/version.h"
#include "tools/xelm/engine_options.h"

namespace xelm::bench {
namespace {

// Prompt tokens evaluated (untimed) before a tg run, so decoding attends over a short context.
constexpr int kTgPromptTokens = 8;

// Bytes of every matrix one token's forward pass multiplies with: the layers and the output head
// (the embedding lookup reads one row only).
uint64_t matmul_weight_bytes(const Model& model) {
  uint64_t total = model.weights().output->n_bytes;
  for (const LayerWeights& l : model.weights().layers) {
    for (WeightTensor t : {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down}) total += t->n_bytes;
  }
  return total;
}

std::string file_type_name(const Model& model) {
  if (auto ft = model.file().find_int("general.file_type")) {
    if (auto info = file_type_info(static_cast<uint32_t>(*ft))) return std::string(info->name);
  }
  return "unknown";
}

std::string now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::vector<int32_t> random_tokens(int n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t& t : tokens) t = dist(rng);
  return tokens;
}

// Positions one sequence of the test holds, and tokens timed over all its sequences.
int context_needed(const BenchTest& test) { return test.n_prompt > 0 ? test.n_prompt + test.n_gen : kTgPromptTokens + test.n_gen; }
int timed_tokens(const BenchTest& test) { return test.n_seq * (test.n_prompt + test.n_gen); }
// KV pool positions for the test's sequences (each sequence takes whole pages).
int pool_needed(const BenchTest& test) {
  const int page = static_cast<int>(TransformerOptions{}.kv_page_size);
  return test.n_seq * ((context_needed(test) + page - 1) / page * page);
}

struct RunSample {
  double ns = 0;
  uint64_t launches = 0, syncs = 0, bytes_to_device = 0, bytes_from_device = 0;
  uint64_t layer_launches = 0;  // launches between the layer hook's enter and leave on the GPU backend
};

// One run of a test on a fresh cache. OpenCL counters cover the timed part only (for tg: reset after
// the untimed prompt). gpu_layers_backend: the Backend the placement gives the GPU layers (the
// profiling decorator under --profile), whose layers' launches are counted apart.
RunSample time_run(Transformer& transformer, const std::vector<int32_t>& tokens, const BenchTest& test,
                   opencl::OpenClBackend* gpu, const Backend* gpu_layers_backend) {
  using Clock = std::chrono::steady_clock;
  // Sequence s reads its own stretch of `tokens` (context_needed tokens from s * context_needed).
  transformer.truncate(0);
  std::vector<SeqId> seqs = {Transformer::kDefaultSequence};
  for (int s = 1; s < test.n_seq; ++s) seqs.push_back(transformer.new_sequence());
  const auto stride = static_cast<size_t>(context_needed(test));
  std::vector<SeqInput> step(seqs.size());
  // One eval of n tokens from position `from` of every sequence's stretch.
  auto eval_all = [&](int from, int n) {
    for (size_t s = 0; s < seqs.size(); ++s) {
      step[s] = {seqs[s], std::span<const int32_t>(tokens).subspan(s * stride + static_cast<size_t>(from), static_cast<size_t>(n))};
    }
    transformer.eval(step);
  };
  int next = 0;
  if (test.n_prompt == 0) {
    eval_all(0, kTgPromptTokens);
    next = kTgPromptTokens;
  }
  uint64_t layer_launches = 0, launches_at_enter = 0;
  if (gpu) {
    gpu->reset_counters();
    transformer.set_layer_hook([&](int64_t, Backend* backend, bool entering) {
      if (backend != gpu_layers_backend) return;
      const uint64_t now = gpu->counters().kernel_launches;
      if (entering) {
        launches_at_enter = now;
      } else {
        layer_launches += now - launches_at_enter;
      }
    });
  }
  const auto t0 = Clock::now();
  if (test.n_prompt > 0) {
    eval_all(0, test.n_prompt);
    next = test.n_prompt;
  }
  for (int i = 0; i < test.n_gen; ++i) eval_all(next + i, 1);
  RunSample sample{.ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count()};
  for (size_t s = 1; s < seqs.size(); ++s) transformer.release(seqs[s]);
  if (gpu) {
    transformer.set_layer_hook({});
    const opencl::OpenClCounters& c = gpu->counters();
    sample.launches = c.kernel_launches;
    sample.syncs = c.blocking_syncs;
    sample.bytes_to_device = c.bytes_to_device;
    sample.bytes_from_device = c.bytes_from_device;
    sample.layer_launches = layer_launches;
  }
  return sample;
}

void summarize(BenchResult& r, double bandwidth_gbps) {
  const double n_tokens = static_cast<double>(r.n_seq) * (r.n_prompt + r.n_gen);
  const double n = static_cast<double>(r.samples_ns.size());
  r.avg_ns = std::accumulate(r.samples_ns.begin(), r.samples_ns.end(), 0.0) / n;
  std::vector<double> ts;
  for (double s : r.samples_ns) ts.push_back(n_tokens * 1e9 / s);
  r.avg_ts = std::accumulate(ts.begin(), ts.end(), 0.0) / n;
  double var_ns = 0.0, var_ts = 0.0;
  for (size_t i = 0; i < ts.size(); ++i) {
    var_ns += (r.samples_ns[i] - r.avg_ns) * (r.samples_ns[i] - r.avg_ns);
    var_ts += (ts[i] - r.avg_ts) * (ts[i] - r.avg_ts);
  }
  r.stddev_ns = n > 1 ? std::sqrt(var_ns / (n - 1)) : 0.0;
  r.stddev_ts = n > 1 ? std::sqrt(var_ts / (n - 1)) : 0.0;
  // The sequences of one step share each weight read.
  r.gbps = static_cast<double>(r.weight_bytes_per_token) * r.avg_ts / r.n_seq / 1e9;
  r.bw_pct = bandwidth_gbps > 0 ? 100.0 * r.gbps / bandwidth_gbps : 0.0;
}

// Rows of one backend's profile: `times` maps an op (CPU) or kernel (OpenCL) name to a time with
// total_ns and calls over n_runs runs; shares are of that backend's total.
template <typename Times>
void append_profile(BenchResult& r, const std::string& backend, const Times& times, double n_runs) {
  double total_ns = 0;
  for (const auto& [op, time] : times) total_ns += static_cast<double>(time.total_ns);
  for (const auto& [op, time] : times) {
    const auto ns = static_cast<double>(time.total_ns);
    r.profile.push_back({.backend = backend, .op = op, .ms_per_run = ns / n_runs / 1e6,
                         .calls_per_run = static_cast<double>(time.calls) / n_runs,
                         .share_pct = total_ns > 0 ? 100.0 * ns / total_ns : 0.0});
  }
}

}  // namespace

std::string BenchTest::name() const {
  std::string name = n_prompt > 0 && n_gen > 0 ? fmt::format("pp{}+tg{}", n_prompt, n_gen)
                     : n_prompt > 0            ? fmt::format("pp{}", n_prompt)
                                               : fmt::format("tg{}", n_gen);
  return n_seq > 1 ? fmt::format("{}@np{}", name, n_seq) : name;
}

std::string BenchResult::test_name() const { return BenchTest{n_prompt, n_gen, n_seq}.name(); }

std::string profile_method_note() {
  return "cpu/ref: wall time per op (synchronous backends); opencl: device time per kernel from event profiling "
         "(CL_PROFILING_COMMAND_START to END, queue created with profiling on), no extra synchronization";
}

std::vector<BenchConfig> expand_configs(const BenchParams& params) {
  std::vector<BenchConfig> configs;
  for (const std::string& backend : params.backends) {
    const std::vector<int> layer_counts = backend == "opencl" ? params.n_gpu_layers : std::vector<int>{0};
    for (int n_gpu_layers : layer_counts) {
      for (int threads : params.n_threads) {
        if (backend == "ref" && threads != params.n_threads.front()) continue;  // single-threaded: once
        for (int n_batch : params.n_batch) {
          for (const std::string& kv_type : params.kv_types) {
            configs.push_back({.backend = backend, .n_gpu_layers = n_gpu_layers, .n_threads = threads,
                               .n_batch = n_batch, .kv_type = kv_type});
          }
        }
      }
    }
  }
  return configs;
}

std::vector<BenchTest> expand_tests(const BenchParams& params) {
  if (params.prompt_gen.size() % 2 != 0) throw Error("-pg: expects pairs n_prompt,n_gen (e.g. -pg 512,128)");
  std::vector<BenchTest> tests;
  for (int n_seq : params.n_seq) {
    if (n_seq < 1) throw Error("-np: sequence counts must be at least 1");
    for (int p : params.n_prompt) if (p > 0) tests.push_back({p, 0, n_seq});
    for (int g : params.n_gen) if (g > 0) tests.push_back({0, g, n_seq});
    for (size_t i = 0; i < params.prompt_gen.size(); i += 2) {
      if (params.prompt_gen[i] < 1 || params.prompt_gen[i + 1] < 1) throw Error("-pg: both counts must be at least 1");
      tests.push_back({params.prompt_gen[i], params.prompt_gen[i + 1], n_seq});
    }
  }
  return tests;
}

std::vector<BenchResult> run_config(const std::string& model_path, const BenchConfig& config,
                                    const std::vector<BenchTest>& tests, const RunSettings& settings,
                                    const std::atomic<bool>* stop) {
  if (settings.repetitions < 1) throw Error("-r/--repetitions must be at least 1");
  if (tests.empty()) return {};
  const bool peak_rss = settings.measure_peak_rss && reset_peak_resident();
  // Positions of the longest sequence, and of the largest test's sequences together (or -c).
  int n_ctx = 1, n_pool = settings.n_ctx;
  for (const BenchTest& t : tests) {
    n_ctx = std::max(n_ctx, context_needed(t));
    n_pool = std::max(n_pool, pool_needed(t));
  }

  cli::EngineOptions options;
  options.model_path = model_path;
  options.n_ctx = n_pool;
  options.n_batch = config.n_batch;
  options.n_threads = config.n_threads;
  options.kv_type = config.kv_type;
  options.backend = config.backend == "ref" ? "ref" : "cpu";
  options.n_gpu_layers = config.backend == "opencl" ? std::to_string(config.n_gpu_layers) : "0";
  options.device = settings.device;
  options.cpu_isa = settings.cpu_isa;
  options.layer_plan = settings.layer_plan;
  options.profile_gpu_kernels = settings.profile;
  cli::Engine engine = cli::load_engine(options, settings.environment);
  // What the load copied (before any timed run resets the counters).
  const opencl::OpenClCounters loaded = engine.gpu ? engine.gpu->counters() : opencl::OpenClCounters{};
  const Model& model = *engine.model;
  const ModelConfig& c = model.config();
  if (n_ctx > c.n_ctx_train) throw Error(fmt::format("test needs {} positions; the model has {}", n_ctx, c.n_ctx_train));
  if (config.backend == "opencl" && config.n_gpu_layers > 0 && !engine.gpu) {
    throw Error("--backend opencl: no usable OpenCL device (see `xelm devices`)");
  }

  BenchResult base;
  base.build_commit = std::string(build_commit());
  base.model_filename = std::filesystem::path(model_path).filename().string();
  base.model_name = model.file().find_string("general.name").value_or(base.model_filename);
  base.model_filetype = file_type_name(model);
  base.model_type = std::string(architecture_name(c.arch)) + " " + base.model_filetype;
  for (const gguf::TensorInfo& t : model.file().tensors()) {
    base.model_size += t.n_bytes;
    base.model_n_params += static_cast<uint64_t>(t.n_elements());
  }
  base.weight_bytes_per_token = matmul_weight_bytes(model);
  base.backend = config.backend;
  base.cpu_info = cpu::cpu_features().summary();
  if (config.backend != "ref") {
    const std::optional<cpu::CpuIsa> isa = cpu::choose_isa(cpu::cpu_features(), settings.cpu_isa);
    base.cpu_kernels = isa ? std::string(cpu::isa_name(*isa)) : "";
  }
  if (engine.gpu) {
    base.gpu_info = engine.gpu->device_info().name;
    base.gpu_driver = engine.gpu->device_info().driver_version;
    base.unified_memory = engine.gpu->device_info().unified_memory;
    base.weight_bytes_copied = loaded.weight_bytes_copied;
    base.weight_bytes_zero_copy = loaded.weight_bytes_zero_copy;
  }
  std::error_code size_error;
  base.file_size = std::filesystem::file_size(model_path, size_error);
  if (size_error) base.file_size = 0;
  base.n_threads = config.backend == "ref" ? 1 : (config.n_threads > 0 ? config.n_threads : cpu::cpu_features().physical_cores);
  base.n_batch = config.n_batch;
  base.n_gpu_layers = engine.gpu ? config.n_gpu_layers : 0;
  base.type_k = base.type_v = config.kv_type;
  base.offload = engine.gpu ? engine.plan.describe() : "cpu";
  const MemoryEstimate memory = estimate_memory(
      model, engine.plan, RunShape{.n_ctx = n_pool, .n_batch = config.n_batch, .kv_type = options.kv_cache_type()});
  base.memory_cpu_bytes = memory.cpu.total();
  base.memory_gpu_bytes = memory.gpu.total();

  // --profile: the CPU ops through a timing decorator (the engine's own Transformer is dropped first);
  // the GPU's kernels by event profiling, undecorated.
  std::unique_ptr<ProfilingBackend> profiled_cpu;
  if (settings.profile) {
    engine.transformer.reset();
    profiled_cpu = std::make_unique<ProfilingBackend>(*engine.cpu);
    engine.transformer = std::make_unique<Transformer>(
        model, place(engine.plan, *profiled_cpu, engine.gpu.get()),
        TransformerOptions{.n_ctx = n_pool, .n_batch = config.n_batch, .kv_type = options.kv_cache_type()});
  }
  Transformer& transformer = *engine.transformer;
  const Backend* gpu_layers_backend = engine.gpu.get();
  base.gpu_layers = gpu_layers_backend == nullptr
                        ? 0
                        : static_cast<int>(std::count(transformer.placement().layers.begin(),
                                                      transformer.placement().layers.end(), gpu_layers_backend));
  int max_seq = 1;
  for (const BenchTest& t : tests) max_seq = std::max(max_seq, t.n_seq);
  const std::vector<int32_t> tokens = random_tokens(n_ctx * max_seq, c.n_vocab, 1234);

  std::vector<BenchResult> results;
  for (const BenchTest& test : tests) {
    if (stop && stop->load()) break;
    BenchResult r = base;
    r.n_prompt = test.n_prompt;
    r.n_gen = test.n_gen;
    r.n_seq = test.n_seq;
    r.test_time = now_iso8601();
    spdlog::info("{} ngl={}: timing {} (a warm-up run, then up to {} timed runs)", r.backend, r.n_gpu_layers,
                 r.test_name(), settings.repetitions);
    // Warm-up (page faults, caches, kernel builds), excluded.
    time_run(transformer, tokens, test, engine.gpu.get(), gpu_layers_backend);
    if (profiled_cpu) profiled_cpu->reset_times();
    if (settings.profile && engine.gpu) engine.gpu->take_kernel_times();  // drop the warm-up's
    RunSample sum;
    for (int rep = 0; rep < settings.repetitions && !(stop && stop->load() && rep > 0); ++rep) {
      const RunSample sample = time_run(transformer, tokens, test, engine.gpu.get(), gpu_layers_backend);
      r.samples_ns.push_back(sample.ns);
      sum.launches += sample.launches;
      sum.syncs += sample.syncs;
      sum.bytes_to_device += sample.bytes_to_device;
      sum.bytes_from_device += sample.bytes_from_device;
      sum.layer_launches += sample.layer_launches;
    }
    const double n_runs = static_cast<double>(r.samples_ns.size());
    if (engine.gpu) {
      const double tokens_timed = n_runs * timed_tokens(test);
      r.has_gpu_counters = true;
      r.launches_per_token = static_cast<double>(sum.launches) / tokens_timed;
      r.syncs_per_token = static_cast<double>(sum.syncs) / tokens_timed;
      r.h2d_bytes_per_token = static_cast<double>(sum.bytes_to_device) / tokens_timed;
      r.d2h_bytes_per_token = static_cast<double>(sum.bytes_from_device) / tokens_timed;
      r.launches_per_layer_token =
          r.gpu_layers > 0 ? static_cast<double>(sum.layer_launches) / (tokens_timed * r.gpu_layers) : 0.0;
    }
    if (profiled_cpu) append_profile(r, profiled_cpu->name(), profiled_cpu->op_times(), n_runs);
    if (settings.profile && engine.gpu) append_profile(r, engine.gpu->name(), engine.gpu->take_kernel_times(), n_runs);
    summarize(r, settings.bandwidth_gbps);
    spdlog::info("{} ngl={} t={} b={} kv={} {}: {:.2f} ± {:.2f} tok/s", r.backend, r.n_gpu_layers, r.n_threads,
                 r.n_batch, r.type_k, r.test_name(), r.avg_ts, r.stddev_ts);
    results.push_back(std::move(r));
  }
  if (peak_rss) {
    const uint64_t peak = peak_resident_bytes();
    const ResidentBreakdown resident = resident_breakdown(model_path);
    for (BenchResult& r : results) {
      r.peak_rss_bytes = peak;
      r.resident = resident;
    }
  }
  return results;
}

uint64_t peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;  // "VmHWM:  123 kB"
  }
  return 0;
}

ResidentBreakdown resident_breakdown(const std::string& model_path) {
  ResidentBreakdown out;
  std::error_code ec;
  const std::string model = std::filesystem::canonical(model_path, ec).string();
  std::ifstream smaps("/proc/self/smaps");
  std::string line, mapping;  // mapping: the path of the current mapping ("" when anonymous)
  while (std::getline(smaps, line)) {
    if (line.rfind("Rss:", 0) == 0) {
      const uint64_t bytes = std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;  // "Rss:  123 kB"
      if (!model.empty() && mapping == model) {
        out.model_bytes += bytes;
      } else if (mapping.find(".so") != std::string::npos) {
        out.library_bytes += bytes;
      } else {
        out.other_bytes += bytes;
      }
    } else if (const size_t space = line.find(' '); space != std::string::npos && space > 0 && line[space - 1] != ':') {
      // A mapping header: "start-end perms offset dev inode [path]".
      std::istringstream fields(line);
      std::string skip;
      for (int i = 0; i < 5; ++i) fields >> skip;
      mapping.clear();
      fields >> std::ws;
      std::getline(fields, mapping);
    }
  }
  return out;
}

bool reset_peak_resident() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";  // 5: reset the peak resident set size to the current one
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

std::vector<BenchResult> run_benchmarks(const BenchParams& params, const cli::Environment& environment) {
  const std::vector<BenchTest> tests = expand_tests(params);
  const RunSettings settings{.repetitions = params.repetitions, .bandwidth_gbps = params.bandwidth_gbps,
                             .profile = params.profile, .device = params.device, .cpu_isa = params.cpu_isa,
                             .layer_plan = params.layer_plan, .n_ctx = params.n_ctx, .environment = environment,
                             .measure_peak_rss = true};
  std::vector<BenchResult> results;
  for (const BenchConfig& config : expand_configs(params)) {
    std::vector<BenchResult> rows = run_config(params.model_path, config, tests, settings);
    results.insert(results.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
  }
  return results;
}

namespace {

nlohmann::json to_json(const BenchResult& r, double bandwidth_gbps) {
  nlohmann::json row = {
      {"build_commit", r.build_commit}, {"cpu_info", r.cpu_info}, {"gpu_info", r.gpu_info},
      {"gpu_driver", r.gpu_driver}, {"backends", r.backend}, {"cpu_kernels", r.cpu_kernels}, {"model_filename", r.model_filename},
      {"model_name", r.model_name}, {"model_type", r.model_type}, {"model_filetype", r.model_filetype},
      {"model_size", r.model_size}, {"model_n_params", r.model_n_params}, {"n_batch", r.n_batch},
      {"n_threads", r.n_threads}, {"type_k", r.type_k}, {"type_v", r.type_v}, {"n_gpu_layers", r.n_gpu_layers},
      {"offload", r.offload}, {"memory_cpu_bytes", r.memory_cpu_bytes}, {"memory_gpu_bytes", r.memory_gpu_bytes},
      {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen}, {"n_seq", r.n_seq}, {"test_time", r.test_time},
      {"avg_ns", static_cast<uint64_t>(r.avg_ns)}, {"stddev_ns", static_cast<uint64_t>(r.stddev_ns)},
      {"avg_ts", r.avg_ts}, {"stddev_ts", r.stddev_ts}, {"samples_ns", r.samples_ns}, {"gbps", r.gbps},
      {"bw_pct", r.bw_pct}, {"bandwidth_gbps", bandwidth_gbps}};
  row["file_size"] = r.file_size;
  if (r.peak_rss_bytes > 0) {
    row["peak_rss_bytes"] = r.peak_rss_bytes;
    row["peak_rss_file_ratio"] = r.peak_rss_ratio();
    row["rss_model_bytes"] = r.resident.model_bytes;
    row["rss_library_bytes"] = r.resident.library_bytes;
    row["rss_other_bytes"] = r.resident.other_bytes;
  }
  if (r.has_gpu_counters) {
    row["launches_per_token"] = r.launches_per_token;
    row["syncs_per_token"] = r.syncs_per_token;
    row["gpu_layers"] = r.gpu_layers;
    row["launches_per_layer_token"] = r.launches_per_layer_token;
    row["h2d_bytes_per_token"] = r.h2d_bytes_per_token;
    row["d2h_bytes_per_token"] = r.d2h_bytes_per_token;
    row["weight_bytes_copied"] = r.weight_bytes_copied;
    row["weight_bytes_zero_copy"] = r.weight_bytes_zero_copy;
    row["unified_memory"] = r.unified_memory;
  }
  if (!r.profile.empty()) {
    nlohmann::json ops = nlohmann::json::array();
    for (const OpProfile& p : r.profile) {
      ops.push_back({{"backend", p.backend}, {"op", p.op}, {"ms_per_run", p.ms_per_run},
                     {"calls_per_run", p.calls_per_run}, {"share_pct", p.share_pct}});
    }
    row["profile"] = ops;
    row["profile_method"] = profile_method_note();
  }
  return row;
}

std::string optional_number(bool present, double value) { return present ? fmt::format("{:.2f}", value) : ""; }

std::string format_mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1u << 20)); }

// The backend column of the markdown table: "cpu (avx512)" names the kernels that ran.
std::string backend_cell(const BenchResult& r) {
  return r.cpu_kernels.empty() ? r.backend : fmt::format("{} ({})", r.backend, r.cpu_kernels);
}

}  // namespace

std::string format_results(const std::vector<BenchResult>& results, const std::string& format, double bandwidth_gbps) {
  std::string out;
  if (format == "csv") {
    out = "build_commit,cpu_info,gpu_info,gpu_driver,backends,model_filename,model_name,model_type,model_size,"
          "model_n_params,n_batch,n_threads,type_k,type_v,n_gpu_layers,n_prompt,n_gen,test_time,avg_ns,stddev_ns,"
          "avg_ts,stddev_ts,gbps,bw_pct,launches_per_token,syncs_per_token,launches_per_layer_token,"
          "h2d_bytes_per_token,d2h_bytes_per_token,weight_bytes_copied,weight_bytes_zero_copy,unified_memory,file_size,"
          "peak_rss_bytes,peak_rss_file_ratio,rss_model_bytes,rss_library_bytes,rss_other_bytes,cpu_kernels,n_seq\n";
    for (const BenchResult& r : results) {
      out += fmt::format(
          "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},{},{},{},\"{}\",\"{}\",{},{},{},\"{}\",{:.0f},{:.0f},"
          "{:.6f},{:.6f},{:.3f},{:.2f},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\",{}\n",
          r.build_commit, r.cpu_info, r.gpu_info, r.gpu_driver, r.backend, r.model_filename, r.model_name,
          r.model_type, r.model_size, r.model_n_params, r.n_batch, r.n_threads, r.type_k, r.type_v, r.n_gpu_layers,
          r.n_prompt, r.n_gen, r.test_time, r.avg_ns, r.stddev_ns, r.avg_ts, r.stddev_ts, r.gbps, r.bw_pct,
          optional_number(r.has_gpu_counters, r.launches_per_token), optional_number(r.has_gpu_counters, r.syncs_per_token),
          optional_number(r.has_gpu_counters, r.launches_per_layer_token),
          optional_number(r.has_gpu_counters, r.h2d_bytes_per_token),
          optional_number(r.has_gpu_counters, r.d2h_bytes_per_token),
          r.has_gpu_counters ? std::to_string(r.weight_bytes_copied) : "",
          r.has_gpu_counters ? std::to_string(r.weight_bytes_zero_copy) : "",
          r.has_gpu_counters ? (r.unified_memory ? "1" : "0") : "", r.file_size,
          r.peak_rss_bytes > 0 ? std::to_string(r.peak_rss_bytes) : "",
          r.peak_rss_bytes > 0 ? fmt::format("{:.3f}", r.peak_rss_ratio()) : "",
          r.peak_rss_bytes > 0 ? std::to_string(r.resident.model_bytes) : "",
          r.peak_rss_bytes > 0 ? std::to_string(r.resident.library_bytes) : "",
          r.peak_rss_bytes > 0 ? std::to_string(r.resident.other_bytes) : "", r.cpu_kernels, r.n_seq);
    }
    return out;
  }
  if (format == "json") {
    nlohmann::json rows = nlohmann::json::array();
    for (const BenchResult& r : results) rows.push_back(to_json(r, bandwidth_gbps));
    return rows.dump(2) + "\n";
  }
  out = fmt::format("measured read bandwidth: {:.1f} GB/s\n\n", bandwidth_gbps);
  out += "| model | size | params | backend | ngl | threads | n_batch | type_k | test | t/s | GB/s | % bw | launches/tok | syncs/tok |\n";
  out += "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const BenchResult& r : results) {
    out += fmt::format("| {} | {:.2f} GiB | {:.2f} B | {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {:.1f} | {:.0f}% | {} | {} |\n",
                       r.model_type, static_cast<double>(r.model_size) / (1u << 30),
                       static_cast<double>(r.model_n_params) / 1e9, backend_cell(r), r.n_gpu_layers, r.n_threads, r.n_batch,
                       r.type_k, r.test_name(), r.avg_ts, r.stddev_ts, r.gbps, r.bw_pct,
                       optional_number(r.has_gpu_counters, r.launches_per_token),
                       optional_number(r.has_gpu_counters, r.syncs_per_token));
  }
  // Offload costs of the OpenCL rows (per timed token) and every row's peak memory.
  std::string counters;
  for (const BenchResult& r : results) {
    const auto mib = [](uint64_t bytes) { return static_cast<double>(bytes) / (1u << 20); };
    const std::string rss =
        r.peak_rss_bytes > 0
            ? fmt::format("{:.0f} MiB / {:.0f} MiB = {:.2f}x | {:.0f} + {:.0f} + {:.0f} MiB", mib(r.peak_rss_bytes),
                          mib(r.file_size), r.peak_rss_ratio(), mib(r.resident.model_bytes),
                          mib(r.resident.library_bytes), mib(r.resident.other_bytes))
            : "n/a | n/a";
    if (!r.has_gpu_counters) {
      counters += fmt::format("| {} | {} | {} | | | | | | | {} |\n", r.backend, r.n_gpu_layers, r.test_name(), rss);
      continue;
    }
    counters += fmt::format("| {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.0f} | {:.0f} | {} copied, {} in place{} | {} |\n",
                            r.backend, r.n_gpu_layers, r.test_name(), r.launches_per_token, r.launches_per_layer_token,
                            r.syncs_per_token, r.h2d_bytes_per_token, r.d2h_bytes_per_token,
                            format_mib(r.weight_bytes_copied), format_mib(r.weight_bytes_zero_copy),
                            r.unified_memory ? " (unified memory)" : "", rss);
  }
  out += "\n| backend | ngl | test | launches/tok | launches/layer/tok | syncs/tok | h2d B/tok | d2h B/tok | weights at load "
         "| peak RSS / file | resident at end: model + libraries + other |\n"
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n" + counters;
  std::string profiles;
  for (const BenchResult& r : results) {
    if (r.profile.empty()) continue;
    profiles += fmt::format("\n{} ngl={} t={} b={} {}:\n\n| backend | op | calls/run | ms/run | share |\n| --- | --- | ---: | ---: | ---: |\n",
                            r.backend, r.n_gpu_layers, r.n_threads, r.n_batch, r.test_name());
    for (const OpProfile& p : r.profile) {
      profiles += fmt::format("| {} | {} | {:.0f} | {:.3f} | {:.1f}% |\n", p.backend, p.op, p.calls_per_run, p.ms_per_run, p.share_pct);
    }
  }
  if (!profiles.empty()) out += "\nper-op profile (" + profile_method_note() + "):\n" + profiles;
  return out;
}

}  // namespace xelm::bench
