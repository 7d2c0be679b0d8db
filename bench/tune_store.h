// tune_store.h — where `xelm tune` keeps its recommendations and how they are looked up again.
//
// One JSON file per (OpenCL device name, driver version, model file) in a store directory (the
// CLI's: Environment::tune_store_dir, $XDG_CONFIG_HOME/xelm/tune or ~/.config/xelm/tune). The model
// is identified by model_file_hash: SHA-256 over the file's first MiB, its last MiB and its size in
// decimal — cheap on multi-GiB files and enough to tell models apart (two files differing only in
// the middle would collide; GGUF headers and tensor tails make that unlikely in practice). The file
// name is the first 16 hex digits of SHA-256("device\ndriver\nmodel_hash"); the record repeats all
// three in clear and lookups compare them. Header-only so that load_engine and the tests can use it
// without the CLI.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "bench/sha256.h"
#include "runtime/error.h"

namespace xelm::bench {

inline std::string model_file_hash(const std::string& model_path);  // throws xelm::Error when unreadable

inline std::filesystem::path tune_store_path(const std::filesystem::path& store_dir, const std::string& model_hash,
                                             const std::string& device_name, const std::string& driver);

// Writes `record` (which must carry "recommended": {"n_gpu_layers": N, ...}) with the key fields
// "device", "driver" and "model_hash" added; returns the file written. Throws xelm::Error when
// store_dir is empty (no XDG_CONFIG_HOME nor HOME) or cannot be written.
inline std::filesystem::path save_tuning(const std::filesystem::path& store_dir, nlohmann::json record,
                                         const std::string& model_path, const std::string& device_name,
                                         const std::string& driver);

// The -ngl a previous `xelm tune` recommended for this model on this device and driver; nullopt when
// there is none (or the record is unreadable or for another key).
inline std::optional<int> tuned_gpu_layers(const std::filesystem::path& store_dir, const std::string& model_path,
                                           const std::string& device_name, const std::string& driver);

struct TunedConfig {
  std::string device, driver;
  int n_gpu_layers;
};

// Any recommendation saved for this model file (whatever the device); the caller checks that the
// device and driver are the ones it is about to use. nullopt when there is none.
inline std::optional<TunedConfig> find_tuning_for_model(const std::filesystem::path& store_dir,
                                                        const std::string& model_path);

// ---- definitions

namespace tune_store_detail {

inline constexpr uint64_t kHashedEdgeBytes = uint64_t{1} << 20;

inline void hash_range(std::ifstream& in, uint64_t offset, uint64_t length, Sha256& sha) {
  std::vector<uint8_t> bytes(static_cast<size_t>(length));
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  if (!in) throw Error(fmt::format("tune: cannot read {} bytes at {} of the model file", length, offset));
  sha.update(bytes);
}

}  // namespace tune_store_detail

inline std::string model_file_hash(const std::string& model_path) {
  std::error_code error;
  const uint64_t size = std::filesystem::file_size(model_path, error);
  if (error) throw Error(fmt::format("{}: {}", model_path, error.message()));
  std::ifstream in(model_path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", model_path));
  Sha256 sha;
  const uint64_t head = std::min(size, tune_store_detail::kHashedEdgeBytes);
  tune_store_detail::hash_range(in, 0, head, sha);
  const uint64_t tail = std::min(size, tune_store_detail::kHashedEdgeBytes);
  tune_store_detail::hash_range(in, size - tail, tail, sha);
  sha.update(std::to_string(size));
  return sha.finish_hex();
}

inline std::filesystem::path tune_store_path(const std::filesystem::path& store_dir, const std::string& model_hash,
                                             const std::string& device_name, const std::string& driver) {
  Sha256 sha;
  sha.update(device_name + "\n" + driver + "\n" + model_hash);
  return store_dir / (sha.finish_hex().substr(0, 16) + ".json");
}

inline std::filesystem::path save_tuning(const std::filesystem::path& store_dir, nlohmann::json record,
                                         const std::string& model_path, const std::string& device_name,
                                         const std::string& driver) {
  if (store_dir.empty()) throw Error("tune: neither XDG_CONFIG_HOME nor HOME is set");
  const std::string hash = model_file_hash(model_path);
  record["device"] = device_name;
  record["driver"] = driver;
  record["model_hash"] = hash;
  const std::filesystem::path path = tune_store_path(store_dir, hash, device_name, driver);
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) throw Error(fmt::format("{}: {}", path.parent_path().string(), error.message()));
  const std::filesystem::path partial = path.string() + ".tmp";
  {
    std::ofstream out(partial);
    out << record.dump(2) << "\n";
    if (!out) throw Error(fmt::format("{}: cannot write", partial.string()));
  }
  std::filesystem::rename(partial, path, error);
  if (error) throw Error(fmt::format("{}: {}", path.string(), error.message()));
  return path;
}

inline std::optional<int> tuned_gpu_layers(const std::filesystem::path& store_dir, const std::string& model_path,
                                           const std::string& device_name, const std::string& driver) {
  if (store_dir.empty()) return std::nullopt;
  try {
    const std::string hash = model_file_hash(model_path);
    std::ifstream in(tune_store_path(store_dir, hash, device_name, driver));
    if (!in) return std::nullopt;
    const nlohmann::json record = nlohmann::json::parse(in);
    if (record.value("device", "") != device_name || record.value("driver", "") != driver ||
        record.value("model_hash", "") != hash) {
      return std::nullopt;
    }
    return record.at("recommended").at("n_gpu_layers").get<int>();
  } catch (const Error&) {
    return std::nullopt;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

inline std::optional<TunedConfig> find_tuning_for_model(const std::filesystem::path& store_dir,
                                                        const std::string& model_path) {
  std::error_code error;
  if (store_dir.empty() || !std::filesystem::is_directory(store_dir, error)) return std::nullopt;
  try {
    const std::string hash = model_file_hash(model_path);
    for (const auto& entry : std::filesystem::directory_iterator(store_dir, error)) {
      if (entry.path().extension() != ".json") continue;
      std::ifstream in(entry.path());
      const nlohmann::json record = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!record.is_object() || record.value("model_hash", "") != hash) continue;
      const auto recommended = record.find("recommended");
      if (recommended == record.end() || !recommended->contains("n_gpu_layers")) continue;
      return TunedConfig{record.value("device", ""), record.value("driver", ""),
                         recommended->at("n_gpu_layers").get<int>()};
    }
  } catch (const Error&) {
  } catch (const nlohmann::json::exception&) {
  }
  return std::nullopt;
}

}  // namespace xelm::bench
