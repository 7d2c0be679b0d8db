// cpu_backend.cpp — run-time choice of the CPU backend. Compiled without AVX flags: it only calls
// into cpu_fallback/avx2/ after cpu_features() has confirmed the instructions exist.
#include "cpu_fallback/cpu_backend.h"

#include <spdlog/spdlog.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "cpu_fallback/ref/ref_backend.h"

namespace xelm::cpu {

std::unique_ptr<Backend> make_cpu_backend(int n_threads, std::string_view isa) {
  const CpuFeatures& f = cpu_features();
  if (const std::optional<CpuIsa> chosen = choose_isa(f, isa)) {
    std::unique_ptr<Backend> backend = make_avx2_backend(n_threads, *chosen);
    spdlog::info("CPU backend: {} on {}", backend->name(), f.summary());
    return backend;
  }
  spdlog::info("CPU backend: cpu-ref (scalar; this CPU lacks AVX2/FMA/F16C: {})", f.summary());
  return make_reference_backend();
}

}  // namespace xelm::cpu
