// program_cache.cpp — program builds and the on-disk binary cache.
//
// Cache file layout: magic "XELMCLB1", uint64 payload size, uint64 FNV-1a hash of the payload, then
// the payload (the driver's program binary). The check catches truncation and bit rot before the
// driver sees the bytes; a binary the driver still refuses is rebuilt from source too.
#include "host/program_cache.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "host/embedded_kernels.h"
#include "runtime/error.h"

namespace xelm::opencl {
namespace {

constexpr char kMagic[8] = {'X', 'E', 'L', 'M', 'C', 'L', 'B', '1'};
constexpr size_t kHeaderBytes = sizeof(kMagic) + 2 * sizeof(uint64_t);

uint64_t fnv1a(const void* data, size_t n, uint64_t hash = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  return hash;
}

uint64_t fnv1a(const std::string& s, uint64_t hash) { return fnv1a(s.data(), s.size() + 1, hash); }

std::string_view embedded_source(const std::string& file_name) {
  for (const EmbeddedKernelSource& k : embedded_kernel_sources()) {
    if (k.file_name == file_name) return k.source;
  }
  throw Error(fmt::format("internal: no embedded kernel source '{}'", file_name));
}

}  // namespace

std::string program_source(const std::string& file_name) {
  std::string source(embedded_source("common.cl"));
  source += "\n";
  source += embedded_source(file_name);
  return source;
}

ProgramCache::ProgramCache(cl::Context context, cl::Device device, DeviceInfo info, std::string cache_dir)
    : context_(std::move(context)), device_(std::move(device)), info_(std::move(info)), cache_dir_(std::move(cache_dir)) {}

std::string ProgramCache::cache_path(const std::string& file_name, const std::string& options) const {
  if (cache_dir_.empty()) return "";
  uint64_t h = fnv1a(program_source(file_name), 0xcbf29ce484222325ull);
  for (const std::string* s : {&options, &info_.name, &info_.driver_version, &info_.platform_version}) h = fnv1a(*s, h);
  std::string stem = file_name.substr(0, file_name.find('.'));
  return fmt::format("{}/{}-{:016x}.bin", cache_dir_, stem, h);
}

cl::Program ProgramCache::build(const std::string& file_name, const std::string& options) {
  const std::string path = cache_path(file_name, options);
  cl::Program program;
  if (!path.empty() && try_load(path, options, program)) {
    ++stats_.hits;
    return program;
  }
  program = build_from_source(file_name, program_source(file_name), options);
  ++stats_.builds;
  if (!path.empty()) store(path, program);
  return program;
}

cl::Program ProgramCache::build_from_source(const std::string& file_name, const std::string& source,
                                            const std::string& options) {
  cl::Program program(context_, source);
  try {
    program.build({device_}, options.c_str());
  } catch (const cl::Error&) {
    std::string log;
    try {
      log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(device_);
    } catch (const cl::Error&) {
      log = "(no build log)";
    }
    // One line: the log's newlines become " | ".
    for (size_t at = log.find('\n'); at != std::string::npos; at = log.find('\n', at)) log.replace(at, 1, " | ");
    throw Error(fmt::format("OpenCL build of kernels/{} failed on {} with options '{}': {}", file_name, info_.name,
                            options, log));
  }
  return program;
}

bool ProgramCache::try_load(const std::string& path, const std::string& options, cl::Program& program) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  const std::vector<unsigned char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  uint64_t size = 0, hash = 0;
  if (bytes.size() >= kHeaderBytes) {
    std::memcpy(&size, bytes.data() + sizeof(kMagic), sizeof(size));
    std::memcpy(&hash, bytes.data() + sizeof(kMagic) + sizeof(size), sizeof(hash));
  }
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0 ||
      size != bytes.size() - kHeaderBytes || hash != fnv1a(bytes.data() + kHeaderBytes, size)) {
    spdlog::debug("kernel cache {}: corrupt, rebuilding", path);
    ++stats_.rejected;
    return false;
  }
  try {
    const cl::Program::Binaries binaries{std::vector<unsigned char>(bytes.begin() + kHeaderBytes, bytes.end())};
    program = cl::Program(context_, {device_}, binaries);
    program.build({device_}, options.c_str());
    return true;
  } catch (const cl::Error& e) {
    spdlog::debug("kernel cache {}: refused by the driver ({}), rebuilding", path, e.err());
    ++stats_.rejected;
    return false;
  }
}

void ProgramCache::store(const std::string& path, const cl::Program& program) const {
  try {
    const cl::Program::Binaries binaries = program.getInfo<CL_PROGRAM_BINARIES>();
    if (binaries.size() != 1 || binaries[0].empty()) return;  // the driver offers no binary
    const std::vector<unsigned char>& payload = binaries[0];
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      const uint64_t size = payload.size(), hash = fnv1a(payload.data(), payload.size());
      out.write(kMagic, sizeof(kMagic));
      out.write(reinterpret_cast<const char*>(&size), sizeof(size));
      out.write(reinterpret_cast<const char*>(&hash), sizeof(hash));
      out.write(reinterpret_cast<const char*>(payload.data()), static_cast<std::streamsize>(payload.size()));
      if (!out) throw std::runtime_error("write failed");
    }
    std::filesystem::rename(tmp, path);  // atomic: readers see the old file or the whole new one
  } catch (const std::exception& e) {
    spdlog::warn("kernel cache: could not write {}: {}", path, e.what());  // the cache is an optimisation only
  }
}

}  // namespace xelm::opencl
