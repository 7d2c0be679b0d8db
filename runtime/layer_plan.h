// layer_plan.h — layer surgery as data: which source layers a model runs, in which order. A plan is
// parsed once from text ("delete 10; swap 11,12; duplicate 5; interpolate 7,8; layers 0-9,11") and
// applied in one place, the model loader (runtime/model.h), which binds logical layer i to the
// source tensors the plan names; the forward pass is unchanged. `xelm surgery` writes the same plan
// into a GGUF file (runtime/surgery.h).
//
// Operations compose in the order given; every index refers to the layers as they are after the
// previous operations (what the user sees at that step):
//   delete K          remove layer K
//   swap A,B          exchange layers A and B
//   duplicate K       insert a copy of layer K right after it
//   interpolate A,B[,T]  insert after A a layer whose weights are (1-T)·A + T·B (T default 0.5)
//   layers LIST       keep exactly these layers in this order, e.g. 0-9,11,12,12 (repeats allowed)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/gguf.h"

namespace xelm {

// One logical layer: a weighted sum of source layers; one term of weight 1 is a plain source layer.
struct LayerMix {
  std::vector<std::pair<int64_t, float>> terms;  // (source layer, weight), sorted by source layer

  bool is_plain() const { return terms.size() == 1 && terms[0].second == 1.0f; }
  int64_t source() const { return terms[0].first; }  // the first (for a plain layer, the only) source
  std::string describe() const;                      // "7" or "0.5*7+0.5*8"
};

struct LayerPlan {
  int64_t n_source = 0;          // layers of the source model
  std::vector<LayerMix> layers;  // the logical layers, in order
  std::string operations;        // the operations applied, normalized ("delete 10; swap 11,12")

  static LayerPlan identity(int64_t n_source);
  // Parses and applies `text` to the identity plan of n_source layers. Throws xelm::Error with one
  // line naming the operation at fault (unknown verb, bad number, index out of range, no layers left).
  static LayerPlan parse(std::string_view text, int64_t n_source);

  int64_t size() const { return static_cast<int64_t>(layers.size()); }
  bool is_identity() const;
  bool has_mixes() const;          // any interpolated layer (needs requantized tensors)
  std::string describe() const;    // the logical layers: "0,1,3,2,0.5*7+0.5*8"
};

// A tensor that exists only in memory: a mix of source tensors, owned with its bytes.
struct OwnedTensor {
  gguf::TensorInfo info;  // info.data points into `bytes`
  std::vector<uint8_t> bytes;
};

// sum_i w_i · tensor_i, computed in F32 row by row (dequantize, mix, requantize) and stored in the
// first term's type (F32 when that type cannot be quantized to). All terms must have one shape.
// `name` is the new tensor's name. Throws xelm::Error on a shape mismatch.
OwnedTensor mix_tensors(const std::vector<std::pair<const gguf::TensorInfo*, float>>& terms, std::string name);

}  // namespace xelm
