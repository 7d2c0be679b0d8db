// environment.cpp — parsing of the variables listed in environment.h: one lookup, one integer
// parser with one error style, one rule for the XDG base directories.
#include "tools/xelm/environment.h"

#include <unistd.h>

#include <charconv>
#include <limits>
#include <optional>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm::cli {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr int64_t kMaxMiB = std::numeric_limits<int64_t>::max() >> 20;  // MiB counts whose bytes fit

// The value of `name`; nullopt when it is unset or empty.
std::optional<std::string> value_of(const EnvironmentVariables& variables, const std::string& name) {
  const auto it = variables.find(name);
  if (it == variables.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

// `name` as a whole number in [min, max]; nullopt when unset. `expects` completes the error
// "NAME='text' is not ...".
std::optional<int64_t> integer_of(const EnvironmentVariables& variables, const std::string& name, int64_t min,
                                  int64_t max, const char* expects) {
  const std::optional<std::string> text = value_of(variables, name);
  if (!text) return std::nullopt;
  int64_t value = 0;
  const char* end = text->data() + text->size();
  const auto [stop, error] = std::from_chars(text->data(), end, value);
  if (error != std::errc() || stop != end || value < min || value > max) {
    throw Error(fmt::format("{}='{}' is not {}", name, *text, expects));
  }
  return value;
}

// A positive number of MiB, in bytes; 0 when unset.
uint64_t mib_of(const EnvironmentVariables& variables, const std::string& name) {
  return static_cast<uint64_t>(integer_of(variables, name, 1, kMaxMiB, "a positive number of MiB").value_or(0)) * kMiB;
}

// xelm's directory under an XDG base directory: $xdg_variable/xelm, else $HOME/home_fallback/xelm,
// else empty.
std::filesystem::path xdg_directory(const EnvironmentVariables& variables, const std::string& xdg_variable,
                                    const char* home_fallback) {
  if (const std::optional<std::string> base = value_of(variables, xdg_variable)) {
    return std::filesystem::path(*base) / "xelm";
  }
  if (const std::optional<std::string> home = value_of(variables, "HOME")) {
    return std::filesystem::path(*home) / home_fallback / "xelm";
  }
  return {};
}

std::filesystem::path under(const std::filesystem::path& directory, const char* name) {
  return directory.empty() ? directory : directory / name;
}

}  // namespace

Environment parse_environment(const EnvironmentVariables& variables) {
  Environment env;
  opencl::OpenClOptions& cl = env.opencl;
  cl.device = value_of(variables, "XELM_OPENCL_DEVICE").value_or("");
  cl.max_alloc_bytes = mib_of(variables, "XELM_OPENCL_MAX_ALLOC_MB");
  cl.fast_paths = value_of(variables, "XELM_OPENCL_FAST_PATHS").value_or(cl.fast_paths);
  if (const auto tokens = integer_of(variables, "XELM_OPENCL_GEMM_MIN_TOKENS", 0, 1000000, "a token count (0 = off)")) {
    cl.gemm_min_tokens = static_cast<int>(*tokens);
  }
  cl.fused = integer_of(variables, "XELM_OPENCL_FUSED", 0, 1, "0 (the unfused ops) or 1").value_or(1) == 1;
  if (const auto cache = variables.find("XELM_KERNEL_CACHE_DIR"); cache != variables.end()) {
    cl.cache_dir = cache->second;  // "" turns the cache off
  } else {
    cl.cache_dir = under(xdg_directory(variables, "XDG_CACHE_HOME", ".cache"), "kernels").string();
  }
  env.device_memory_cap_bytes = mib_of(variables, "XELM_DEVICE_MEMORY_MB");
  env.tune_store_dir = under(xdg_directory(variables, "XDG_CONFIG_HOME", ".config"), "tune");
  env.chat_history_file = under(xdg_directory(variables, "XDG_STATE_HOME", ".local/state"), "chat_history");
  return env;
}

Environment read_environment() {
  EnvironmentVariables variables;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const size_t equals = text.find('=');
    if (equals != std::string::npos) variables.emplace(text.substr(0, equals), text.substr(equals + 1));
  }
  return parse_environment(variables);
}

}  // namespace xelm::cli
