// kv_cache.cl — writes rows of k and v into a layer's KV cache pool, stored as F32, F16 (vstore_half,
// round to nearest even) or Q8_0 (ggml's reference rounding: d = amax / 127, q = round(x / d)).
// (quantize_block_q8_0 is in common.cl, shared with fused.cl.)
// Caches are [n_ctx, width] elements of the storage type; row t of k/v [n, width] f32 lands in cache
// row slots[t] (the batch's slots part, kernel_abi.h; batch [KV_BATCH_INTS(n, .)] int).

// global = (width, n)
kernel void kernel_store_kv_f32(global const float* k, global const float* v, global float* k_cache,
                                global float* v_cache, int width, global const int* batch) {
  const int i = get_global_id(0), t = get_global_id(1);
  const int slot = batch[KV_BATCH_SLOTS(get_global_size(1)) + t];
  const ulong src = (ulong)t * (ulong)width + i, dst = (ulong)slot * (ulong)width + i;
  k_cache[dst] = k[src];
  v_cache[dst] = v[src];
}

// global = (width, n)
kernel void kernel_store_kv_f16(global const float* k, global const float* v, global half* k_cache,
                                global half* v_cache, int width, global const int* batch) {
  const int i = get_global_id(0), t = get_global_id(1);
  const int slot = batch[KV_BATCH_SLOTS(get_global_size(1)) + t];
  const ulong src = (ulong)t * (ulong)width + i, dst = (ulong)slot * (ulong)width + i;
  vstore_half(k[src], dst, k_cache);
  vstore_half(v[src], dst, v_cache);
}

// global = (width / 32, n): one item per 32-element block.
kernel void kernel_store_kv_q8_0(global const float* k, global const float* v, global uchar* k_cache,
                                 global uchar* v_cache, int width, global const int* batch) {
  const int b = get_global_id(0), t = get_global_id(1);
  const int slot = batch[KV_BATCH_SLOTS(get_global_size(1)) + t];
  const ulong src = (ulong)t * (ulong)width + (ulong)b * 32u;
  const ulong dst = ((ulong)slot * (ulong)(width / 32) + b) * 34u;
  quantize_block_q8_0(k + src, k_cache + dst);
  quantize_block_q8_0(v + src, v_cache + dst);
}
