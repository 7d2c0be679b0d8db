// test_offload_plan.cpp — the layer-offload plan: -ngl semantics, explicit layer lists, the memory
// estimate (tied embeddings counted once per device), refusal naming the limit, and `auto` under a
// capped device memory.
#include <cstdlib>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/offload_plan.h"
#include "runtime/synthetic_model.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

using ::testing::HasSubstr;

TEST(OffloadPlan, NglSemantics) {
  OffloadPlan p = OffloadPlan::last_n_layers(28, 0);
  EXPECT_FALSE(p.any_gpu());
  p = OffloadPlan::last_n_layers(28, 1);
  EXPECT_EQ(p.n_gpu_layers(), 1);
  EXPECT_TRUE(p.layer_on_gpu[27]);
  EXPECT_FALSE(p.layer_on_gpu[26]);
  EXPECT_TRUE(p.head_on_gpu);
  EXPECT_FALSE(p.embedding_on_gpu);
  p = OffloadPlan::last_n_layers(28, 28);
  EXPECT_EQ(p.n_gpu_layers(), 28);
  EXPECT_FALSE(p.embedding_on_gpu);
  p = OffloadPlan::last_n_layers(28, 99);
  EXPECT_EQ(p.n_gpu_layers(), 28);
  EXPECT_TRUE(p.embedding_on_gpu);
  EXPECT_EQ(p.describe(), "GPU: embedding, layers 0-27, output head; CPU: nothing");
  EXPECT_EQ(OffloadPlan::last_n_layers(28, 8).describe(), "GPU: layers 20-27, output head; CPU: embedding, layers 0-19");
  EXPECT_THROW(OffloadPlan::last_n_layers(28, -1), Error);
}

TEST(OffloadPlan, LayerLists) {
  const OffloadPlan p = OffloadPlan::from_layer_list(28, "0-3,10,20-21", false, true);
  EXPECT_EQ(p.n_gpu_layers(), 7);
  EXPECT_EQ(p.describe(), "GPU: layers 0-3,10,20-21, output head; CPU: embedding, layers 4-9,11-19,22-27");
  for (const char* bad : {"28", "3-1", "x", "1-", "-2", "4-27x"}) {
    try {
      OffloadPlan::from_layer_list(28, bad, false, false);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr("--layers-gpu")) << bad;
    }
  }
}

class OffloadMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.n_layer = 8;
    spec.n_embd = 128;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 32;
    spec.n_ff = 256;
    spec.n_vocab = 1000;
    spec.weight_type = GgmlType::F16;
    write_synthetic_model(spec, dir_.file("m.gguf"));
    model_ = Model::load(dir_.file("m.gguf"));
  }
  test::ScratchDir dir_;
  std::unique_ptr<Model> model_;
  RunShape shape_{.n_ctx = 256, .n_batch = 32, .kv_type = GgmlType::F16};
};

TEST_F(OffloadMemory, WeightsAddUpAndTiedEmbeddingIsCountedOncePerDevice) {
  const MemoryEstimate none = estimate_memory(*model_, OffloadPlan::last_n_layers(8, 0), shape_);
  EXPECT_EQ(none.gpu.total(), 0u);
  EXPECT_EQ(none.cpu.weight_bytes, model_->weight_bytes());
  const MemoryEstimate all = estimate_memory(*model_, OffloadPlan::last_n_layers(8, 99), shape_);
  EXPECT_EQ(all.cpu.total(), 0u);
  EXPECT_EQ(all.gpu.weight_bytes, model_->weight_bytes());  // token_embd serves lookup and head once
  // Head on the GPU, lookup on the CPU: the tied matrix is on each device once.
  const MemoryEstimate split = estimate_memory(*model_, OffloadPlan::last_n_layers(8, 4), shape_);
  const uint64_t embd = model_->weights().token_embd->n_bytes;
  EXPECT_EQ(split.cpu.weight_bytes + split.gpu.weight_bytes, model_->weight_bytes() + embd);
  // KV: 2 (k, v) × n_ctx × kv_dim × 2 bytes per layer, 4 layers each side.
  EXPECT_EQ(split.gpu.kv_bytes, 4u * 2u * 256u * 64u * 2u);
  EXPECT_EQ(split.cpu.kv_bytes, split.gpu.kv_bytes);
}

TEST_F(OffloadMemory, AutoFitsACappedDeviceAndRefusalNamesTheLimit) {
  const MemoryEstimate all = estimate_memory(*model_, OffloadPlan::last_n_layers(8, 99), shape_);
  DeviceBudget big{"big", all.gpu.total() * 2, all.gpu.total()};
  EXPECT_EQ(auto_gpu_layers(*model_, shape_, big), 9);  // everything, embedding included
  EXPECT_NO_THROW(check_fits(all, big));

  const MemoryEstimate half = estimate_memory(*model_, OffloadPlan::last_n_layers(8, 4), shape_);
  DeviceBudget small{"small", half.gpu.total() + 1, half.gpu.total()};
  EXPECT_EQ(auto_gpu_layers(*model_, shape_, small), 4);
  try {
    check_fits(all, small);
    FAIL() << "plan larger than the device was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("but the device offers"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("small"));
  }
  DeviceBudget tiny{"tiny", 1024, 1024};
  EXPECT_EQ(auto_gpu_layers(*model_, shape_, tiny), 0);

  const uint64_t cap = cli::parse_environment({{"XELM_DEVICE_MEMORY_MB", "1"}}).device_memory_cap_bytes;
  const DeviceBudget capped = apply_memory_cap(DeviceBudget{"gpu", 8ull << 30, 4ull << 30}, cap);
  EXPECT_EQ(capped.memory_bytes, 1u << 20);
  EXPECT_THAT(capped.name, HasSubstr("XELM_DEVICE_MEMORY_MB"));
}

}  // namespace
}  // namespace xelm
