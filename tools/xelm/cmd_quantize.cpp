// cmd_quantize.cpp — `xelm quantize IN.gguf OUT.gguf TYPE`: requantize a model with llama.cpp's mixes,
// printing one line per tensor with a progress counter.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "cpu_fallback/cpu_features.h"
#include "runtime/error.h"
#include "runtime/quantize.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

struct QuantizeOptions {
  std::string in_path, out_path, type;
  int threads = 0;
};

int quantize(const QuantizeOptions& o) {
  const auto mix = file_type_from_name(o.type);
  if (!mix) {
    throw Error(fmt::format("unknown quantization type '{}' (use F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, "
                            "Q4_K_S, Q3_K_M, Q3_K_S, Q3_K_L, Q2_K, Q5_1, Q5_0, Q4_1, Q4_0)", o.type));
  }
  if (o.in_path == o.out_path) throw Error("output path must differ from the input path");
  const int threads = o.threads > 0 ? o.threads : cpu::cpu_features().physical_cores;
  const auto start = std::chrono::steady_clock::now();
  uint64_t in_bytes = 0, out_bytes = 0;
  quantize_model(o.in_path, o.out_path, *mix, threads, [&](const QuantizeProgress& p) {
    in_bytes += p.tensor->n_bytes;
    out_bytes += p.new_bytes;
    std::fprintf(stderr, "[%4zu/%4zu] %-34s %-22s %5s -> %-5s %9.2f MiB -> %8.2f MiB\n", p.index + 1, p.count,
                 p.tensor->name.c_str(), p.tensor->shape_string().c_str(),
                 std::string(type_traits(p.tensor->type).name).c_str(), std::string(type_traits(p.new_type).name).c_str(),
                 static_cast<double>(p.tensor->n_bytes) / (1 << 20), static_cast<double>(p.new_bytes) / (1 << 20));
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("wrote {} ({}): {:.2f} MiB -> {:.2f} MiB in {:.1f} s with {} threads", o.out_path, mix->name,
               static_cast<double>(in_bytes) / (1 << 20), static_cast<double>(out_bytes) / (1 << 20), seconds, threads);
  return 0;
}

}  // namespace

Subcommand add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a model (llama.cpp mixes: Q4_K_M, Q8_0, ...)");
  cmd->add_option("input", o->in_path, "Input GGUF (F32/F16/BF16)")->required()->check(CLI::ExistingFile);
  cmd->add_option("output", o->out_path, "Output GGUF")->required();
  cmd->add_option("type", o->type, "Target mix: Q4_K_M, Q5_K_M, Q3_K_M, Q2_K, Q6_K, Q8_0, Q4_0, ...")->required();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: physical cores)")->check(CLI::Range(1, 256));
  return {cmd, [o](const Environment&) { return quantize(*o); }};
}

}  // namespace xelm::cli
