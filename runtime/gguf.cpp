// gguf.cpp — GGUF v2/v3 reader (validating, mmap-backed, zero-copy tensor data) and v3 writer.
//
// The reader trusts nothing in the file: every count, length, offset and size is checked against
// the bytes that remain (before anything is allocated) using the checked arithmetic helpers below,
// and every problem becomes one xelm::Error "<path>: <problem>". See gguf.h for the file layout.
#include "runtime/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "runtime/error.h"

namespace xelm::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kWrittenVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;       // real files nest at most 2 levels; deeper is rejected
// Each parsed array element costs a Value (~50 bytes) however small its encoding (1 byte for u8),
// so the total is capped; a Qwen tokenizer has about 0.5M elements.
constexpr uint64_t kMaxMetadataArrayElements = uint64_t{1} << 24;
constexpr size_t kMaxDisplayedStringBytes = 64;
constexpr std::string_view kAlignmentKey = "general.alignment";

// Smallest possible encodings, used to reject counts the remaining bytes cannot hold.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, 1 dim, type, offset

// ---- Checked arithmetic: nullopt on overflow instead of wrapping.

template <class T>
std::optional<T> checked_add(T a, T b) {
  T result;
  if (__builtin_add_overflow(a, b, &result)) return std::nullopt;
  return result;
}

template <class T>
std::optional<T> checked_mul(T a, T b) {
  T result;
  if (__builtin_mul_overflow(a, b, &result)) return std::nullopt;
  return result;
}

// Rounds value up to a multiple of alignment (a power of two).
std::optional<uint64_t> checked_align_up(uint64_t value, uint64_t alignment) {
  std::optional<uint64_t> bumped = checked_add(value, alignment - 1);
  if (!bumped) return std::nullopt;
  return *bumped & ~(alignment - 1);
}

std::string str(uint64_t v) { return std::to_string(v); }

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

bool is_known_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::F64); }

// Encoded size of a scalar value type; 0 for STRING and ARRAY.
uint64_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return 0;
}

// Smallest encoding of one array element of type t (a string is at least its u64 length, an
// array at least its u32 element type and u64 count).
uint64_t min_element_size(ValueType t) {
  if (t == ValueType::STRING) return 8;
  if (t == ValueType::ARRAY) return 4 + 8;
  return scalar_size(t);
}

bool is_unsigned_type(ValueType t) {
  return t == ValueType::U8 || t == ValueType::U16 || t == ValueType::U32 || t == ValueType::U64;
}
bool is_signed_type(ValueType t) {
  return t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64;
}

// Number of bytes of a tensor of `shape`, validating the shape: 1..4 positive dimensions whose
// element count fits int64 and whose first dimension is a whole number of blocks. Throws
// Error("<where>: tensor '<name>' ...").
uint64_t tensor_byte_size(const std::string& where, const std::string& name, const TypeTraits& traits,
                          const std::vector<int64_t>& shape) {
  const std::string subject = where + ": tensor '" + name + "'";
  if (shape.empty() || shape.size() > kMaxDims) {
    throw Error(subject + " has " + str(shape.size()) + " dimensions (must be 1 to 4)");
  }
  int64_t n_elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0) {
      throw Error(subject + " dimension " + str(d) + " is " + std::to_string(shape[d]) +
                  " (must be positive)");
    }
    std::optional<int64_t> product = checked_mul(n_elements, shape[d]);
    if (!product) throw Error(subject + " element count of shape " + shape_to_string(shape) + " overflows");
    n_elements = *product;
  }
  if (shape[0] % traits.block_size != 0) {
    throw Error(subject + " first dimension " + std::to_string(shape[0]) + " is not a multiple of the " +
                std::string(traits.name) + " block size " + std::to_string(traits.block_size));
  }
  const uint64_t blocks = static_cast<uint64_t>(n_elements / traits.block_size);
  std::optional<uint64_t> n_bytes = checked_mul(blocks, static_cast<uint64_t>(traits.block_bytes));
  if (!n_bytes) throw Error(subject + " byte size overflows");
  return *n_bytes;
}

// Appends `s` quoted, with control characters, quotes and backslashes escaped, cut after
// kMaxDisplayedStringBytes bytes (at a UTF-8 character boundary) with "…".
void append_quoted(std::string& out, const std::string& s) {
  size_t cut = s.size();
  if (cut > kMaxDisplayedStringBytes) {
    cut = kMaxDisplayedStringBytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  }
  out += '"';
  for (size_t i = 0; i < cut; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (cut < s.size()) out += "…";
}

template <class F>
std::string shortest_float(F v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Value

Value Value::from_uint(ValueType t, uint64_t v) {
  if (!is_unsigned_type(t)) {
    throw Error("gguf: from_uint needs an unsigned integer type, got " + std::string(value_type_name(t)));
  }
  const uint64_t bits = scalar_size(t) * 8;
  if (bits < 64 && v >> bits != 0) {
    throw Error("gguf: value " + str(v) + " does not fit in " + std::string(value_type_name(t)));
  }
  Value value;
  value.type_ = t;
  value.data_ = v;
  return value;
}

Value Value::from_int(ValueType t, int64_t v) {
  if (!is_signed_type(t)) {
    throw Error("gguf: from_int needs a signed integer type, got " + std::string(value_type_name(t)));
  }
  const uint64_t bits = scalar_size(t) * 8;
  if (bits < 64) {
    const int64_t limit = int64_t{1} << (bits - 1);
    if (v < -limit || v >= limit) {
      throw Error("gguf: value " + std::to_string(v) + " does not fit in " + std::string(value_type_name(t)));
    }
  }
  Value value;
  value.type_ = t;
  value.data_ = v;
  return value;
}

Value Value::from_float(ValueType t, double v) {
  if (t != ValueType::F32 && t != ValueType::F64) {
    throw Error("gguf: from_float needs f32 or f64, got " + std::string(value_type_name(t)));
  }
  Value value;
  value.type_ = t;
  value.data_ = t == ValueType::F32 ? static_cast<double>(static_cast<float>(v)) : v;
  return value;
}

Value Value::from_bool(bool v) {
  Value value;
  value.type_ = ValueType::BOOL;
  value.data_ = v;
  return value;
}

Value Value::from_string(std::string v) {
  Value value;
  value.type_ = ValueType::STRING;
  value.data_ = std::move(v);
  return value;
}

Value Value::from_array(ValueType element_type, Array items) {
  for (const Value& item : items) {
    if (item.type() != element_type) {
      throw Error("gguf: array of " + std::string(value_type_name(element_type)) + " holds a " +
                  std::string(value_type_name(item.type())) + " element");
    }
  }
  Value value;
  value.type_ = ValueType::ARRAY;
  value.element_type_ = element_type;
  value.data_ = std::make_shared<const Array>(std::move(items));
  return value;
}

Value Value::from_strings(const std::vector<std::string>& items) {
  Array values;
  values.reserve(items.size());
  for (const std::string& s : items) values.push_back(from_string(s));
  return from_array(ValueType::STRING, std::move(values));
}

std::optional<int64_t> Value::as_int() const {
  if (const uint64_t* u = std::get_if<uint64_t>(&data_)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const int64_t* i = std::get_if<int64_t>(&data_)) return *i;
  return std::nullopt;
}

std::optional<uint64_t> Value::as_uint() const {
  if (const uint64_t* u = std::get_if<uint64_t>(&data_)) return *u;
  if (const int64_t* i = std::get_if<int64_t>(&data_)) {
    if (*i < 0) return std::nullopt;
    return static_cast<uint64_t>(*i);
  }
  return std::nullopt;
}

std::optional<double> Value::as_float() const {
  if (const double* d = std::get_if<double>(&data_)) return *d;
  if (const uint64_t* u = std::get_if<uint64_t>(&data_)) return static_cast<double>(*u);
  if (const int64_t* i = std::get_if<int64_t>(&data_)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
  if (const bool* b = std::get_if<bool>(&data_)) return *b;
  return std::nullopt;
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&data_); }

const Value::Array* Value::as_array() const {
  if (const auto* array = std::get_if<std::shared_ptr<const Array>>(&data_)) return array->get();
  return nullptr;
}

std::string Value::to_display_string(size_t max_items) const {
  std::string out;
  switch (type_) {
    case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64:
      return str(std::get<uint64_t>(data_));
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
      return std::to_string(std::get<int64_t>(data_));
    case ValueType::F32:
      return shortest_float(static_cast<float>(std::get<double>(data_)));
    case ValueType::F64:
      return shortest_float(std::get<double>(data_));
    case ValueType::BOOL:
      return std::get<bool>(data_) ? "true" : "false";
    case ValueType::STRING:
      append_quoted(out, std::get<std::string>(data_));
      return out;
    case ValueType::ARRAY: {
      const Array& items = *as_array();
      out = "[" + std::string(value_type_name(element_type_)) + " × " + str(items.size()) + "]";
      const size_t shown = std::min(items.size(), max_items);
      for (size_t i = 0; i < shown; ++i) {
        out += i == 0 ? " " : ", ";
        if (items[i].type() == ValueType::ARRAY) {
          out += "(" + items[i].to_display_string(max_items) + ")";
        } else {
          out += items[i].to_display_string(max_items);
        }
      }
      if (shown < items.size()) out += shown == 0 ? " …" : ", …";
      return out;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// TensorInfo

int64_t TensorInfo::n_elements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

std::string TensorInfo::shape_string() const { return shape_to_string(shape); }

// ---------------------------------------------------------------------------------------------
// Parser: walks the bytes once, filling a GgufFile. `context_` names what is being read (the
// header, a key, a tensor) so every error says where the problem is.

class Parser {
 public:
  Parser(GgufFile& file, std::span<const uint8_t> bytes) : file_(file), bytes_(bytes) {}

  void run() {
    read_header();
    read_metadata();
    read_alignment();
    read_tensor_infos();
    place_tensor_data();
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const { throw Error(file_.path_ + ": " + problem); }

  uint64_t remaining() const { return bytes_.size() - pos_; }

  void require(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail(context_ + ": truncated " + std::string(what) + " at offset " + str(pos_) + " (needs " + str(n) +
           " bytes, " + str(remaining()) + " left)");
    }
  }

  template <class T>
  T read(std::string_view what) {
    require(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what) {
    const uint64_t length_offset = pos_;
    const uint64_t length = read<uint64_t>(std::string(what) + " length");
    if (length > remaining()) {
      fail(context_ + ": truncated " + std::string(what) + ": length " + str(length) + " at offset " +
           str(length_offset) + " exceeds the " + str(remaining()) + " bytes left");
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  ValueType read_value_type(std::string_view what) {
    const uint32_t raw = read<uint32_t>(what);
    if (!is_known_value_type(raw)) fail(context_ + " has unknown " + std::string(what) + " " + str(raw));
    return static_cast<ValueType>(raw);
  }

  void read_header() {
    context_ = "header";
    const uint32_t magic = read<uint32_t>("magic");
    if (magic != kMagic) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", magic);
      fail(std::string("bad magic ") + hex + " (expected \"GGUF\"): not a GGUF file");
    }
    const uint32_t version = read<uint32_t>("version");
    const uint32_t swapped = __builtin_bswap32(version);
    if ((version & 0xFFFF) == 0 && swapped >= 1 && swapped <= 3) {
      fail("big-endian GGUF (version field " + str(swapped) + " byte-swapped) is not supported");
    }
    if (version != 2 && version != 3) {
      fail("unsupported version " + str(version) + " (xelm reads GGUF versions 2 and 3)");
    }
    file_.version_ = version;
    n_tensors_ = read<uint64_t>("tensor count");
    n_kv_ = read<uint64_t>("metadata count");
    if (n_kv_ > remaining() / kMinKvBytes) {
      fail("header: metadata count " + str(n_kv_) + " exceeds what the " + str(remaining()) +
           " bytes left can hold");
    }
    if (n_tensors_ > remaining() / kMinTensorInfoBytes) {
      fail("header: tensor count " + str(n_tensors_) + " exceeds what the " + str(remaining()) +
           " bytes left can hold");
    }
  }

  void read_metadata() {
    std::unordered_set<std::string> keys;
    file_.metadata_.reserve(n_kv_);
    for (uint64_t i = 0; i < n_kv_; ++i) {
      context_ = "key #" + str(i);
      std::string key = read_string("key name");
      context_ = "key '" + key + "'";
      if (!keys.insert(key).second) fail("duplicate metadata key '" + key + "'");
      const ValueType type = read_value_type("value type");
      Value value = read_value(type, 0);
      file_.metadata_.emplace_back(std::move(key), std::move(value));
    }
  }

  Value read_value(ValueType type, int depth) {
    switch (type) {
      case ValueType::U8: return Value::from_uint(type, read<uint8_t>("u8 value"));
      case ValueType::I8: return Value::from_int(type, read<int8_t>("i8 value"));
      case ValueType::U16: return Value::from_uint(type, read<uint16_t>("u16 value"));
      case ValueType::I16: return Value::from_int(type, read<int16_t>("i16 value"));
      case ValueType::U32: return Value::from_uint(type, read<uint32_t>("u32 value"));
      case ValueType::I32: return Value::from_int(type, read<int32_t>("i32 value"));
      case ValueType::U64: return Value::from_uint(type, read<uint64_t>("u64 value"));
      case ValueType::I64: return Value::from_int(type, read<int64_t>("i64 value"));
      case ValueType::F32: return Value::from_float(type, read<float>("f32 value"));
      case ValueType::F64: return Value::from_float(type, read<double>("f64 value"));
      case ValueType::BOOL: return Value::from_bool(read<uint8_t>("bool value") != 0);
      case ValueType::STRING: return Value::from_string(read_string("string"));
      case ValueType::ARRAY: return read_array(depth + 1);
    }
    fail(context_ + " has unknown value type " + str(static_cast<uint32_t>(type)));
  }

  Value read_array(int depth) {
    if (depth > kMaxArrayDepth) {
      fail(context_ + ": arrays nested deeper than " + str(kMaxArrayDepth) + " levels at offset " + str(pos_));
    }
    const ValueType element_type = read_value_type("array element type");
    const uint64_t count_offset = pos_;
    const uint64_t count = read<uint64_t>("array length");
    if (count > remaining() / min_element_size(element_type)) {
      fail(context_ + ": array length " + str(count) + " (" + std::string(value_type_name(element_type)) +
           " elements) at offset " + str(count_offset) + " exceeds the " + str(remaining()) + " bytes left");
    }
    if (count > kMaxMetadataArrayElements - array_elements_) {
      fail(context_ + ": array length " + str(count) + " at offset " + str(count_offset) +
           " takes the metadata past the limit of " + str(kMaxMetadataArrayElements) + " array elements in total");
    }
    array_elements_ += count;
    Value::Array items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(element_type, depth));
    return Value::from_array(element_type, std::move(items));
  }

  void read_alignment() {
    context_ = "key '" + std::string(kAlignmentKey) + "'";
    const Value* value = file_.find(kAlignmentKey);
    if (value == nullptr) return;
    if (value->type() != ValueType::U32) {
      fail(std::string(kAlignmentKey) + " is " + std::string(value_type_name(value->type())) + ", expected u32");
    }
    const uint64_t alignment = *value->as_uint();
    if (!std::has_single_bit(alignment)) {
      fail(std::string(kAlignmentKey) + " " + str(alignment) + " is not a non-zero power of two");
    }
    file_.alignment_ = alignment;
  }

  void read_tensor_infos() {
    std::unordered_set<std::string> names;
    file_.tensors_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      context_ = "tensor info #" + str(i);
      TensorInfo info;
      info.name = read_string("tensor name");
      context_ = "tensor '" + info.name + "'";
      if (!names.insert(info.name).second) fail("duplicate tensor name '" + info.name + "'");
      const uint32_t n_dims = read<uint32_t>("dimension count");
      if (n_dims == 0 || n_dims > kMaxDims) fail(context_ + " has " + str(n_dims) + " dimensions (must be 1 to 4)");
      for (uint32_t d = 0; d < n_dims; ++d) info.shape.push_back(static_cast<int64_t>(read<uint64_t>("dimension")));
      const uint32_t type_id = read<uint32_t>("type id");
      info.offset = read<uint64_t>("data offset");
      info.file = &file_;
      const std::optional<TypeTraits> traits = type_traits(type_id);
      if (!traits) fail(context_ + " has unknown type id " + str(type_id));
      info.type = traits->type;
      info.n_bytes = tensor_byte_size(file_.path_, info.name, *traits, info.shape);
      if (info.offset % file_.alignment_ != 0) {
        fail(context_ + " data offset " + str(info.offset) + " is not a multiple of the alignment " +
             str(file_.alignment_));
      }
      file_.tensors_.push_back(std::move(info));
    }
  }

  void place_tensor_data() {
    context_ = "data section";
    const std::optional<uint64_t> data_offset = checked_align_up(pos_, file_.alignment_);
    if (!data_offset || *data_offset > bytes_.size()) {
      fail("truncated: data section (tensor infos end at " + str(pos_) + ", aligned to " +
           str(file_.alignment_) + ") starts past end of file (" + str(bytes_.size()) + " bytes)");
    }
    file_.data_offset_ = *data_offset;

    for (TensorInfo& info : file_.tensors_) {
      const std::optional<uint64_t> begin = checked_add(*data_offset, info.offset);
      const std::optional<uint64_t> end = begin ? checked_add(*begin, info.n_bytes) : std::nullopt;
      if (!end) fail("tensor '" + info.name + "' data offset " + str(info.offset) + " overflows");
      if (*end > bytes_.size()) {
        fail("tensor '" + info.name + "' data [" + str(*begin) + ", " + str(*end) +
             ") extends past end of file (" + str(bytes_.size()) + " bytes)");
      }
      info.data = bytes_.data() + *begin;
    }

    std::vector<const TensorInfo*> by_offset;
    by_offset.reserve(file_.tensors_.size());
    for (const TensorInfo& info : file_.tensors_) by_offset.push_back(&info);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const TensorInfo& prev = *by_offset[i - 1];
      const TensorInfo& cur = *by_offset[i];
      if (prev.offset + prev.n_bytes > cur.offset) {  // both ends were checked to lie in the file
        fail("tensor '" + cur.name + "' data [" + str(cur.offset) + ", " + str(cur.offset + cur.n_bytes) +
             ") overlaps tensor '" + prev.name + "' data [" + str(prev.offset) + ", " +
             str(prev.offset + prev.n_bytes) + ") (offsets relative to the data section)");
      }
    }
  }

  GgufFile& file_;
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t array_elements_ = 0;  // over all metadata arrays so far, capped at kMaxMetadataArrayElements
  std::string context_;
};

// ---------------------------------------------------------------------------------------------
// GgufFile

std::unique_ptr<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->bytes_ = bytes;
  Parser(*file, bytes).run();
  return file;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (mapping == MAP_FAILED) throw Error(path + ": cannot mmap " + str(size) + " bytes: " + std::strerror(err));
    file->mapping_ = mapping;
    file->mapping_size_ = size;
    file->bytes_ = std::span<const uint8_t>(static_cast<const uint8_t*>(mapping), size);
  } else {
    ::close(fd);
  }
  Parser(*file, file->bytes_).run();
  return file;
}

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

void GgufFile::release_pages(const uint8_t* begin, size_t n) const {
  if (mapping_ == nullptr || n == 0) return;
  const auto* base = static_cast<const uint8_t*>(mapping_);
  if (begin < base || begin + n > base + mapping_size_) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  const uintptr_t last = (reinterpret_cast<uintptr_t>(begin) + n) & ~(page - 1);
  // A private read-only file mapping: dropped pages are read again from the file, never zeroed.
  if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

const Value* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

[[noreturn]] void throw_type_mismatch(const std::string& path, std::string_view key, const Value& v,
                                      std::string_view expected) {
  throw Error(path + ": metadata key '" + std::string(key) + "' is " + std::string(value_type_name(v.type())) +
              ", expected " + std::string(expected));
}

template <class T, class Get>
std::optional<T> find_typed(const GgufFile& file, std::string_view key, std::string_view expected, Get get) {
  const Value* value = file.find(key);
  if (value == nullptr) return std::nullopt;
  std::optional<T> result = get(*value);
  if (!result) throw_type_mismatch(file.path(), key, *value, expected);
  return result;
}

template <class T>
T require_present(const GgufFile& file, std::string_view key, std::optional<T> value) {
  if (!value) throw Error(file.path() + ": missing metadata key '" + std::string(key) + "'");
  return *std::move(value);
}

}  // namespace

std::optional<std::string> GgufFile::find_string(std::string_view key) const {
  return find_typed<std::string>(*this, key, "string", [](const Value& v) -> std::optional<std::string> {
    if (const std::string* s = v.as_string()) return *s;
    return std::nullopt;
  });
}
std::optional<int64_t> GgufFile::find_int(std::string_view key) const {
  return find_typed<int64_t>(*this, key, "an integer", [](const Value& v) { return v.as_int(); });
}
std::optional<double> GgufFile::find_float(std::string_view key) const {
  return find_typed<double>(*this, key, "a number", [](const Value& v) { return v.as_float(); });
}
std::optional<bool> GgufFile::find_bool(std::string_view key) const {
  return find_typed<bool>(*this, key, "bool", [](const Value& v) { return v.as_bool(); });
}
std::string GgufFile::get_string(std::string_view key) const { return require_present(*this, key, find_string(key)); }
int64_t GgufFile::get_int(std::string_view key) const { return require_present(*this, key, find_int(key)); }
double GgufFile::get_float(std::string_view key) const { return require_present(*this, key, find_float(key)); }
bool GgufFile::get_bool(std::string_view key) const { return require_present(*this, key, find_bool(key)); }

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const TensorInfo& info : tensors_) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const TensorInfo& GgufFile::tensor(std::string_view name) const {
  const TensorInfo* info = find_tensor(name);
  if (info == nullptr) throw Error(path_ + ": missing tensor '" + std::string(name) + "'");
  return *info;
}

// ---------------------------------------------------------------------------------------------
// GgufWriter

namespace {

// Byte sinks the writer emits into: a growing buffer, or a file.
class MemorySink {
 public:
  explicit MemorySink(std::vector<uint8_t>& out) : out_(out) {}
  void write(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + n);
  }
  uint64_t position() const { return out_.size(); }

 private:
  std::vector<uint8_t>& out_;
};

class FileSink {
 public:
  FileSink(std::FILE* f, const std::string& path) : file_(f), path_(path) {}
  void write(const void* data, size_t n) {
    if (n > 0 && std::fwrite(data, 1, n, file_) != n) {
      throw Error(path_ + ": write failed: " + std::strerror(errno));
    }
    position_ += n;
  }
  uint64_t position() const { return position_; }

 private:
  std::FILE* file_;
  const std::string& path_;
  uint64_t position_ = 0;
};

template <class Sink, class T>
void put(Sink& out, T value) {
  out.write(&value, sizeof value);
}

template <class Sink>
void put_string(Sink& out, const std::string& s) {
  put<Sink, uint64_t>(out, s.size());
  out.write(s.data(), s.size());
}

template <class Sink>
void put_padding(Sink& out, uint64_t alignment) {
  static constexpr uint8_t kZeros[256] = {};
  uint64_t pad = (alignment - out.position() % alignment) % alignment;
  while (pad > 0) {
    const uint64_t n = std::min<uint64_t>(pad, sizeof kZeros);
    out.write(kZeros, n);
    pad -= n;
  }
}

template <class Sink>
void put_value(Sink& out, const Value& v) {
  switch (v.type()) {
    case ValueType::U8: put(out, static_cast<uint8_t>(*v.as_uint())); break;
    case ValueType::I8: put(out, static_cast<int8_t>(*v.as_int())); break;
    case ValueType::U16: put(out, static_cast<uint16_t>(*v.as_uint())); break;
    case ValueType::I16: put(out, static_cast<int16_t>(*v.as_int())); break;
    case ValueType::U32: put(out, static_cast<uint32_t>(*v.as_uint())); break;
    case ValueType::I32: put(out, static_cast<int32_t>(*v.as_int())); break;
    case ValueType::U64: put(out, *v.as_uint()); break;
    case ValueType::I64: put(out, *v.as_int()); break;
    case ValueType::F32: put(out, static_cast<float>(*v.as_float())); break;
    case ValueType::F64: put(out, *v.as_float()); break;
    case ValueType::BOOL: put(out, static_cast<uint8_t>(*v.as_bool() ? 1 : 0)); break;
    case ValueType::STRING: put_string(out, *v.as_string()); break;
    case ValueType::ARRAY: {
      const Value::Array& items = *v.as_array();
      put(out, static_cast<uint32_t>(v.element_type()));
      put<Sink, uint64_t>(out, items.size());
      for (const Value& item : items) put_value(out, item);
      break;
    }
  }
}

}  // namespace

void GgufWriter::set(std::string key, Value value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_u32(std::string key, uint32_t v) { set(std::move(key), Value::from_uint(ValueType::U32, v)); }
void GgufWriter::set_i32(std::string key, int32_t v) { set(std::move(key), Value::from_int(ValueType::I32, v)); }
void GgufWriter::set_u64(std::string key, uint64_t v) { set(std::move(key), Value::from_uint(ValueType::U64, v)); }
void GgufWriter::set_f32(std::string key, float v) { set(std::move(key), Value::from_float(ValueType::F32, v)); }
void GgufWriter::set_bool(std::string key, bool v) { set(std::move(key), Value::from_bool(v)); }
void GgufWriter::set_string(std::string key, std::string v) { set(std::move(key), Value::from_string(std::move(v))); }
void GgufWriter::set_strings(std::string key, const std::vector<std::string>& v) {
  set(std::move(key), Value::from_strings(v));
}

void GgufWriter::copy_metadata_from(const GgufFile& file) {
  for (const auto& [key, value] : file.metadata()) set(key, value);
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, const void* data) {
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) throw Error("gguf writer: duplicate tensor name '" + name + "'");
  }
  const uint64_t n_bytes = tensor_byte_size("gguf writer", name, type_traits(type), shape);
  tensors_.push_back(PendingTensor{std::move(name), type, std::move(shape), data, n_bytes});
}

namespace {

uint64_t writer_alignment(const std::vector<std::pair<std::string, Value>>& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != kAlignmentKey) continue;
    const std::optional<uint64_t> alignment = value.as_uint();
    if (value.type() != ValueType::U32 || !std::has_single_bit(alignment.value_or(0))) {
      throw Error("gguf writer: " + std::string(kAlignmentKey) + " must be a non-zero power of two u32, got " +
                  std::string(value_type_name(value.type())) + " " + value.to_display_string());
    }
    return *alignment;
  }
  return kDefaultAlignment;
}

}  // namespace

// Emits the whole file: header, metadata, tensor infos (offsets assigned in order, each aligned),
// zero padding to the data section, then each tensor's bytes followed by zero padding.
template <class Sink>
void GgufWriter::emit(Sink& out) const {
  const uint64_t alignment = writer_alignment(metadata_);
  put(out, kMagic);
  put(out, kWrittenVersion);
  put<Sink, uint64_t>(out, tensors_.size());
  put<Sink, uint64_t>(out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(out, key);
    put(out, static_cast<uint32_t>(value.type()));
    put_value(out, value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    put_string(out, t.name);
    put(out, static_cast<uint32_t>(t.shape.size()));
    for (int64_t dim : t.shape) put(out, static_cast<uint64_t>(dim));
    put(out, static_cast<uint32_t>(t.type));
    put(out, offset);
    const std::optional<uint64_t> end = checked_add(offset, t.n_bytes);
    const std::optional<uint64_t> next = end ? checked_align_up(*end, alignment) : std::nullopt;
    if (!next) throw Error("gguf writer: tensor data offsets overflow at tensor '" + t.name + "'");
    offset = *next;
  }
  put_padding(out, alignment);
  for (const PendingTensor& t : tensors_) {
    out.write(t.data, t.n_bytes);
    put_padding(out, alignment);
  }
}

std::vector<uint8_t> GgufWriter::write_to_memory() const {
  std::vector<uint8_t> bytes;
  MemorySink sink(bytes);
  emit(sink);
  return bytes;
}

void GgufWriter::write(const std::string& path) const {
  const std::string tmp_path = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp_path.c_str(), "wb");
  if (f == nullptr) throw Error(tmp_path + ": cannot create: " + std::strerror(errno));
  try {
    FileSink sink(f, tmp_path);
    emit(sink);
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
      throw Error(tmp_path + ": write failed: " + std::strerror(errno));
    }
    const int close_result = std::fclose(f);
    f = nullptr;
    if (close_result != 0) throw Error(tmp_path + ": write failed: " + std::strerror(errno));
    if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
      throw Error(path + ": cannot rename " + tmp_path + " into place: " + std::strerror(errno));
    }
  } catch (...) {
    if (f != nullptr) std::fclose(f);
    std::remove(tmp_path.c_str());
    throw;
  }
}

}  // namespace xelm::gguf
