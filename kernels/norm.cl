// norm.cl — RMS normalisation times a weight, over whole rows or over each group of `group` columns
// (qwen3's per-head q/k norm). out may alias x: every item rewrites only the elements it read.
//   global = (NORM_WG * n_cols / group, n_rows), local = (NORM_WG, 1): one work-group per group.
// Shapes: x, out [n_rows, n_cols] f32; weight [group] f32.

kernel void kernel_rms_norm_f32(global const float* x, global const float* weight, global float* out, int n_cols,
                                int group, float eps) {
  local float scratch[NORM_WG];
  const int g = get_group_id(0);
  const int lid = get_local_id(0);
  const ulong base = (ulong)get_global_id(1) * (ulong)n_cols + (ulong)g * (ulong)group;
  float sum_sq = 0.0f;
  for (int i = lid; i < group; i += NORM_WG) sum_sq += x[base + i] * x[base + i];
  sum_sq = work_group_sum(sum_sq, scratch, lid, NORM_WG);
  const float scale = 1.0f / sqrt(sum_sq / (float)group + eps);
  for (int i = lid; i < group; i += NORM_WG) out[base + i] = x[base + i] * scale * weight[i];
}

// Fused residual add and norm (the forward pass's `x += proj; h = rms_norm(x)`): x += y, then
// out = rms_norm(x) * weight. Same decomposition as kernel_rms_norm_f32; out must not alias x.
kernel void kernel_add_rms_norm_f32(global float* x, global const float* y, global const float* weight,
                                    global float* out, int n_cols, int group, float eps) {
  local float scratch[NORM_WG];
  const int g = get_group_id(0);
  const int lid = get_local_id(0);
  const ulong base = (ulong)get_global_id(1) * (ulong)n_cols + (ulong)g * (ulong)group;
  float sum_sq = 0.0f;
  for (int i = lid; i < group; i += NORM_WG) {
    const float v = x[base + i] + y[base + i];
    x[base + i] = v;
    sum_sq += v * v;
  }
  sum_sq = work_group_sum(sum_sq, scratch, lid, NORM_WG);
  const float scale = 1.0f / sqrt(sum_sq / (float)group + eps);
  for (int i = lid; i < group; i += NORM_WG) out[base + i] = x[base + i] * scale * weight[i];
}
