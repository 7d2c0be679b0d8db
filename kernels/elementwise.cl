// elementwise.cl — element-wise ops on f32 activations of n elements. global = (n).

// x += y
kernel void kernel_add_f32(global float* x, global const float* y) {
  const size_t i = get_global_id(0);
  x[i] += y[i];
}

// out = silu(gate) * up; out may alias gate.
kernel void kernel_swiglu_f32(global const float* gate, global const float* up, global float* out) {
  const size_t i = get_global_id(0);
  const float g = gate[i];
  out[i] = g / (1.0f + exp(-g)) * up[i];
}
