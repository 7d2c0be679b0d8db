// bench_tokenizer.cpp — Tokenizer::encode throughput (MB/s of UTF-8 input) on English prose, source
// code and CJK text, ~64 KB each, with the vendored Qwen3 tokenizer. Steady state: the per-word BPE
// cache is warm after the first iteration, as it is while a server tokenizes similar prompts.
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "runtime/file_io.h"
#include "runtime/gguf.h"
#include "runtime/synthetic_model.h"
#include "runtime/tokenizer.h"

namespace {

constexpr const char* kProse =
    "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin nuzzled "
    "into his breast in an effort to escape the vile wind, slipped quickly through the glass doors of Victory "
    "Mansions, though not quickly enough to prevent a swirl of gritty dust from entering along with him.\n\n"
    "The hallway smelt of boiled cabbage and old rag mats. At one end of it a coloured poster, too large for "
    "indoor display, had been tacked to the wall. It depicted simply an enormous face, more than a metre wide: "
    "the face of a man of about forty-five, with a heavy black moustache and ruggedly handsome features. "
    "Winston made for the stairs. It was no use trying the lift. Even at the best of times it was seldom "
    "working, and at present the electric current was cut off during daylight hours. It was part of the "
    "economy drive in preparation for Hate Week. The flat was seven flights up, and Winston, who was "
    "thirty-nine and had a varicose ulcer above his right ankle, went slowly, resting several times on the "
    "way. On each landing, opposite the lift-shaft, the poster with the enormous face gazed from the wall.\n";

constexpr const char* kCode =
    "template <typename T>\nclass RingBuffer {\n public:\n  explicit RingBuffer(size_t capacity)\n"
    "      : data_(capacity), head_(0), size_(0) {}\n\n  bool push(const T& value) {\n"
    "    if (size_ == data_.size()) return false;\n    data_[(head_ + size_++) % data_.size()] = value;\n"
    "    return true;\n  }\n\n  std::optional<T> pop() {\n    if (size_ == 0) return std::nullopt;\n"
    "    T value = std::move(data_[head_]);\n    head_ = (head_ + 1) % data_.size();\n    --size_;\n"
    "    return value;\n  }\n\n private:\n  std::vector<T> data_;\n  size_t head_, size_;\n};\n\n"
    "def parse_config(path: str) -> dict[str, int]:\n    result = {}\n    with open(path) as f:\n"
    "        for line_no, line in enumerate(f, 1):\n            key, _, value = line.partition('=')\n"
    "            if not value:\n                raise ValueError(f\"{path}:{line_no}: expected key=value\")\n"
    "            result[key.strip()] = int(value)\n    return result\n";

constexpr const char* kCjk =
    "机器学习是人工智能的一个分支。它的目标是让计算机系统能够从数据中自动学习规律，并利用这些规律对未知数据进行预测。"
    "近年来，深度学习在图像识别、语音识别和自然语言处理等领域取得了突破性进展。\n"
    "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。江戸時代には江戸と呼ばれ、"
    "徳川幕府の所在地として栄えました。現在では政治、経済、文化の中心地となっています。\n"
    "서울은 대한민국의 수도이며 정치, 경제, 사회, 문화의 중심지이다. 한강이 도시를 가로질러 흐르며, "
    "조선 시대부터 수도로서의 역할을 해 왔다.\n";

const xelm::Tokenizer& tokenizer() {
  static const std::vector<uint8_t> bytes = xelm::read_file_bytes(xelm::default_tokenizer_path());
  static const std::unique_ptr<xelm::gguf::GgufFile> file = xelm::gguf::GgufFile::parse(bytes, "qwen3-tokenizer");
  static const std::unique_ptr<xelm::Tokenizer> t = xelm::Tokenizer::from_gguf(*file);
  return *t;
}

void encode_text(benchmark::State& state, const char* sample) {
  std::string text;
  while (text.size() < 64 * 1024) text += sample;
  const xelm::Tokenizer& t = tokenizer();
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = t.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["bytes_per_token"] = static_cast<double>(text.size()) / static_cast<double>(tokens);
}

void BM_TokenizerEncodeProse(benchmark::State& state) { encode_text(state, kProse); }
void BM_TokenizerEncodeCode(benchmark::State& state) { encode_text(state, kCode); }
void BM_TokenizerEncodeCjk(benchmark::State& state) { encode_text(state, kCjk); }

}  // namespace

BENCHMARK(BM_TokenizerEncodeProse)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenizerEncodeCode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenizerEncodeCjk)->Unit(benchmark::kMillisecond);
