// gguf.h — reading and writing GGUF files (v2 and v3), the model format of llama.cpp.
//
// Reading validates everything before trusting it: every count, length, offset and size is checked
// against the file so a malformed or hostile file yields one xelm::Error line naming the file and
// the problem, never a crash or an allocation sized by a header field. Tensor data is mmapped and
// handed out as pointers into the mapping (never copied).
//
// File layout: magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | kv pairs | tensor infos |
// padding to general.alignment (default 32) | tensor data (each tensor at an aligned offset).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/ggml_types.h"

namespace xelm::gguf {

// Metadata value type ids as stored in the file.
enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType t);

// One metadata value. Arrays may nest (array of arrays); their elements share one type.
class Value {
 public:
  using Array = std::vector<Value>;

  Value() : type_(ValueType::U32), data_(uint64_t{0}) {}
  static Value from_uint(ValueType t, uint64_t v);   // t in {U8,U16,U32,U64}
  static Value from_int(ValueType t, int64_t v);     // t in {I8,I16,I32,I64}
  static Value from_float(ValueType t, double v);    // t in {F32,F64}
  static Value from_bool(bool v);
  static Value from_string(std::string v);
  static Value from_array(ValueType element_type, Array items);  // items must all be element_type
  static Value from_strings(const std::vector<std::string>& items);

  ValueType type() const { return type_; }
  ValueType element_type() const { return element_type_; }  // arrays only

  std::optional<int64_t> as_int() const;      // any integer type that fits in int64
  std::optional<uint64_t> as_uint() const;    // any integer type whose value is non-negative
  std::optional<double> as_float() const;     // F32/F64, or any integer type
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;       // nullptr unless STRING
  const Array* as_array() const;              // nullptr unless ARRAY

  std::string to_display_string(size_t max_items = 8) const;  // for `xelm info`

 private:
  ValueType type_;
  ValueType element_type_ = ValueType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<const Array>> data_;
};

class GgufFile;

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> shape;  // ggml order: shape[0] is the contiguous (fastest-varying) dimension
  uint64_t offset = 0;         // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the file mapping; valid while the GgufFile lives
  const GgufFile* file = nullptr;  // the file holding data (GgufFile::release_pages); nullptr for tensors made elsewhere

  int64_t n_elements() const;
  std::string shape_string() const;  // "[1024, 151936]"
};

class GgufFile {
 public:
  // mmap a file read-only and parse it. Throws xelm::Error("<path>: <problem>").
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parse bytes the caller keeps alive (fuzzing, tests). `name` stands for the path in errors.
  static std::unique_ptr<GgufFile> parse(std::span<const uint8_t> bytes, std::string name);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }   // absolute file offset of the data section
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const uint8_t> bytes() const { return bytes_; }
  // Tells the kernel that the mapped bytes [begin, begin + n) are not needed for now: the whole pages
  // inside the range leave the process's resident memory and are read again from the file if touched
  // (a weight that keeps a repacked copy of them). Does nothing for parsed bytes (parse()) or bytes
  // outside the mapping.
  void release_pages(const uint8_t* begin, size_t n) const;

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;

  // Typed getters. get_* throw xelm::Error("<path>: missing metadata key '<key>'") when absent and
  // ("<path>: metadata key '<key>' is <type>, expected <what>") on a type mismatch; find_* return
  // nullopt when absent and throw on a mismatch.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::optional<std::string> find_string(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  std::optional<double> find_float(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws "<path>: missing tensor '<name>'"

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::span<const uint8_t> bytes_;
  void* mapping_ = nullptr;  // munmap'd in the destructor when owned
  size_t mapping_size_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<TensorInfo> tensors_;

  friend class Parser;
};

// Builds a GGUF v3 file. Tensor data is referenced, not copied: pointers must stay valid until
// write() returns. Metadata keys keep their insertion order; setting a key again replaces it.
class GgufWriter {
 public:
  void set(std::string key, Value value);
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_strings(std::string key, const std::vector<std::string>& v);
  void copy_metadata_from(const GgufFile& file);  // all keys of another file (quantize keeps them)

  // shape in ggml order; n_bytes must equal row_bytes(type, shape[0]) * rows.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, const void* data);

  // Writes atomically (temp file + rename). Alignment from general.alignment if set, else 32.
  void write(const std::string& path) const;
  std::vector<uint8_t> write_to_memory() const;

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    const void* data;
    uint64_t n_bytes;
  };
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;

  template <class Sink>
  void emit(Sink& out) const;  // the whole file, into a memory or file sink
};

}  // namespace xelm::gguf
