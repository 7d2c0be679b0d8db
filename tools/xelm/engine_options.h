// engine_options.h — the flags every model-loading command shares (-m, -c, -b, -t, --kv-type, the
// backend, -ngl / --layers-gpu offload) and the one place that turns them into a loaded model, its
// backends and a Transformer, so chat, run, perplexity, eval and bench behave the same.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "host/opencl_backend.h"
#include "runtime/backend.h"
#include "runtime/model.h"
#include "runtime/offload_plan.h"
#include "runtime/transformer.h"
#include "tools/xelm/environment.h"

namespace xelm::cli {

struct EngineOptions {
  std::string model_path;
  int n_ctx = 4096;
  int n_batch = 512;
  int n_threads = 0;            // 0: physical cores
  std::string kv_type = "f16";
  std::string backend = "cpu";  // cpu (AVX2 when the CPU has it), ref (scalar reference), opencl (everything on the GPU)
  std::string n_gpu_layers;     // -ngl: a count or "auto"; "" = by --backend
  std::string layers_gpu;       // explicit GPU layer list "4-27,30"
  bool embedding_gpu = false;   // with --layers-gpu: the embedding lookup on the GPU too
  bool head_cpu = false;        // with --layers-gpu: keep the output head on the CPU
  std::string device;           // OpenCL device index or name substring; "" = XELM_OPENCL_DEVICE's choice
  bool profile_gpu_kernels = false;  // OpenCL event profiling (xelm bench --profile)
  std::string cpu_isa = "auto";      // --cpu-isa: the CPU backend's product kernels, auto|avx2|avxvnni|avx512
  std::string layer_plan;            // --layer-plan: layer surgery applied at load time (runtime/layer_plan.h)

  void add_to(CLI::App& cmd);
  GgmlType kv_cache_type() const;
};

// A model ready to evaluate. Members are declared in destruction-safe order.
struct Engine {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<opencl::OpenClBackend> gpu;  // null when everything runs on the CPU
  OffloadPlan plan;
  std::unique_ptr<Transformer> transformer;
  std::string description;  // "cpu-avx2", "opencl: <device> (layers 20-27 + head)", ...
};

// The OpenCL backend takes env.opencl (with `device` when given), the offload planner
// env.device_memory_cap_bytes, and a run without -ngl the saved `xelm tune` result in env.tune_store_dir.
Engine load_engine(const EngineOptions& options, const Environment& env);
// The same with a model already loaded (`xelm surgery --search` runs one per candidate plan).
Engine make_engine(const EngineOptions& options, const Environment& env, std::unique_ptr<Model> model);

}  // namespace xelm::cli
