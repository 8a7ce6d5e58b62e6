// modconv.cu - modulated convolution support for the StyleGAN2 decoder of GFP-GAN.
//
// The model computes a styled conv as input modulation around an ordinary shared convolution
// (DESIGN.md, "Backends and engines"):
//     xm     = x * s[b, i]                               (modulate_input)
//     y      = conv2d(xm, W, padding=k//2)               (cuDNN / TensorRT, not here)
//     demod  = rsqrt(sum_i s[b,i]^2 * wsq[o,i] + eps)    (style_demod, FP32 always)
//     y      = lrelu(y*demod[b,o]*gain + strength*noise[h,w] + bias[o], 0.2)   (modconv_epilogue)
// which equals the authors' StyleConv: modulated conv (incl. demodulation) times sqrt(2), plus
// strength*noise, plus bias, then LeakyReLU(0.2). ToRGB uses the epilogue with no demod, gain 1,
// no noise, no activation.
//
// Kernels (suffix _f32 = float32 data, _f16 = float16 data passed as 16-bit words):
//
// style_demod_f32 / style_demod_f16(const T* s, const float* wsq, float* demod,
//                                   int B, int Cin, int Cout, float eps)
//     s (B, Cin) contiguous, wsq (Cout, Cin) float32 contiguous (wsq[o,i] = sum_kk W[o,i,kh,kw]^2),
//     demod (B, Cout) float32 out.
//     block = (256,1,1) = 8 warps, one output channel o per warp; grid = (ceil(Cout/8), B, 1).
//     Each lane sums a strided slice of i in FP32, then a shuffle reduction; lane 0 writes.
//
// modulate_input_f32 / modulate_input_f16(const T* x, const float* s, T* out,
//                                         long long HW, long long n)
// modulate_input_vec4_f32 / _f16 (same arguments; n and HW multiples of 4, pointers aligned)
//     x, out (B, Cin, H, W) contiguous (out may equal x), s (B, Cin) float32, n = B*Cin*H*W.
//     out[r, p] = x[r, p] * s[r] with r = b*Cin + i the row index.
//     block = (256,1,1); grid = (min(ceil(n/V/256), 65535), 1, 1) grid-stride; V = 1 or 4.
//
// modconv_epilogue_f32 / modconv_epilogue_f16(T* y, const float* demod, const float* bias,
//     const float* noise, float strength, float gain, float slope, int activate,
//     int C, long long HW, long long n)
// modconv_epilogue_vec4_f32 / _f16 (same arguments; HW multiple of 4, y aligned)
//     y (B, C, H, W) contiguous, modified in place; demod (B, C) float32 or NULL (= 1);
//     bias (C,) float32 or NULL (= 0); noise (H, W) float32 or NULL (= 0), shared by batch and
//     channels; n = B*C*H*W. v = y*demod*gain; v = v + strength*noise; v = v + bias;
//     if activate: v = v >= 0 ? v : v*slope. Launch as modulate_input.

#include "common.cuh"

template <typename T>
__device__ __forceinline__ void style_demod_impl(const T* __restrict__ s, const float* __restrict__ wsq,
                                                 float* __restrict__ demod, int B, int Cin, int Cout,
                                                 float eps) {
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int o = blockIdx.x * (blockDim.x >> 5) + warp;
    const int b = blockIdx.y;
    if (o >= Cout || b >= B) return;  // whole warp leaves together
    const T* srow = s + (long long)b * Cin;
    const float* wrow = wsq + (long long)o * Cin;
    float acc = 0.0f;
    for (int i = lane; i < Cin; i += 32) {
        const float si = load_f(srow, i);
        acc = fmaf(si * si, wrow[i], acc);
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) demod[(long long)b * Cout + o] = rsqrtf(acc + eps);
}

extern "C" __global__ void style_demod_f32(const float* s, const float* wsq, float* demod,
                                           int B, int Cin, int Cout, float eps) {
    style_demod_impl<float>(s, wsq, demod, B, Cin, Cout, eps);
}
extern "C" __global__ void style_demod_f16(const half_bits* s, const float* wsq, float* demod,
                                           int B, int Cin, int Cout, float eps) {
    style_demod_impl<half_bits>(s, wsq, demod, B, Cin, Cout, eps);
}

// ---------------------------------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ void modulate_impl(const T* x, const float* __restrict__ s,
                                              T* out, long long HW, long long n) {
    for (long long i = grid_stride_start(); i < n; i += grid_stride_step()) {
        store_f(out, i, load_f(x, i) * s[i / HW]);
    }
}

template <typename T>
__device__ __forceinline__ void modulate_vec4_impl(const T* x, const float* __restrict__ s, T* out,
                                                   long long HW, long long n) {
    const long long n4 = n >> 2;
    for (long long i4 = grid_stride_start(); i4 < n4; i4 += grid_stride_step()) {
        const float sc = s[(i4 << 2) / HW];  // HW % 4 == 0: the 4 elements share one row
        f4 v = load4(x, i4);
        v.a *= sc; v.b *= sc; v.c *= sc; v.d *= sc;
        store4(out, i4, v);
    }
}

extern "C" __global__ void modulate_input_f32(const float* x, const float* s, float* out,
                                              long long HW, long long n) {
    modulate_impl<float>(x, s, out, HW, n);
}
extern "C" __global__ void modulate_input_f16(const half_bits* x, const float* s, half_bits* out,
                                              long long HW, long long n) {
    modulate_impl<half_bits>(x, s, out, HW, n);
}
extern "C" __global__ void modulate_input_vec4_f32(const float* x, const float* s, float* out,
                                                   long long HW, long long n) {
    modulate_vec4_impl<float>(x, s, out, HW, n);
}
extern "C" __global__ void modulate_input_vec4_f16(const half_bits* x, const float* s, half_bits* out,
                                                   long long HW, long long n) {
    modulate_vec4_impl<half_bits>(x, s, out, HW, n);
}

// ---------------------------------------------------------------------------------------------
struct EpilogueArgs {
    const float* demod;
    const float* bias;
    const float* noise;
    float strength, gain, slope;
    int activate, C;
    long long HW;
};

__device__ __forceinline__ float epilogue_one(float y, float dm, float bs, const EpilogueArgs& a,
                                              long long p) {
    float v = y * dm * a.gain;
    if (a.noise != nullptr) v = v + a.strength * a.noise[p];
    v = v + bs;
    if (a.activate && v < 0.0f) v = v * a.slope;
    return v;
}

template <typename T>
__device__ __forceinline__ void epilogue_impl(T* y, const EpilogueArgs a, long long n) {
    for (long long i = grid_stride_start(); i < n; i += grid_stride_step()) {
        const long long row = i / a.HW;  // b*C + o
        const long long p = i - row * a.HW;
        const float dm = a.demod != nullptr ? a.demod[row] : 1.0f;
        const float bs = a.bias != nullptr ? a.bias[row % a.C] : 0.0f;
        store_f(y, i, epilogue_one(load_f(y, i), dm, bs, a, p));
    }
}

template <typename T>
__device__ __forceinline__ void epilogue_vec4_impl(T* y, const EpilogueArgs a, long long n) {
    const long long n4 = n >> 2;
    for (long long i4 = grid_stride_start(); i4 < n4; i4 += grid_stride_step()) {
        const long long i = i4 << 2;
        const long long row = i / a.HW;
        const long long p = i - row * a.HW;
        const float dm = a.demod != nullptr ? a.demod[row] : 1.0f;
        const float bs = a.bias != nullptr ? a.bias[row % a.C] : 0.0f;
        f4 v = load4(y, i4);
        v.a = epilogue_one(v.a, dm, bs, a, p);
        v.b = epilogue_one(v.b, dm, bs, a, p + 1);
        v.c = epilogue_one(v.c, dm, bs, a, p + 2);
        v.d = epilogue_one(v.d, dm, bs, a, p + 3);
        store4(y, i4, v);
    }
}

#define EPILOGUE_ENTRY(NAME, T, IMPL)                                                            \
    extern "C" __global__ void NAME(T* y, const float* demod, const float* bias,                 \
                                    const float* noise, float strength, float gain, float slope, \
                                    int activate, int C, long long HW, long long n) {            \
        EpilogueArgs a;                                                                          \
        a.demod = demod; a.bias = bias; a.noise = noise;                                         \
        a.strength = strength; a.gain = gain; a.slope = slope;                                   \
        a.activate = activate; a.C = C; a.HW = HW;                                               \
        IMPL<T>(y, a, n);                                                                        \
    }

EPILOGUE_ENTRY(modconv_epilogue_f32, float, epilogue_impl)
EPILOGUE_ENTRY(modconv_epilogue_f16, half_bits, epilogue_impl)
EPILOGUE_ENTRY(modconv_epilogue_vec4_f32, float, epilogue_vec4_impl)
EPILOGUE_ENTRY(modconv_epilogue_vec4_f16, half_bits, epilogue_vec4_impl)
