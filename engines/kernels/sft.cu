// sft.cu - CS-SFT (channel-split spatial feature transform) of GFP-GAN, in place.
//
// With sft_half the FIRST half of the channels passes unchanged and the SECOND half becomes
// x * scale + shift (scale as is, not 1 + scale):
//     x[b, Ch + c, h, w] = x[b, Ch + c, h, w] * scale[b, c, h, w] + shift[b, c, h, w],  Ch = C / 2
// computed in FP32 (one fused multiply-add), rounded once to the storage type.
//
// sft_half_f32 / sft_half_f16(T* x, const T* scale, const T* shift, long long half_len, long long n)
// sft_half_vec4_f32 / _f16    (same arguments; half_len multiple of 4 and pointers aligned)
//     x (B, C, H, W) contiguous, C even; scale, shift (B, C/2, H, W) contiguous, same dtype as x.
//     half_len = (C/2)*H*W (elements of one half of one image), n = B*half_len.
//     Element j of scale/shift (b = j / half_len, r = j % half_len) updates
//     x[b*2*half_len + half_len + r].
//     block = (256,1,1); grid = (min(ceil(n/V/256), 65535), 1, 1) grid-stride; V = 1 or 4.

#include "common.cuh"

template <typename T>
__device__ __forceinline__ void sft_impl(T* x, const T* __restrict__ scale, const T* __restrict__ shift,
                                         long long half_len, long long n) {
    for (long long j = grid_stride_start(); j < n; j += grid_stride_step()) {
        const long long b = j / half_len;
        const long long xi = j + (b + 1) * half_len;  // b*2*half_len + half_len + (j - b*half_len)
        store_f(x, xi, fmaf(load_f(x, xi), load_f(scale, j), load_f(shift, j)));
    }
}

template <typename T>
__device__ __forceinline__ void sft_vec4_impl(T* x, const T* __restrict__ scale,
                                              const T* __restrict__ shift, long long half_len,
                                              long long n) {
    const long long n4 = n >> 2;
    const long long half4 = half_len >> 2;
    for (long long j4 = grid_stride_start(); j4 < n4; j4 += grid_stride_step()) {
        const long long b = j4 / half4;
        const long long x4 = j4 + (b + 1) * half4;
        f4 v = load4(x, x4);
        const f4 sc = load4(scale, j4);
        const f4 sh = load4(shift, j4);
        v.a = fmaf(v.a, sc.a, sh.a);
        v.b = fmaf(v.b, sc.b, sh.b);
        v.c = fmaf(v.c, sc.c, sh.c);
        v.d = fmaf(v.d, sc.d, sh.d);
        store4(x, x4, v);
    }
}

extern "C" __global__ void sft_half_f32(float* x, const float* scale, const float* shift,
                                        long long half_len, long long n) {
    sft_impl<float>(x, scale, shift, half_len, n);
}
extern "C" __global__ void sft_half_f16(half_bits* x, const half_bits* scale, const half_bits* shift,
                                        long long half_len, long long n) {
    sft_impl<half_bits>(x, scale, shift, half_len, n);
}
extern "C" __global__ void sft_half_vec4_f32(float* x, const float* scale, const float* shift,
                                             long long half_len, long long n) {
    sft_vec4_impl<float>(x, scale, shift, half_len, n);
}
extern "C" __global__ void sft_half_vec4_f16(half_bits* x, const half_bits* scale,
                                             const half_bits* shift, long long half_len, long long n) {
    sft_vec4_impl<half_bits>(x, scale, shift, half_len, n);
}
