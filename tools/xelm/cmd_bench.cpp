// cmd_bench.cpp — `xelm bench`: flags of the llama-bench-style speed test; the work is in bench/.
#include <cstdio>
#include <memory>

#include <spdlog/spdlog.h>

#include "bench/bandwidth.h"
#include "bench/model_bench.h"
#include "cpu_fallback/cpu_features.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {

Subcommand add_bench_command(CLI::App& app) {
  auto opts = std::make_shared<bench::BenchParams>();
  CLI::App* cmd = app.add_subcommand("bench", "Prompt-processing (pp), generation (tg) and combined (pg) speed, llama-bench style");
  cmd->add_option("-m,--model", opts->model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--backend", opts->backends, "Backends to test: cpu (AVX2 when available), ref, opencl (with -ngl)")
      ->delimiter(',')->check(CLI::IsMember({"cpu", "ref", "opencl"}));
  cmd->add_option("--n-gpu-layers", opts->n_gpu_layers,
                  "-ngl: layer counts on the GPU for opencl rows (above the layer count: everything)")
      ->delimiter(',')->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", opts->n_threads, "Thread counts to test (0 = one per physical core)")
      ->delimiter(',')->check(CLI::Range(0, 1024));
  cmd->add_option("-p,--n-prompt", opts->n_prompt, "Prompt lengths for pp tests (0 = none)")->delimiter(',')->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-n,--n-gen", opts->n_gen, "Tokens for tg tests (0 = none)")->delimiter(',')->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--pg", opts->prompt_gen, "-pg: combined tests as pairs n_prompt,n_gen (e.g. -pg 512,128)")
      ->delimiter(',')->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--parallel", opts->n_seq,
                  "-np: sequences decoding together (aggregate tok/s of one batched forward pass per step; every test per count)")
      ->delimiter(',')->check(CLI::Range(1, 256));
  cmd->add_option("-c,--ctx-size", opts->n_ctx,
                  "KV cache positions in total (default: what the largest test needs); the peak RSS column shows "
                  "what a large pool costs")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("-b,--batch-size", opts->n_batch, "Prompt tokens per forward step")->delimiter(',')->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--kv-type", opts->kv_types, "KV cache types to test")->delimiter(',')->check(CLI::IsMember({"f16", "f32", "q8_0"}));
  cmd->add_option("-r,--repetitions", opts->repetitions, "Timed repetitions per test (after one warm-up run); mean ± sd")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("-o,--output", opts->output, "Output format")->check(CLI::IsMember({"md", "csv", "json"}));
  cmd->add_option("--bandwidth", opts->bandwidth_gbps, "Memory read bandwidth in GB/s (default: measure)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--profile", opts->profile, "Time breakdown: per op on the CPU, per kernel (device time, event profiling) on OpenCL");
  cmd->add_option("--device", opts->device, "OpenCL device: index or name substring (see `xelm devices`)");
  cmd->add_option("--cpu-isa", opts->cpu_isa, "CPU kernels: auto (the best the CPU has), avx2, avxvnni or avx512")
      ->check(CLI::IsMember({"auto", "avx2", "avxvnni", "avx512"}))->capture_default_str();
  cmd->add_option("--layer-plan", opts->layer_plan, "Layer surgery at load time, e.g. 'delete 10; swap 11,12' (see `xelm surgery --help`)");
    return {cmd, [opts](const Environment& env) {
            if (opts->bandwidth_gbps <= 0.0) {
              opts->bandwidth_gbps = bench::measure_read_bandwidth(cpu::cpu_features().physical_cores);
              spdlog::info("measured read bandwidth: {:.1f} GB/s ({} threads, 1 GiB)", opts->bandwidth_gbps,
                           cpu::cpu_features().physical_cores);
            }
            const auto results = bench::run_benchmarks(*opts, env);
            std::fputs(bench::format_results(results, opts->output, opts->bandwidth_gbps).c_str(), stdout);
            return 0;
          }};
}

}  // namespace xelm::cli
