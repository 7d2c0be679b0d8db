// gemm_path.cpp — the prefill GEMM path: dequantize + CLBlast SGEMM (see gemm_path.h).
#include "host/gemm_path.h"

#include <algorithm>
#include <exception>
#include <string>

#include <clblast.h>
#include <spdlog/spdlog.h>

namespace xelm::opencl {

// W is dequantized into scratch_ a block of rows at a time (gemm_scratch_mb and the max allocation
// bound the block) and multiplied by CLBlast's SGEMM (row major: C[tokens, rows] = A[tokens, in]
// B[rows, in]^T, written straight into y's columns of the block); the bias is added last.
bool GemmPath::matmul(ClQueue& q, const KernelTuning& tuning, const ClWeight& w, const Activation& x, Activation& y,
                      const Weight* bias) {
  const int64_t n_in = w.in_features(), n_out = y.cols(), n_tok = x.rows();
  const uint64_t row_floats_bytes = static_cast<uint64_t>(n_in) * sizeof(float);
  const uint64_t budget = std::min<uint64_t>(static_cast<uint64_t>(tuning.gemm_scratch_mb) * kMiB, q.max_alloc());
  int64_t max_piece_rows = 0;
  for (const ClWeight::Piece& p : w.pieces) max_piece_rows = std::max(max_piece_rows, p.rows);
  const int64_t block_rows = std::clamp<int64_t>(static_cast<int64_t>(budget / row_floats_bytes), 1, max_piece_rows);
  const uint64_t scratch_bytes = static_cast<uint64_t>(block_rows) * row_floats_bytes;
  const cl::Buffer& scratch = q.reserve(scratch_, scratch_bytes, "GEMM weight scratch");
  const std::string dequant = "kernel_dequant_" + kernel_type_name(w.type()) + "_f32";
  const size_t chunks = static_cast<size_t>(n_in / chunk_elements(w.type()));
  for (const ClWeight::Piece& p : w.pieces) {
    for (int64_t r0 = 0; r0 < p.rows; r0 += block_rows) {
      const int64_t nr = std::min(block_rows, p.rows - r0);
      q.launch(dequant, cl::NDRange(chunks, static_cast<size_t>(nr)), cl::NullRange, p.buffer, cl_ulong{p.offset},
               cl_ulong{w.row_bytes}, cl_int(n_in), cl_int(r0), scratch);
      clblast::StatusCode status = clblast::StatusCode::kSuccess;
      q.enqueue("CLBlast GEMM", [&](cl::CommandQueue& command_queue) {
        try {
          cl_command_queue queue = command_queue();
          const auto m = static_cast<size_t>(n_tok), n = static_cast<size_t>(nr), k = static_cast<size_t>(n_in);
          const auto c_offset = static_cast<size_t>(p.row0 + r0), c_ld = static_cast<size_t>(n_out);
          // CLBlast's padded copies of A/B go to one buffer of ours: left to itself it allocates
          // them per call, and with a whole prompt's GEMMs queued they all stay alive at once.
          size_t temp_bytes = 0;
          status = clblast::GemmTempBufferSize<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                                      clblast::Transpose::kYes, m, n, k, 0, k, 0, k, c_offset, c_ld,
                                                      &queue, temp_bytes);
          if (status == clblast::StatusCode::kSuccess) {
            const cl_mem temp = temp_bytes > 0 ? q.reserve(temp_, temp_bytes, "CLBlast GEMM temporary")() : nullptr;
            status = clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kYes,
                                          m, n, k, 1.0f, buf(x)(), 0, k, scratch(), 0, k, 0.0f, buf(y)(), c_offset,
                                          c_ld, &queue, q.profiler().raw_event("clblast_sgemm"), temp);
          }
        } catch (const std::exception& e) {
          spdlog::debug("CLBlast GEMM threw: {}", e.what());
          status = clblast::StatusCode::kUnknownError;
        }
      });
      if (fault_) status = clblast::StatusCode::kOpenCLBuildProgramFailure;
      if (status != clblast::StatusCode::kSuccess) {
        spdlog::warn("OpenCL: CLBlast GEMM failed on {} (status {}); prefill uses xelm's matmul kernels", q.info().name,
                     static_cast<int>(status));
        min_tokens_ = 0;
        return false;
      }
      ++q.counters().gemm_calls;
    }
  }
  if (bias != nullptr) {
    q.launch("kernel_add_bias_f32", cl::NDRange(static_cast<size_t>(n_out), static_cast<size_t>(n_tok)), cl::NullRange,
             buf(y), wt(*bias).dense, cl_int(n_out), cl_int(0));
  }
  return true;
}

}  // namespace xelm::opencl
