// test_model.cpp — model loading refuses files that are valid GGUF but not a usable Qwen model:
// missing or unsupported architecture keys, missing tensors, wrong shapes, wrong tensor types for
// norms; each with a one-line error naming the file and what is wrong.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/synthetic_model.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

class ModelValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.arch = Architecture::Qwen3;
    spec.n_layer = 2;
    write_synthetic_model(spec, dir_.file("good.gguf"));
    SyntheticModelSpec qwen2 = spec;
    qwen2.arch = Architecture::Qwen2;
    write_synthetic_model(qwen2, dir_.file("good-qwen2.gguf"));
  }

  // Rewrites `source` through `edit` (which may change metadata or drop/replace tensors), then
  // loads the result and returns the error message ("" if it loaded).
  std::string load_edited(const std::string& source,
                          const std::function<void(gguf::GgufWriter&, const gguf::TensorInfo&, bool& keep)>& edit_tensor,
                          const std::function<void(gguf::GgufWriter&)>& edit_metadata = {}) {
    auto in = gguf::GgufFile::open(dir_.file(source));
    gguf::GgufWriter w;
    w.copy_metadata_from(*in);
    if (edit_metadata) edit_metadata(w);
    for (const gguf::TensorInfo& t : in->tensors()) {
      bool keep = true;
      if (edit_tensor) edit_tensor(w, t, keep);
      if (keep) w.add_tensor(t.name, t.type, t.shape, t.data);
    }
    const std::string path = dir_.file("edited.gguf");
    w.write(path);
    try {
      Model::load(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  test::ScratchDir dir_;
  std::vector<float> scratch_ = std::vector<float>(1 << 16, 0.5f);
};

MATCHER_P(Mentions, text, "") { return arg.find(text) != std::string::npos; }

TEST_F(ModelValidation, GoodModelsLoad) {
  EXPECT_EQ(load_edited("good.gguf", {}), "");
  EXPECT_EQ(load_edited("good-qwen2.gguf", {}), "");
}

TEST_F(ModelValidation, MissingTensorIsNamed) {
  const std::string error = load_edited("good.gguf", [](auto&, const gguf::TensorInfo& t, bool& keep) {
    keep = t.name != "blk.1.ffn_up.weight";
  });
  EXPECT_THAT(error, Mentions("missing tensor 'blk.1.ffn_up.weight'"));
  EXPECT_THAT(error, Mentions("edited.gguf"));
}

TEST_F(ModelValidation, WrongShapeIsNamed) {
  const std::string error = load_edited("good.gguf", [&](gguf::GgufWriter& w, const gguf::TensorInfo& t, bool& keep) {
    if (t.name == "blk.0.attn_k.weight") {
      keep = false;
      w.add_tensor(t.name, GgmlType::F32, {64, 16}, scratch_.data());
    }
  });
  EXPECT_THAT(error, Mentions("tensor 'blk.0.attn_k.weight' has shape [64, 16], expected [64, 32]"));
}

TEST_F(ModelValidation, QkNormRequiredForQwen3AndRefusedForQwen2) {
  EXPECT_THAT(load_edited("good.gguf", [](auto&, const gguf::TensorInfo& t, bool& keep) {
                keep = t.name != "blk.0.attn_q_norm.weight";
              }),
              Mentions("missing tensor 'blk.0.attn_q_norm.weight'"));
  EXPECT_THAT(load_edited("good-qwen2.gguf", [](auto&, const gguf::TensorInfo& t, bool& keep) {
                keep = t.name != "blk.1.attn_v.bias";
              }),
              Mentions("missing tensor 'blk.1.attn_v.bias'"));
}

TEST_F(ModelValidation, QuantizedNormIsRefused) {
  std::vector<uint8_t> q8(34 * 2, 0);
  const std::string error = load_edited("good.gguf", [&](gguf::GgufWriter& w, const gguf::TensorInfo& t, bool& keep) {
    if (t.name == "output_norm.weight") {
      keep = false;
      w.add_tensor(t.name, GgmlType::Q8_0, {64}, q8.data());
    }
  });
  EXPECT_THAT(error, Mentions("tensor 'output_norm.weight' has type Q8_0, expected F32, F16 or BF16"));
}

TEST_F(ModelValidation, MetadataProblemsAreNamed) {
  EXPECT_THAT(load_edited("good.gguf", {}, [](gguf::GgufWriter& w) { w.set_string("general.architecture", "llama"); }),
              Mentions("unsupported architecture 'llama'"));
  EXPECT_THAT(load_edited("good.gguf", {}, [](gguf::GgufWriter& w) { w.set_u32("qwen3.attention.head_count_kv", 3); }),
              Mentions("not a multiple of attention.head_count_kv (3)"));
  EXPECT_THAT(load_edited("good.gguf", {}, [](gguf::GgufWriter& w) { w.set_u32("qwen3.block_count", 0); }),
              Mentions("'qwen3.block_count' = 0 is out of range"));
  EXPECT_THAT(load_edited("good.gguf", {}, [](gguf::GgufWriter& w) { w.set_string("qwen3.embedding_length", "64"); }),
              Mentions("qwen3.embedding_length"));
  EXPECT_THAT(load_edited("good.gguf", {}, [](gguf::GgufWriter& w) { w.set_u32("qwen3.block_count", 3); }),
              Mentions("missing tensor 'blk.2.attn_norm.weight'"));
}

}  // namespace
}  // namespace xelm
