// gemm_path.h — the prefill GEMM path of the OpenCL backend: a product of many activation rows
// (at least min_tokens) dequantizes the weight into an f32 scratch matrix a block of rows at a time
// (kernels/gemm.cl) and multiplies it with CLBlast's SGEMM. CLBlast is optional at run time: the
// first call that fails switches the path off with one warning.
#pragma once

#include <cstdint>

#include "host/build_options.h"
#include "host/cl_queue.h"

namespace xelm::opencl {

class GemmPath {
 public:
  // min_tokens: activation rows from which the path is taken (0 = never); fault_for_testing: every
  // CLBlast call reports failure.
  GemmPath(int min_tokens, bool fault_for_testing) : min_tokens_(min_tokens), fault_(fault_for_testing) {}

  int min_tokens() const { return min_tokens_; }  // 0: off, or CLBlast failed on this device
  bool applies(int64_t activation_rows) const { return min_tokens_ > 0 && activation_rows >= min_tokens_; }

  // y = x W^T (+ bias). Returns false when CLBlast fails: the path is then off, and the caller's
  // kernel recomputes every output.
  bool matmul(ClQueue& q, const KernelTuning& tuning, const ClWeight& w, const Activation& x, Activation& y,
              const Weight* bias);

 private:
  int min_tokens_;
  bool fault_;
  GrowingBuffer scratch_;  // dequantized weight rows, f32
  GrowingBuffer temp_;     // CLBlast's temporary matrices (GemmTempBufferSize), reused by every GEMM
};

}  // namespace xelm::opencl
