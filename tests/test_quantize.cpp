// test_quantize.cpp — `xelm quantize` logic: the per-tensor type mixes follow llama.cpp's rules for
// the names users know, and quantized models load and stay close to the F32 original.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/file_type.h"
#include "runtime/model.h"
#include "runtime/quantize.h"
#include "runtime/sampler.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

// Types chosen for every tensor of `file` under `mix`, by tensor name.
std::map<std::string, GgmlType> plan(const gguf::GgufFile& file, std::string_view mix) {
  std::map<std::string, GgmlType> types;
  for (const gguf::TensorInfo& t : file.tensors()) types[t.name] = choose_tensor_type(*file_type_from_name(mix), t, file);
  return types;
}

class QuantizeMix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // 28 layers like Qwen3-0.6B (so the "more bits" layer pattern is the real one); widths of 256
    // so every K-quant fits, GQA 4 like the 1.7B/8B shapes (n_gqa decides Q2_K's attn_v).
    SyntheticModelSpec spec;
    spec.n_layer = 28;
    spec.n_embd = 256;
    spec.n_head = 8;
    spec.n_head_kv = 2;
    spec.head_dim = 32;
    spec.n_ff = 256;
    spec.n_vocab = 256;
    spec.weight_type = GgmlType::F16;
    dir_ = new test::ScratchDir();
    write_synthetic_model(spec, dir_->file("m.gguf"));
    file_ = gguf::GgufFile::open(dir_->file("m.gguf")).release();
  }
  static void TearDownTestSuite() {
    delete file_;
    delete dir_;
  }
  static inline test::ScratchDir* dir_ = nullptr;
  static inline gguf::GgufFile* file_ = nullptr;
};

TEST_F(QuantizeMix, Q4_K_M) {
  const auto types = plan(*file_, "Q4_K_M");
  // Layers 0-2, 24-27 and every third from 5 get Q6_K for attn_v and ffn_down.
  const std::vector<int> more_bits = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  for (int il = 0; il < 28; ++il) {
    const bool more = std::find(more_bits.begin(), more_bits.end(), il) != more_bits.end();
    const std::string p = "blk." + std::to_string(il) + ".";
    EXPECT_EQ(types.at(p + "attn_v.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K) << il;
    EXPECT_EQ(types.at(p + "ffn_down.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K) << il;
    EXPECT_EQ(types.at(p + "attn_q.weight"), GgmlType::Q4_K);
    EXPECT_EQ(types.at(p + "attn_output.weight"), GgmlType::Q4_K);
    EXPECT_EQ(types.at(p + "ffn_gate.weight"), GgmlType::Q4_K);
    EXPECT_EQ(types.at(p + "attn_norm.weight"), GgmlType::F32);
    EXPECT_EQ(types.at(p + "attn_q_norm.weight"), GgmlType::F32);
  }
  EXPECT_EQ(types.at("token_embd.weight"), GgmlType::Q6_K);  // tied: it is the output head too
  EXPECT_EQ(types.at("output_norm.weight"), GgmlType::F32);
}

TEST_F(QuantizeMix, OtherMixes) {
  auto q2 = plan(*file_, "Q2_K");
  EXPECT_EQ(q2.at("blk.3.attn_q.weight"), GgmlType::Q2_K);
  EXPECT_EQ(q2.at("blk.3.attn_v.weight"), GgmlType::Q4_K);  // n_gqa = 4 (Q3_K below 4)
  EXPECT_EQ(q2.at("blk.3.ffn_down.weight"), GgmlType::Q3_K);
  EXPECT_EQ(q2.at("blk.3.attn_output.weight"), GgmlType::Q3_K);
  auto q3m = plan(*file_, "Q3_K_M");
  EXPECT_EQ(q3m.at("blk.0.attn_v.weight"), GgmlType::Q5_K);
  EXPECT_EQ(q3m.at("blk.2.attn_v.weight"), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at("blk.0.ffn_down.weight"), GgmlType::Q5_K);
  EXPECT_EQ(q3m.at("blk.9.ffn_down.weight"), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at("blk.9.attn_output.weight"), GgmlType::Q4_K);
  EXPECT_EQ(q3m.at("blk.9.ffn_up.weight"), GgmlType::Q3_K);
  auto q8 = plan(*file_, "Q8_0");
  EXPECT_EQ(q8.at("token_embd.weight"), GgmlType::Q8_0);
  EXPECT_EQ(q8.at("blk.0.attn_v.weight"), GgmlType::Q8_0);
  auto q40 = plan(*file_, "Q4_0");
  EXPECT_EQ(q40.at("token_embd.weight"), GgmlType::Q6_K);
  EXPECT_EQ(q40.at("blk.0.attn_v.weight"), GgmlType::Q4_0);
  auto f16 = plan(*file_, "F16");
  EXPECT_EQ(f16.at("token_embd.weight"), GgmlType::F16);
  EXPECT_EQ(f16.at("blk.0.attn_norm.weight"), GgmlType::F32);
}

TEST(QuantizeFallback, NarrowRowsFallBackLikeLlamaCpp) {
  test::ScratchDir dir;
  SyntheticModelSpec spec;  // n_embd 64: no 256-wide K-quant block fits a row
  write_synthetic_model(spec, dir.file("m.gguf"));
  auto file = gguf::GgufFile::open(dir.file("m.gguf"));
  auto types = plan(*file, "Q4_K_M");
  EXPECT_EQ(types.at("blk.0.attn_q.weight"), GgmlType::Q5_0);
  EXPECT_EQ(types.at("token_embd.weight"), GgmlType::Q8_0);
  EXPECT_EQ(plan(*file, "Q5_K_S").at("blk.0.attn_q.weight"), GgmlType::Q5_1);
  EXPECT_EQ(plan(*file, "Q6_K").at("blk.0.attn_q.weight"), GgmlType::Q8_0);
}

// Quantizes a small F32 model to each mix and compares the logits with the original's.
TEST(QuantizeModel, EveryMixLoadsAndStaysClose) {
  test::ScratchDir dir;
  SyntheticModelSpec spec;
  spec.n_layer = 2;
  spec.n_embd = 256;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.head_dim = 64;
  spec.n_ff = 512;
  spec.n_vocab = 256;
  spec.weight_type = GgmlType::F32;
  write_synthetic_model(spec, dir.file("f32.gguf"));
  auto reference_model = Model::load(dir.file("f32.gguf"));
  auto backend = cpu::make_reference_backend();
  const std::vector<int32_t> tokens = {1, 50, 200, 7, 7, 99, 3, 128};
  auto logits_of = [&](const Model& m) {
    Transformer t(m, Placement::all_on(*backend, m.config().n_layer), TransformerOptions{.n_ctx = 64, .kv_type = GgmlType::F32});
    return t.eval(tokens, true);
  };
  const std::vector<float> reference = logits_of(*reference_model);

  // Upper bounds on the logits NMSE, about twice what each mix measures here (F16 3.9e-7, BF16
  // 2.4e-5, Q8_0 2.7e-4, Q6_K 2.9e-3, Q5_K_M 7.0e-3, Q5_1 8.3e-3, Q5_0 1.0e-2, Q4_K_M 2.4e-2,
  // Q4_1 3.5e-2, Q4_0 3.9e-2, Q3_K_M 5.0e-2, Q2_K 0.19): fewer bits, larger error, in that order.
  const std::vector<std::pair<std::string, double>> mixes = {
      {"F16", 1e-6},    {"BF16", 5e-5},   {"Q8_0", 6e-4},  {"Q6_K", 6e-3},  {"Q5_K_M", 1.5e-2}, {"Q5_1", 1.7e-2},
      {"Q5_0", 2e-2},   {"Q4_K_M", 5e-2}, {"Q4_1", 7e-2},  {"Q4_0", 8e-2},  {"Q3_K_M", 0.1},    {"Q2_K", 0.4}};
  for (const auto& [mix, bound] : mixes) {
    const std::string out = dir.file(mix + ".gguf");
    size_t tensors = 0;
    quantize_model(dir.file("f32.gguf"), out, *file_type_from_name(mix), 2, [&](const QuantizeProgress&) { ++tensors; });
    EXPECT_EQ(tensors, reference_model->file().tensors().size());
    auto model = Model::load(out);
    EXPECT_EQ(model->file().get_int("general.file_type"), static_cast<int64_t>(file_type_from_name(mix)->file_type));
    EXPECT_EQ(model->file().find_string("general.name"), reference_model->file().find_string("general.name"));
    const double error = test::nmse(logits_of(*model), reference);
    std::printf("[quantize] %-7s logits NMSE vs F32 = %.3g, file %.1f KiB\n", mix.c_str(), error,
                static_cast<double>(model->file().file_size()) / 1024.0);
    EXPECT_LT(error, bound) << mix;
    EXPECT_GT(error, 0.0) << mix << " changed nothing";
  }
}

}  // namespace
}  // namespace xelm
