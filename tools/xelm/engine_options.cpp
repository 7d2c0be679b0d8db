// engine_options.cpp — flag registration, the GPU request and engine construction.
#include "tools/xelm/engine_options.h"

#include <filesystem>
#include <optional>
#include <variant>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "bench/tune_store.h"
#include "cpu_fallback/cpu_backend.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"

namespace xelm::cli {

void EngineOptions::add_to(CLI::App& cmd) {
  cmd.add_option("-m,--model", model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd.add_option("-c,--ctx-size", n_ctx, "Context size in tokens: KV cache positions in total, shared by all sequences (one sequence holds at most the model's training context)")->check(CLI::Range(1, 1 << 24));
  cmd.add_option("-b,--batch-size", n_batch, "Tokens per forward step (prompt chunks and, when serving, other sequences' decoded tokens together)")->check(CLI::Range(1, 1 << 16));
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
  cmd.add_option("--layer-plan", layer_plan,
                 "Layer surgery at load time, no file written: operations separated by ';' applied in order, indices as "
                 "they are after the previous ones, e.g. 'delete 10; swap 11,12; duplicate 5; interpolate 7,8; "
                 "layers 0-9,11' (see `xelm surgery --help`)");
}

GgmlType EngineOptions::kv_cache_type() const {
  return kv_type == "f32" ? GgmlType::F32 : kv_type == "q8_0" ? GgmlType::Q8_0 : GgmlType::F16;
}

namespace {

// The GPU part of the plan that the flags ask for, or a saved `xelm tune` recommendation.
struct LastLayers {  // -ngl N (--backend opencl without -ngl: every layer)
  int64_t count;
};
struct ListedLayers {};  // --layers-gpu
struct FittingLayers {};  // -ngl auto
struct TunedLayers {  // no -ngl: `xelm tune`'s recommendation for this model, if it is for the device in use
  bench::TunedConfig saved;
};
using GpuRequest = std::variant<LastLayers, ListedLayers, FittingLayers, TunedLayers>;

constexpr int64_t kEveryLayer = 999;  // above any layer count: everything, embedding lookup included

int64_t parse_gpu_layers(const std::string& text) {
  try {
    size_t used = 0;
    const long long n = std::stoll(text, &used);
    if (used == text.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  throw Error("-ngl: '" + text + "' is not a layer count or auto");
}

// From -ngl / --layers-gpu / --backend opencl, or else the tune store; nullopt = CPU only.
std::optional<GpuRequest> gpu_request(const EngineOptions& o, const std::filesystem::path& tune_store_dir) {
  if (!o.layers_gpu.empty()) return ListedLayers{};
  if (o.n_gpu_layers == "auto") return FittingLayers{};
  if (!o.n_gpu_layers.empty()) {
    const int64_t n = parse_gpu_layers(o.n_gpu_layers);
    if (n == 0) return std::nullopt;
    return LastLayers{n};
  }
  if (o.backend == "opencl") return LastLayers{kEveryLayer};
  if (o.backend == "cpu") {
    if (auto tuned = bench::find_tuning_for_model(tune_store_dir, o.model_path); tuned && tuned->n_gpu_layers > 0) {
      return TunedLayers{std::move(*tuned)};
    }
  }
  return std::nullopt;
}

// The OpenCL settings of the environment, with --device when it was given.
opencl::OpenClOptions opencl_options(const EngineOptions& o, const Environment& env) {
  opencl::OpenClOptions options = env.opencl;
  if (!o.device.empty()) options.device = o.device;
  options.profile_kernels = o.profile_gpu_kernels;
  return options;
}

}  // namespace

Engine load_engine(const EngineOptions& o, const Environment& env) {
  return make_engine(o, env, Model::load(o.model_path, o.layer_plan));
}

Engine make_engine(const EngineOptions& o, const Environment& env, std::unique_ptr<Model> model) {
  Engine e;
  e.model = std::move(model);
  const ModelConfig& c = e.model->config();
  spdlog::info("{}", c.summary());
  if (!e.model->layer_plan().is_identity()) {
    spdlog::info("layer plan '{}': {} layers {}", e.model->layer_plan().operations, c.n_layer,
                 e.model->layer_plan().describe());
  }
  e.cpu = o.backend == "ref" ? cpu::make_reference_backend() : cpu::make_cpu_backend(o.n_threads, o.cpu_isa);
  const RunShape shape{.n_ctx = o.n_ctx, .n_batch = o.n_batch, .kv_type = o.kv_cache_type()};
  e.plan = OffloadPlan::last_n_layers(c.n_layer, 0);

  if (const std::optional<GpuRequest> request = gpu_request(o, env.tune_store_dir)) {
    try {
      e.gpu = opencl::make_opencl_backend(opencl_options(o, env));
    } catch (const Error& error) {
      spdlog::warn("OpenCL is not usable ({}); running on the CPU", error.what());
    }
    if (e.gpu) {
      const opencl::DeviceInfo& info = e.gpu->device_info();
      const DeviceBudget budget =
          apply_memory_cap({info.name, info.global_memory_bytes, info.max_alloc_bytes}, env.device_memory_cap_bytes);
      if (const auto* last = std::get_if<LastLayers>(&*request)) {
        e.plan = OffloadPlan::last_n_layers(c.n_layer, last->count);
      } else if (std::holds_alternative<ListedLayers>(*request)) {
        e.plan = OffloadPlan::from_layer_list(c.n_layer, o.layers_gpu, o.embedding_gpu, !o.head_cpu);
      } else if (std::holds_alternative<FittingLayers>(*request)) {
        const int64_t n = auto_gpu_layers(*e.model, shape, budget);
        spdlog::info("-ngl auto: {} of {} layers fit {} ({})", std::min(n, c.n_layer), c.n_layer, budget.name,
                     format_bytes(budget.memory_bytes));
        e.plan = OffloadPlan::last_n_layers(c.n_layer, n);
      } else if (const bench::TunedConfig& tuned = std::get<TunedLayers>(*request).saved;
                 tuned.device == info.name && tuned.driver == info.driver_version) {
        spdlog::info("-ngl {} from `xelm tune`'s recommendation for this model on {}", tuned.n_gpu_layers, info.name);
        e.plan = OffloadPlan::last_n_layers(c.n_layer, tuned.n_gpu_layers);
      } else {
        spdlog::info("the saved `xelm tune` result is for another device or driver; running on the CPU");
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
