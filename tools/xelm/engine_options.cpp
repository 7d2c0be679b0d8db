// engine_options.cpp — flag registration and engine construction.
#include "tools/xelm/engine_options.h"

#include <spdlog/spdlog.h>

#include "bench/tune_store.h"
#include "cpu_fallback/cpu_backend.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"

#include <spdlog/fmt/fmt.h>

namespace xelm::cli {

void EngineOptions::add_to(CLI::App& cmd) {
  cmd.add_option("-m,--model", model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd.add_option("-c,--ctx-size", n_ctx, "Context size in tokens (KV cache positions)")->check(CLI::Range(1, 1 << 24));
  cmd.add_option("-b,--batch-size", n_batch, "Prompt tokens per forward step")->check(CLI::Range(1, 1 << 16));
  cmd.add_option("-t,--threads", n_threads, "CPU threads (default: physical cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--kv-type", kv_type, "KV cache storage type")->check(CLI::IsMember({"f16", "f32", "q8_0"}));
  cmd.add_option("--backend", backend, "cpu (AVX2 when the CPU has it), ref (scalar reference) or opencl (all on the GPU)")
      ->check(CLI::IsMember({"cpu", "ref", "opencl"}));
  cmd.add_option("--n-gpu-layers,--offload", n_gpu_layers,
                 "Layers on the GPU (-ngl N): the last N (and the output head once N >= 1), a number above the layer count "
                 "for everything, or auto (the most that fits)");
  cmd.add_option("--layers-gpu", layers_gpu, "Explicit GPU layers, e.g. 4-27 or 0-3,10 (the head goes too unless --head-cpu)");
  cmd.add_flag("--embd-gpu", embedding_gpu, "With --layers-gpu: run the embedding lookup on the GPU too");
  cmd.add_flag("--head-cpu", head_cpu, "With --layers-gpu: keep the output norm and head on the CPU");
  cmd.add_option("--device", device, "OpenCL device: index or name substring (see `xelm devices`)");
  cmd.add_option("--cpu-isa", cpu_isa, "CPU kernels: auto (the best the CPU has), avx2, avxvnni or avx512")
      ->check(CLI::IsMember({"auto", "avx2", "avxvnni", "avx512"}))->capture_default_str();
}

GgmlType EngineOptions::kv_cache_type() const {
  return kv_type == "f32" ? GgmlType::F32 : kv_type == "q8_0" ? GgmlType::Q8_0 : GgmlType::F16;
}

void add_sampling_options(CLI::App& cmd, SamplerParams& s, const std::string& seed_flags) {
  cmd.add_option("--temp", s.temperature, "Temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--top-k", s.top_k, "Top-k (0 = off)")->check(CLI::Range(0, 1 << 24))->capture_default_str();
  cmd.add_option("--top-p", s.top_p, "Top-p, nucleus (1 = off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--min-p", s.min_p, "Min-p (0 = off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--repeat-penalty", s.repeat_penalty, "Penalty for repeated tokens (1 = off)")
      ->check(CLI::Range(0.01, 100.0))->capture_default_str();
  cmd.add_option("--repeat-last-n", s.repeat_last_n, "Tokens the penalties look back over (0 = off, -1 = all)")
      ->check(CLI::Range(-1, 1 << 24))->capture_default_str();
  cmd.add_option("--presence-penalty", s.presence_penalty, "Presence penalty (0 = off)")
      ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
  cmd.add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty (0 = off)")
      ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
  cmd.add_option("--think-repeat-penalty", s.think_repeat_penalty, "Repeat penalty inside <think> (0 = as outside)")
      ->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--mirostat", s.mirostat, "Mirostat: 0 = off, 2 = mirostat v2 (replaces top-k/top-p/min-p)")
      ->check(CLI::IsMember({0, 2}))->capture_default_str();
  cmd.add_option("--mirostat-ent", s.mirostat_tau, "Mirostat target entropy tau")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--mirostat-lr", s.mirostat_eta, "Mirostat learning rate eta")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option(seed_flags, s.seed, "Sampling seed (4294967295 = random)")->capture_default_str();
}

bool mode_preset_flags_given(const CLI::App& cmd) {
  for (const char* flag : {"--temp", "--top-k", "--top-p", "--min-p"}) {
    if (cmd.count(flag) > 0) return true;
  }
  return false;
}

SamplerParams with_qwen3_mode_preset(SamplerParams p, bool enable_thinking) {
  const SamplerParams mode = enable_thinking ? SamplerParams::qwen3_thinking() : SamplerParams::qwen3_non_thinking();
  p.temperature = mode.temperature;
  p.top_k = mode.top_k;
  p.top_p = mode.top_p;
  p.min_p = mode.min_p;
  return p;
}

namespace {

// The GPU part of the plan, from -ngl / --layers-gpu / --backend opencl, or else from a saved
// `xelm tune` recommendation for this model ("tuned:N"); nullopt = CPU only.
std::optional<std::string> gpu_request(const EngineOptions& o) {
  if (!o.layers_gpu.empty()) return "list";
  if (!o.n_gpu_layers.empty() && o.n_gpu_layers != "0") return o.n_gpu_layers;
  if (o.n_gpu_layers.empty() && o.backend == "opencl") return "999";
  if (o.n_gpu_layers.empty() && o.backend == "cpu") {
    if (const auto tuned = bench::find_tuning_for_model(o.model_path); tuned && tuned->n_gpu_layers > 0) {
      return "tuned:" + std::to_string(tuned->n_gpu_layers);
    }
  }
  return std::nullopt;
}

int64_t parse_gpu_layers(const std::string& text) {
  try {
    size_t used = 0;
    const long long n = std::stoll(text, &used);
    if (used == text.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  throw Error("-ngl: '" + text + "' is not a layer count or auto");
}

}  // namespace

Engine load_engine(const EngineOptions& o) {
  Engine e;
  e.model = Model::load(o.model_path);
  const ModelConfig& c = e.model->config();
  spdlog::info("{}", c.summary());
  e.cpu = o.backend == "ref" ? cpu::make_reference_backend() : cpu::make_cpu_backend(o.n_threads, o.cpu_isa);
  const RunShape shape{.n_ctx = std::min<int64_t>(o.n_ctx, c.n_ctx_train), .n_batch = o.n_batch, .kv_type = o.kv_cache_type()};
  e.plan = OffloadPlan::last_n_layers(c.n_layer, 0);

  if (const std::optional<std::string> request = gpu_request(o)) {
    try {
      opencl::OpenClOptions options;
      options.device = o.device;
      options.profile_kernels = o.profile_gpu_kernels;
      e.gpu = opencl::make_opencl_backend(options);
    } catch (const Error& error) {
      spdlog::warn("OpenCL is not usable ({}); running on the CPU", error.what());
    }
    if (e.gpu) {
      const opencl::DeviceInfo& info = e.gpu->device_info();
      const DeviceBudget budget = apply_memory_cap({info.name, info.global_memory_bytes, info.max_alloc_bytes});
      if (*request == "list") {
        e.plan = OffloadPlan::from_layer_list(c.n_layer, o.layers_gpu, o.embedding_gpu, !o.head_cpu);
      } else if (*request == "auto") {
        const int64_t n = auto_gpu_layers(*e.model, shape, budget);
        spdlog::info("-ngl auto: {} of {} layers fit {} ({})", std::min(n, c.n_layer), c.n_layer, budget.name,
                     format_bytes(budget.memory_bytes));
        e.plan = OffloadPlan::last_n_layers(c.n_layer, n);
      } else if (request->rfind("tuned:", 0) == 0) {
        const auto tuned = bench::find_tuning_for_model(o.model_path);
        if (tuned && bench::tuned_gpu_layers(o.model_path, info.name, info.driver_version) == tuned->n_gpu_layers) {
          spdlog::info("-ngl {} from `xelm tune`'s recommendation for this model on {}", tuned->n_gpu_layers, info.name);
          e.plan = OffloadPlan::last_n_layers(c.n_layer, tuned->n_gpu_layers);
        } else {
          spdlog::info("the saved `xelm tune` result is for another device or driver; running on the CPU");
        }
      } else {
        e.plan = OffloadPlan::last_n_layers(c.n_layer, parse_gpu_layers(*request));
      }
      const MemoryEstimate memory = estimate_memory(*e.model, e.plan, shape);
      spdlog::info("offload plan: {}", e.plan.describe());
      spdlog::info("memory: GPU {} (weights {}, KV {}, scratch {}) of {}; CPU {} (weights {}, KV {}, scratch {})",
                   format_bytes(memory.gpu.total()), format_bytes(memory.gpu.weight_bytes),
                   format_bytes(memory.gpu.kv_bytes), format_bytes(memory.gpu.scratch_bytes),
                   format_bytes(budget.memory_bytes), format_bytes(memory.cpu.total()),
                   format_bytes(memory.cpu.weight_bytes), format_bytes(memory.cpu.kv_bytes),
                   format_bytes(memory.cpu.scratch_bytes));
      check_fits(memory, budget);
      if (!e.plan.any_gpu()) e.gpu.reset();
    }
  }

  Backend* gpu = e.gpu.get();
  Backend* cpu = e.cpu.get();
  Placement placement = place(e.plan, *cpu, gpu);
  e.description = gpu ? fmt::format("{} + {} ({})", gpu->name(), cpu->name(), e.plan.describe()) : cpu->name();
  e.transformer = std::make_unique<Transformer>(
      *e.model, std::move(placement),
      TransformerOptions{.n_ctx = o.n_ctx, .n_batch = o.n_batch, .kv_type = o.kv_cache_type()});
  if (e.gpu) {
    const opencl::OpenClCounters& loaded = e.gpu->counters();
    spdlog::info("OpenCL weights: {} used in place, {} copied to the device",
                 format_bytes(loaded.weight_bytes_zero_copy), format_bytes(loaded.weight_bytes_copied));
  }
  return e;
}




}  // namespace xelm::cli
