// common.cuh - helpers shared by the vidrestore CUDA kernels.
//
// Rules for every .cu in engines/kernels/ (they are compiled two ways: nvcc -fatbin by CMake, and
// NVRTC at run time through CuPy when no matching fatbin loads):
//   * no includes except this header (engines/kernels.py pastes it in place of the #include line
//     before NVRTC sees the source), no host code, no templates exported: every entry point is an
//     extern "C" __global__ function with a fixed name that engines/kernels.py looks up;
//   * FP16 data is passed as raw 16-bit words (unsigned short) and converted with the two PTX
//     instructions below, so cuda_fp16.h (not always visible to NVRTC) is never needed;
//   * all arithmetic is FP32; FP16 values are rounded once, on store (round to nearest even).
#pragma once

typedef unsigned short half_bits;   // IEEE binary16 bit pattern (torch.float16 storage)
typedef unsigned char u8;

#ifndef VIDRESTORE_KERNEL_EMULATION
__device__ __forceinline__ float h2f(half_bits h) {
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_bits f2h(float f) {
    half_bits h;
    asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
    return h;
}
#else  // CPU emulation used by the tests (tests/support/cuda_emu.h supplies these)
__device__ __forceinline__ float h2f(half_bits h) { return emu_h2f(h); }
__device__ __forceinline__ half_bits f2h(float f) { return emu_f2h(f); }
#endif

// Load/store one element of a float or binary16 buffer as float.
__device__ __forceinline__ float load_f(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_f(const half_bits* p, long long i) { return h2f(p[i]); }
__device__ __forceinline__ void store_f(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(half_bits* p, long long i, float v) { p[i] = f2h(v); }

// Four consecutive elements starting at p + 4*i4 (16-byte / 8-byte aligned: the wrapper checks the
// base pointer alignment and that every row length is a multiple of 4).
struct f4 { float a, b, c, d; };

__device__ __forceinline__ f4 load4(const float* p, long long i4) {
    float4 v = reinterpret_cast<const float4*>(p)[i4];
    f4 r = {v.x, v.y, v.z, v.w};
    return r;
}
__device__ __forceinline__ f4 load4(const half_bits* p, long long i4) {
    ushort4 v = reinterpret_cast<const ushort4*>(p)[i4];
    f4 r = {h2f(v.x), h2f(v.y), h2f(v.z), h2f(v.w)};
    return r;
}
__device__ __forceinline__ void store4(float* p, long long i4, f4 v) {
    reinterpret_cast<float4*>(p)[i4] = make_float4(v.a, v.b, v.c, v.d);
}
__device__ __forceinline__ void store4(half_bits* p, long long i4, f4 v) {
    ushort4 o;
    o.x = f2h(v.a); o.y = f2h(v.b); o.z = f2h(v.c); o.w = f2h(v.d);
    reinterpret_cast<ushort4*>(p)[i4] = o;
}

__device__ __forceinline__ long long grid_stride_start() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride_step() {
    return (long long)gridDim.x * blockDim.x;
}

__device__ __forceinline__ float clampf(float v, float lo, float hi) {
    return fminf(fmaxf(v, lo), hi);
}

// Round to nearest (ties to even, like torch.round) and clamp to [0, 255].
__device__ __forceinline__ u8 to_u8(float v) {
    return (u8)__float2int_rn(clampf(v, 0.0f, 255.0f));
}
