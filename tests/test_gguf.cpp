// test_gguf.cpp — GGUF reader/writer tests: writer→reader round trips, cross-checks against files
// written and read by gguf-py (tools/gen_gguf_fixtures.py), and one test per class of malformed
// file, each asserting the exact one-line xelm::Error the reader gives.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/gguf.h"

namespace xelm::gguf {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

const fs::path kFixtureDir = fs::path(XELM_TEST_DATA_DIR) / "gguf";
constexpr char kName[] = "bad.gguf";

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Parses `bytes` expecting failure; returns the xelm::Error message ("" and a test failure if it
// parsed). Any other exception type escapes and fails the test.
std::string parse_error(const Bytes& bytes) {
  try {
    GgufFile::parse(bytes, kName);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parse succeeded";
  return "";
}

// Expects parsing to fail with one line "bad.gguf: ..." containing `expected`.
void expect_parse_error(const Bytes& bytes, const std::string& expected) {
  const std::string message = parse_error(bytes);
  EXPECT_EQ(message.rfind(std::string(kName) + ": ", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find(expected), std::string::npos) << "message: " << message << "\nexpected: " << expected;
}

// Little-endian byte builder for hand-made (usually malformed) files.
class Builder {
 public:
  Builder& u8(uint8_t v) { return raw(&v, 1); }
  Builder& u32(uint32_t v) { return raw(&v, 4); }
  Builder& u64(uint64_t v) { return raw(&v, 8); }
  Builder& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Builder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  }
  Builder& tensor_info(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Builder& pad_to(size_t alignment) {
    while (bytes.size() % alignment != 0) u8(0);
    return *this;
  }
  Builder& zeros(size_t n) {
    bytes.insert(bytes.end(), n, 0);
    return *this;
  }
  Builder& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  Bytes bytes;
};

// One tensor header + its data, hand-built: 0 keys, infos, padding to 32, `data_bytes` zeros.
Bytes one_tensor_file(std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data_bytes) {
  Builder b;
  b.header(1, 0).tensor_info("w", std::move(dims), type, offset).pad_to(32).zeros(data_bytes);
  return b.bytes;
}

size_t find_bytes(const Bytes& haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end());
  EXPECT_NE(it, haystack.end()) << needle;
  return static_cast<size_t>(it - haystack.begin());
}

template <class T>
void poke(Bytes& bytes, size_t at, T value) {
  ASSERT_LE(at + sizeof value, bytes.size());
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

Bytes prefix(const Bytes& bytes, size_t n) { return Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)); }

// A small valid file: a few keys of different kinds and two tensors. The last tensor's data ends
// exactly at the end of the file (32 bytes = 8 f32), so every shorter prefix is invalid.
struct SmallFile {
  std::vector<float> weights = std::vector<float>(8, 1.5f);
  std::vector<uint8_t> embed = std::vector<uint8_t>(34, 7);  // one Q8_0 block
  Bytes bytes;
  SmallFile() {
    GgufWriter w;
    w.set_string("general.name", "small");
    w.set_u32("count", 7);
    w.set_strings("tokens", {"ab", "cde"});
    w.set("nested", Value::from_array(ValueType::ARRAY, {Value::from_array(ValueType::U8, {Value::from_uint(ValueType::U8, 1)})}));
    w.add_tensor("embed", GgmlType::Q8_0, {32}, embed.data());
    w.add_tensor("weights", GgmlType::F32, {8}, weights.data());
    bytes = w.write_to_memory();
  }
};

// ------------------------------------------------------------------------------------------------
// Round trips

TEST(GgufRoundTrip, EveryValueTypeSurvives) {
  GgufWriter w;
  w.set("u8", Value::from_uint(ValueType::U8, 255));
  w.set("i8", Value::from_int(ValueType::I8, -128));
  w.set("u16", Value::from_uint(ValueType::U16, 65535));
  w.set("i16", Value::from_int(ValueType::I16, -32768));
  w.set_u32("u32", 4294967295u);
  w.set_i32("i32", -2147483647 - 1);
  w.set_f32("f32", 0.1f);
  w.set_bool("bool", true);
  w.set_string("string", "héllo");
  w.set_string("empty_string", "");
  w.set_string("invalid_utf8", std::string("\xff\xfe\xc3", 3));
  w.set_u64("u64", std::numeric_limits<uint64_t>::max());
  w.set("i64", Value::from_int(ValueType::I64, std::numeric_limits<int64_t>::min()));
  w.set("f64", Value::from_float(ValueType::F64, 2.718281828459045));
  w.set("empty_array", Value::from_array(ValueType::I32, {}));
  w.set_strings("strings", {"a", "", "ccc"});
  Value inner_a = Value::from_array(ValueType::F32, {Value::from_float(ValueType::F32, 1.5)});
  Value inner_b = Value::from_array(ValueType::STRING, {});
  Value deep = Value::from_array(ValueType::ARRAY, {Value::from_array(ValueType::ARRAY, {inner_a})});
  w.set("nested", Value::from_array(ValueType::ARRAY, {inner_a, inner_b, deep}));
  const Bytes bytes = w.write_to_memory();

  auto f = GgufFile::parse(bytes, "rt.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->metadata().size(), 17u);
  EXPECT_EQ(f->metadata()[0].first, "u8");  // insertion order kept
  EXPECT_EQ(f->metadata()[16].first, "nested");
  EXPECT_EQ(f->find("u8")->type(), ValueType::U8);
  EXPECT_EQ(f->get_int("u8"), 255);
  EXPECT_EQ(f->find("i8")->type(), ValueType::I8);
  EXPECT_EQ(f->get_int("i8"), -128);
  EXPECT_EQ(f->get_int("u16"), 65535);
  EXPECT_EQ(f->find("i16")->type(), ValueType::I16);
  EXPECT_EQ(f->get_int("i16"), -32768);
  EXPECT_EQ(f->get_int("u32"), 4294967295);
  EXPECT_EQ(f->get_int("i32"), -2147483648);
  EXPECT_EQ(f->find("f32")->type(), ValueType::F32);
  EXPECT_EQ(f->get_float("f32"), static_cast<double>(0.1f));
  EXPECT_TRUE(f->get_bool("bool"));
  EXPECT_EQ(f->get_string("string"), "héllo");
  EXPECT_EQ(f->get_string("empty_string"), "");
  EXPECT_EQ(f->get_string("invalid_utf8"), std::string("\xff\xfe\xc3", 3));
  EXPECT_EQ(f->find("u64")->as_uint(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f->find("u64")->as_int(), std::nullopt);  // does not fit in int64
  EXPECT_EQ(f->get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->find("f64")->type(), ValueType::F64);
  EXPECT_EQ(f->get_float("f64"), 2.718281828459045);

  const Value& empty = *f->find("empty_array");
  EXPECT_EQ(empty.element_type(), ValueType::I32);
  EXPECT_TRUE(empty.as_array()->empty());
  const Value::Array& strings = *f->find("strings")->as_array();
  ASSERT_EQ(strings.size(), 3u);
  EXPECT_EQ(*strings[0].as_string(), "a");
  EXPECT_EQ(*strings[1].as_string(), "");
  EXPECT_EQ(*strings[2].as_string(), "ccc");

  const Value& nested = *f->find("nested");
  EXPECT_EQ(nested.element_type(), ValueType::ARRAY);
  const Value::Array& outer = *nested.as_array();
  ASSERT_EQ(outer.size(), 3u);
  EXPECT_EQ(outer[0].element_type(), ValueType::F32);
  EXPECT_EQ(outer[0].as_array()->at(0).as_float(), 1.5);
  EXPECT_EQ(outer[1].element_type(), ValueType::STRING);
  EXPECT_TRUE(outer[1].as_array()->empty());
  const Value& deep_read = outer[2].as_array()->at(0).as_array()->at(0);
  EXPECT_EQ(deep_read.element_type(), ValueType::F32);
  EXPECT_EQ(deep_read.as_array()->at(0).as_float(), 1.5);

  // Writing what was read gives the same bytes.
  GgufWriter again;
  again.copy_metadata_from(*f);
  EXPECT_EQ(again.write_to_memory(), bytes);
}

TEST(GgufRoundTrip, ManyTensorsOfSeveralTypes) {
  struct Spec {
    GgmlType type;
    std::vector<int64_t> shape;
    size_t n_bytes;
  };
  const std::vector<Spec> specs = {
      {GgmlType::F32, {3, 5}, 60},         {GgmlType::F16, {7}, 14},          {GgmlType::BF16, {2, 2, 2}, 16},
      {GgmlType::Q4_0, {64, 3}, 108},      {GgmlType::Q4_1, {32}, 20},        {GgmlType::Q5_0, {32, 2}, 44},
      {GgmlType::Q5_1, {32}, 24},          {GgmlType::Q8_0, {96, 2}, 204},    {GgmlType::Q8_1, {32}, 36},
      {GgmlType::Q2_K, {256}, 84},         {GgmlType::Q3_K, {256, 2}, 220},   {GgmlType::Q4_K, {512}, 288},
      {GgmlType::Q5_K, {256}, 176},        {GgmlType::Q6_K, {256, 1, 1, 3}, 630}, {GgmlType::Q8_K, {256}, 292},
  };
  std::vector<Bytes> payloads;
  GgufWriter w;
  for (size_t i = 0; i < specs.size(); ++i) {
    Bytes data(specs[i].n_bytes);
    for (size_t j = 0; j < data.size(); ++j) data[j] = static_cast<uint8_t>(i * 31 + j);
    payloads.push_back(std::move(data));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    w.add_tensor("tensor." + std::to_string(i), specs[i].type, specs[i].shape, payloads[i].data());
  }
  const Bytes bytes = w.write_to_memory();
  auto f = GgufFile::parse(bytes, "rt.gguf");
  ASSERT_EQ(f->tensors().size(), specs.size());
  EXPECT_EQ(f->data_offset() % 32, 0u);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = f->tensor("tensor." + std::to_string(i));
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.shape, specs[i].shape);
    EXPECT_EQ(t.n_bytes, specs[i].n_bytes);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.data, bytes.data() + f->data_offset() + t.offset);  // points into the buffer, no copy
    EXPECT_EQ(Bytes(t.data, t.data + t.n_bytes), payloads[i]) << t.name;
  }
  EXPECT_EQ(f->tensor("tensor.13").shape_string(), "[256, 1, 1, 3]");
  EXPECT_EQ(f->tensor("tensor.13").n_elements(), 768);
}

TEST(GgufRoundTrip, CustomAlignment) {
  for (uint32_t alignment : {1u, 8u, 256u}) {
    const std::vector<float> a(3, 1.0f), b(5, 2.0f);
    GgufWriter w;
    w.set_u32("general.alignment", alignment);
    w.add_tensor("a", GgmlType::F32, {3}, a.data());
    w.add_tensor("b", GgmlType::F32, {5}, b.data());
    const Bytes bytes = w.write_to_memory();
    auto f = GgufFile::parse(bytes, "aligned.gguf");
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    EXPECT_EQ(f->tensor("b").offset, (12 + alignment - 1) / alignment * alignment);
    EXPECT_EQ(std::memcmp(f->tensor("b").data, b.data(), 20), 0);
    EXPECT_EQ(bytes.size() % alignment, 0u);  // zero padding after the last tensor too
  }
}

TEST(GgufRoundTrip, WriterReplacesKeysInPlaceAndCopiesMetadata) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_u32("a", 2);
  auto f = GgufFile::parse(w.write_to_memory(), "m.gguf");
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(f->get_int("a"), 2);

  GgufWriter copy;
  copy.set_u32("z", 9);
  copy.copy_metadata_from(*f);
  auto g = GgufFile::parse(copy.write_to_memory(), "copy.gguf");
  ASSERT_EQ(g->metadata().size(), 3u);
  EXPECT_EQ(g->metadata()[1].first, "a");
  EXPECT_EQ(g->get_string("b"), "x");
}

TEST(GgufRoundTrip, AtomicWriteToDiskThenMmap) {
  const fs::path dir = fs::temp_directory_path() / ("xelm_gguf_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path path = dir / "model.gguf";
  const std::vector<float> data = {1, 2, 3, 4};
  GgufWriter w;
  w.set_string("general.name", "disk");
  w.add_tensor("t", GgmlType::F32, {4}, data.data());
  w.write(path.string());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temp file left
  {
    auto f = GgufFile::open(path.string());
    EXPECT_EQ(f->path(), path.string());
    EXPECT_EQ(f->file_size(), fs::file_size(path));
    EXPECT_EQ(f->get_string("general.name"), "disk");
    EXPECT_EQ(std::memcmp(f->tensor("t").data, data.data(), 16), 0);
    EXPECT_EQ(read_file(path), w.write_to_memory());
  }
  fs::remove_all(dir);
}

TEST(GgufRoundTrip, WriterRejectsBadTensorsAndAlignment) {
  const float data[4] = {};
  GgufWriter w;
  w.add_tensor("t", GgmlType::F32, {4}, data);
  EXPECT_THROW(w.add_tensor("t", GgmlType::F32, {4}, data), Error);
  EXPECT_THROW(w.add_tensor("q", GgmlType::Q8_0, {16}, data), Error);
  EXPECT_THROW(w.add_tensor("z", GgmlType::F32, {0}, data), Error);
  EXPECT_THROW(w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, data), Error);
  w.set_u32("general.alignment", 48);
  EXPECT_THROW(w.write_to_memory(), Error);
  EXPECT_THROW(Value::from_uint(ValueType::U8, 256), Error);
  EXPECT_THROW(Value::from_int(ValueType::I16, 40000), Error);
  EXPECT_THROW(Value::from_array(ValueType::U8, {Value::from_string("x")}), Error);
}

// ------------------------------------------------------------------------------------------------
// Getters and display

TEST(GgufGetters, MissingAndMismatchedKeys) {
  GgufWriter w;
  w.set_string("s", "text");
  w.set_u32("n", 5);
  auto f = GgufFile::parse(w.write_to_memory(), "g.gguf");
  EXPECT_EQ(f->find_int("absent"), std::nullopt);
  EXPECT_EQ(f->find_int("n"), 5);
  EXPECT_EQ(f->get_float("n"), 5.0);  // integers read as numbers
  try {
    f->get_int("absent");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "g.gguf: missing metadata key 'absent'");
  }
  try {
    f->get_int("s");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "g.gguf: metadata key 's' is string, expected an integer");
  }
  try {
    f->tensor("nope");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "g.gguf: missing tensor 'nope'");
  }
  EXPECT_THROW(f->find_bool("n"), Error);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
}

TEST(GgufDisplay, ValuesAndArrays) {
  EXPECT_EQ(Value::from_uint(ValueType::U32, 151936).to_display_string(), "151936");
  EXPECT_EQ(Value::from_int(ValueType::I8, -3).to_display_string(), "-3");
  EXPECT_EQ(Value::from_float(ValueType::F32, 1e-6).to_display_string(), "1e-06");
  EXPECT_EQ(Value::from_float(ValueType::F64, 0.5).to_display_string(), "0.5");
  EXPECT_EQ(Value::from_bool(false).to_display_string(), "false");
  EXPECT_EQ(Value::from_string("a \"q\"\n").to_display_string(), "\"a \\\"q\\\"\\n\"");
  EXPECT_EQ(Value::from_string(std::string(100, 'x')).to_display_string(), "\"" + std::string(64, 'x') + "\"…");
  EXPECT_EQ(Value::from_strings({"a", "b", "c"}).to_display_string(2), "[string × 3] \"a\", \"b\", …");
  EXPECT_EQ(Value::from_strings({}).to_display_string(), "[string × 0]");
  const Value nested = Value::from_array(
      ValueType::ARRAY, {Value::from_array(ValueType::U8, {Value::from_uint(ValueType::U8, 1)})});
  EXPECT_EQ(nested.to_display_string(), "[array × 1] ([u8 × 1] 1)");
}

// ------------------------------------------------------------------------------------------------
// Cross-implementation fixtures (tools/gen_gguf_fixtures.py)

// Checks a parsed value against its JSON form {"type", "value"} / {"type": "array", "element_type", "items"}.
void expect_value_matches(const Value& v, const nlohmann::json& want, const std::string& where) {
  ASSERT_EQ(std::string(value_type_name(v.type())), want["type"].get<std::string>()) << where;
  switch (v.type()) {
    case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64:
      EXPECT_EQ(v.as_uint(), want["value"].get<uint64_t>()) << where;
      break;
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
      EXPECT_EQ(v.as_int(), want["value"].get<int64_t>()) << where;
      break;
    case ValueType::F32: case ValueType::F64:
      EXPECT_EQ(v.as_float(), want["value"].get<double>()) << where;
      break;
    case ValueType::BOOL:
      EXPECT_EQ(v.as_bool(), want["value"].get<bool>()) << where;
      break;
    case ValueType::STRING:
      EXPECT_EQ(*v.as_string(), want["value"].get<std::string>()) << where;
      break;
    case ValueType::ARRAY: {
      EXPECT_EQ(std::string(value_type_name(v.element_type())), want["element_type"].get<std::string>()) << where;
      const auto& items = want["items"];
      ASSERT_EQ(v.as_array()->size(), items.size()) << where;
      for (size_t i = 0; i < items.size(); ++i) {
        expect_value_matches(v.as_array()->at(i), items[i], where + "[" + std::to_string(i) + "]");
      }
      break;
    }
  }
}

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

void expect_file_matches_sidecar(const GgufFile& f, const nlohmann::json& want) {
  EXPECT_EQ(f.version(), want["version"].get<uint32_t>());
  EXPECT_EQ(f.alignment(), want["alignment"].get<uint64_t>());
  const auto& metadata = want["metadata"];
  ASSERT_EQ(f.metadata().size(), metadata.size());
  for (size_t i = 0; i < metadata.size(); ++i) {
    const std::string key = metadata[i]["key"];
    EXPECT_EQ(f.metadata()[i].first, key);
    expect_value_matches(f.metadata()[i].second, metadata[i], key);
  }
  const auto& tensors = want["tensors"];
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const auto& t : tensors) {
    const TensorInfo& info = f.tensor(t["name"].get<std::string>());
    EXPECT_EQ(type_traits(info.type).name, t["type"].get<std::string>());
    EXPECT_EQ(info.shape, t["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(f.data_offset() + info.offset, t["offset"].get<uint64_t>()) << info.name;
    EXPECT_EQ(to_hex(info.data, info.n_bytes), t["hex"].get<std::string>()) << info.name;
  }
}

nlohmann::json load_sidecar() {
  std::ifstream in(kFixtureDir / "reference_v3.json");
  return nlohmann::json::parse(in);
}

TEST(GgufFixture, ReadsFileWrittenByGgufPy) {
  auto f = GgufFile::open((kFixtureDir / "reference_v3.gguf").string());
  expect_file_matches_sidecar(*f, load_sidecar());
}

// Re-writes the gguf-py fixture with xelm's writer. The result is compared with the committed
// xelm_written.gguf (which tools/gen_gguf_fixtures.py checks with gguf-py's GGUFReader);
// XELM_REGENERATE_FIXTURES=1 rewrites that file instead.
TEST(GgufFixture, WriterOutputIsReadableByGgufPy) {
  auto reference = GgufFile::open((kFixtureDir / "reference_v3.gguf").string());
  GgufWriter w;
  w.copy_metadata_from(*reference);
  for (const TensorInfo& t : reference->tensors()) w.add_tensor(t.name, t.type, t.shape, t.data);
  const Bytes written = w.write_to_memory();
  expect_file_matches_sidecar(*GgufFile::parse(written, "xelm_written.gguf"), load_sidecar());

  const fs::path committed = kFixtureDir / "xelm_written.gguf";
  const char* regenerate = std::getenv("XELM_REGENERATE_FIXTURES");
  if (regenerate != nullptr && std::string(regenerate) == "1") w.write(committed.string());
  EXPECT_EQ(read_file(committed), written) << "rerun with XELM_REGENERATE_FIXTURES=1, then tools/gen_gguf_fixtures.py";
  // Same layout rules as gguf-py, so the bytes are identical to its file.
  EXPECT_EQ(written, read_file(kFixtureDir / "reference_v3.gguf"));
}

// ------------------------------------------------------------------------------------------------
// Malformed files: one test per class, each with the message it must produce.

TEST(GgufMalformed, BadMagic) {
  Bytes bytes = SmallFile().bytes;
  bytes[0] = 'X';
  expect_parse_error(bytes, "bad magic 0x46554758 (expected \"GGUF\"): not a GGUF file");
}

TEST(GgufMalformed, UnsupportedVersions) {
  expect_parse_error(Builder().header(0, 0, 1).bytes, "unsupported version 1");
  expect_parse_error(Builder().header(0, 0, 4).bytes, "unsupported version 4 (xelm reads GGUF versions 2 and 3)");
  expect_parse_error(Builder().header(0, 0, 0x03000000).bytes,
                     "big-endian GGUF (version field 3 byte-swapped) is not supported");
}

TEST(GgufMalformed, Version2IsAccepted) {
  Bytes bytes = SmallFile().bytes;
  poke<uint32_t>(bytes, 4, 2);
  EXPECT_EQ(GgufFile::parse(bytes, "v2.gguf")->version(), 2u);
}

TEST(GgufMalformed, EveryTruncationIsAnError) {
  const SmallFile small;
  const Bytes& full = small.bytes;
  EXPECT_NO_THROW(GgufFile::parse(full, "full.gguf"));
  for (size_t n = 0; n < full.size(); ++n) {
    const Bytes cut = prefix(full, n);
    EXPECT_THROW(GgufFile::parse(cut, kName), Error) << "prefix of " << n << " of " << full.size() << " bytes";
  }
}

// Cuts at chosen places. Small hand-built files are used where the header's count check (n_kv
// entries cannot fit in what is left) would otherwise report the truncation first.
TEST(GgufMalformed, TruncationMessagesNameThePlace) {
  const Bytes full = SmallFile().bytes;
  expect_parse_error(prefix(full, 3), "header: truncated magic at offset 0 (needs 4 bytes, 3 left)");
  expect_parse_error(prefix(full, 12), "header: truncated tensor count at offset 8 (needs 8 bytes, 4 left)");
  expect_parse_error(prefix(full, 24), "header: metadata count 4 exceeds what the 0 bytes left can hold");

  const Bytes long_key = Builder().header(0, 1).str("a.long.key.name.for.truncation").u32(4).u32(1).bytes;
  expect_parse_error(prefix(long_key, 24 + 8 + 10),
                     "key #0: truncated key name: length 30 at offset 24 exceeds the 10 bytes left");
  expect_parse_error(prefix(long_key, long_key.size() - 5), "key 'a.long.key.name.for.truncation': truncated value type");
  expect_parse_error(prefix(long_key, long_key.size() - 1),
                     "key 'a.long.key.name.for.truncation': truncated u32 value at offset 66 (needs 4 bytes, 3 left)");

  const Bytes string_value = Builder().header(0, 1).str("k").u32(8).str("a long string value").bytes;
  expect_parse_error(prefix(string_value, 24 + 9 + 4 + 5),
                     "key 'k': truncated string length at offset 37 (needs 8 bytes, 5 left)");
  expect_parse_error(prefix(string_value, string_value.size() - 1),
                     "key 'k': truncated string: length 19 at offset 37 exceeds the 18 bytes left");

  const Bytes string_array = Builder().header(0, 1).str("k").u32(9).u32(8).u64(2).str("abcdefgh").str("ijklmnop").bytes;
  expect_parse_error(prefix(string_array, 24 + 9 + 4 + 2), "key 'k': truncated array element type at offset 37");
  expect_parse_error(prefix(string_array, 24 + 9 + 4 + 4 + 6), "key 'k': truncated array length at offset 41");
  expect_parse_error(prefix(string_array, string_array.size() - 3),
                     "key 'k': truncated string: length 8 at offset 65 exceeds the 5 bytes left");

  expect_parse_error(prefix(full, find_bytes(full, "weights") + 2), "tensor info #1: truncated tensor name");
  expect_parse_error(prefix(full, find_bytes(full, "weights") + 7 + 2), "tensor 'weights': truncated dimension count");
  expect_parse_error(prefix(full, find_bytes(full, "weights") + 7 + 4 + 2),
                     "tensor 'weights': truncated dimension at offset");
  expect_parse_error(prefix(full, find_bytes(full, "weights") + 7 + 4 + 8 + 1), "tensor 'weights': truncated type id");
  expect_parse_error(prefix(full, find_bytes(full, "weights") + 7 + 4 + 8 + 4 + 7),
                     "tensor 'weights': truncated data offset");
  expect_parse_error(prefix(full, full.size() - 1),
                     "tensor 'weights' data [" + std::to_string(full.size() - 32) + ", " +
                         std::to_string(full.size()) + ") extends past end of file (" +
                         std::to_string(full.size() - 1) + " bytes)");
}

TEST(GgufMalformed, AbsurdCountsAreRejectedBeforeAllocating) {
  expect_parse_error(Builder().header(0, uint64_t{1} << 60).bytes,
                     "header: metadata count 1152921504606846976 exceeds what the 0 bytes left can hold");
  expect_parse_error(Builder().header(uint64_t{1} << 62, 0).zeros(100).bytes,
                     "header: tensor count 4611686018427387904 exceeds what the 100 bytes left can hold");
  expect_parse_error(Builder().header(0, 1).u64(uint64_t{1} << 63).zeros(16).bytes,
                     "key #0: truncated key name: length 9223372036854775808 at offset 24 exceeds the 16 bytes left");
  expect_parse_error(Builder().header(0, 1).str("k").u32(8).u64(std::numeric_limits<uint64_t>::max()).zeros(4).bytes,
                     "key 'k': truncated string: length 18446744073709551615 at offset 37 exceeds the 4 bytes left");
  expect_parse_error(Builder().header(0, 1).str("k").u32(9).u32(4).u64(uint64_t{1} << 40).zeros(16).bytes,
                     "key 'k': array length 1099511627776 (u32 elements) at offset 41 exceeds the 16 bytes left");
  expect_parse_error(Builder().header(0, 1).str("k").u32(9).u32(9).u64(uint64_t{1} << 40).zeros(16).bytes,
                     "key 'k': array length 1099511627776 (array elements)");
  expect_parse_error(Builder().header(1, 0).str("t").u32(1).u64(1).u32(0).u64(0).bytes,
                     "data section (tensor infos end at 57, aligned to 32) starts past end of file (57 bytes)");
  expect_parse_error(Builder().header(0, 0).u8(0).bytes,
                     "truncated: data section (tensor infos end at 24, aligned to 32) starts past end of file (25 bytes)");
}

// The file holds enough bytes for the elements, so only the cap stops a ~50x memory blow-up.
TEST(GgufMalformed, TotalArrayElementsAreLimited) {
  const uint64_t limit = uint64_t{1} << 24;
  const Bytes at_limit = Builder().header(0, 1).str("a").u32(9).u32(0).u64(limit + 1).zeros(limit + 1).bytes;
  expect_parse_error(at_limit, "key 'a': array length 16777217 at offset 41 takes the metadata past the limit of "
                               "16777216 array elements in total");
  Builder nested;  // the total counts inner arrays' elements too
  nested.header(0, 1).str("a").u32(9).u32(9).u64(2).u32(0).u64(limit - 1).zeros(limit - 1);
  expect_parse_error(nested.bytes, "key 'a': array length 16777215 at offset 53 takes the metadata past the limit");
}

TEST(GgufMalformed, ArrayNestingDepthIsLimited) {
  auto nested = [](int depth) {
    Builder b;
    b.header(0, 1).str("deep").u32(9);
    for (int i = 1; i < depth; ++i) b.u32(9).u64(1);
    b.u32(0).u64(0);  // innermost: empty u8 array
    return b.pad_to(32).bytes;
  };
  EXPECT_NO_THROW(GgufFile::parse(nested(8), "ok.gguf"));
  expect_parse_error(nested(9), "key 'deep': arrays nested deeper than 8 levels");
  expect_parse_error(nested(100000), "key 'deep': arrays nested deeper than 8 levels");
}

TEST(GgufMalformed, UnknownValueTypes) {
  expect_parse_error(Builder().header(0, 1).str("k").u32(13).zeros(8).bytes, "key 'k' has unknown value type 13");
  expect_parse_error(Builder().header(0, 1).str("k").u32(9).u32(77).u64(0).bytes,
                     "key 'k' has unknown array element type 77");
}

TEST(GgufMalformed, DuplicateKeys) {
  GgufWriter w;
  w.set_u32("alpha", 1);
  w.set_u32("alphb", 2);
  Bytes bytes = w.write_to_memory();
  bytes[find_bytes(bytes, "alphb") + 4] = 'a';
  expect_parse_error(bytes, "duplicate metadata key 'alpha'");
}

TEST(GgufMalformed, BadAlignment) {
  auto with_alignment = [](uint32_t type, uint64_t value, size_t size) {
    Builder b;
    b.header(0, 1).str("general.alignment").u32(type).raw(&value, size);
    return b.pad_to(64).bytes;
  };
  expect_parse_error(with_alignment(4, 0, 4), "general.alignment 0 is not a non-zero power of two");
  expect_parse_error(with_alignment(4, 48, 4), "general.alignment 48 is not a non-zero power of two");
  expect_parse_error(with_alignment(5, 32, 4), "general.alignment is i32, expected u32");
  expect_parse_error(with_alignment(10, 32, 8), "general.alignment is u64, expected u32");
}

TEST(GgufMalformed, TensorDimensions) {
  expect_parse_error(one_tensor_file({4, 1, 1, 1, 1}, 0, 0, 16), "tensor 'w' has 5 dimensions (must be 1 to 4)");
  expect_parse_error(Builder().header(1, 0).str("w").u32(0).u32(0).u64(0).pad_to(32).zeros(32).bytes,
                     "tensor 'w' has 0 dimensions (must be 1 to 4)");
  expect_parse_error(one_tensor_file({4, 0}, 0, 0, 16), "tensor 'w' dimension 1 is 0 (must be positive)");
  expect_parse_error(one_tensor_file({uint64_t(-5)}, 0, 0, 16), "tensor 'w' dimension 0 is -5 (must be positive)");
  expect_parse_error(one_tensor_file({uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0, 16),
                     "tensor 'w' element count of shape [4294967296, 4294967296] overflows");
  expect_parse_error(one_tensor_file({uint64_t{1} << 62}, 0, 0, 16), "tensor 'w' byte size overflows");
  expect_parse_error(one_tensor_file({33}, 8, 0, 64),
                     "tensor 'w' first dimension 33 is not a multiple of the Q8_0 block size 32");
}

TEST(GgufMalformed, UnknownTensorType) {
  expect_parse_error(one_tensor_file({4}, 99, 0, 16), "tensor 'w' has unknown type id 99");
  expect_parse_error(one_tensor_file({4}, 4, 0, 16), "tensor 'w' has unknown type id 4");  // ggml's removed Q4_2
}

TEST(GgufMalformed, MisalignedTensorOffset) {
  expect_parse_error(one_tensor_file({4}, 0, 8, 64), "tensor 'w' data offset 8 is not a multiple of the alignment 32");
}

TEST(GgufMalformed, TensorDataPastEndOfFile) {
  expect_parse_error(one_tensor_file({16}, 0, 0, 63), "tensor 'w' data [64, 128) extends past end of file (127 bytes)");
  expect_parse_error(one_tensor_file({4}, 0, 1u << 20, 16),
                     "tensor 'w' data [1048640, 1048656) extends past end of file (80 bytes)");
  expect_parse_error(one_tensor_file({4}, 0, std::numeric_limits<uint64_t>::max() - 31, 16),
                     "tensor 'w' data offset 18446744073709551584 overflows");
}

TEST(GgufMalformed, OverlappingTensorData) {
  Builder b;
  b.header(2, 0).tensor_info("a", {16}, 0, 0).tensor_info("b", {8}, 0, 32).pad_to(32).zeros(96);
  expect_parse_error(b.bytes, "tensor 'b' data [32, 64) overlaps tensor 'a' data [0, 64)");
  Builder same;
  same.header(2, 0).tensor_info("a", {8}, 0, 0).tensor_info("b", {8}, 0, 0).pad_to(32).zeros(32);
  EXPECT_NE(parse_error(same.bytes).find("overlaps tensor"), std::string::npos);
}

TEST(GgufMalformed, DuplicateTensorNames) {
  Builder b;
  b.header(2, 0).tensor_info("w", {8}, 0, 0).tensor_info("w", {8}, 0, 32).pad_to(32).zeros(64);
  expect_parse_error(b.bytes, "duplicate tensor name 'w'");
}

TEST(GgufMalformed, InvalidUtf8IsAllowed) {
  Builder b;
  b.header(1, 1).str("\xc3\x28").u32(8).str("\xff\xfe").tensor_info("\x80", {8}, 0, 0).pad_to(32).zeros(32);
  auto f = GgufFile::parse(b.bytes, "utf8.gguf");
  EXPECT_EQ(f->get_string("\xc3\x28"), "\xff\xfe");
  EXPECT_NE(f->find_tensor("\x80"), nullptr);
}

TEST(GgufMalformed, OpenMissingAndEmptyFiles) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/model.gguf: cannot open: No such file or directory");
  }
  const fs::path empty = fs::temp_directory_path() / ("xelm_empty_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(empty).close();
  try {
    GgufFile::open(empty.string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), empty.string() + ": header: truncated magic at offset 0 (needs 4 bytes, 0 left)");
  }
  fs::remove(empty);
}

}  // namespace
}  // namespace xelm::gguf
