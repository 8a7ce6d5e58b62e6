// cuda_emu.h - run the CUDA kernels of engines/kernels/*.cu on the CPU, one thread at a time.
//
// Compiled with: g++ -O1 -shared -fPIC -std=c++17 -DVIDRESTORE_KERNEL_EMULATION -include cuda_emu.h
//                    -x c++ engines/kernels/<name>.cu
// tests/support/cuda_emu.py sets the thread/block indices with emu_set_thread() and calls each
// extern "C" kernel once per thread. Threads of a block run in DESCENDING linear order, which makes
// __shfl_down_sync exact: a lane reads the value that lane + delta (already finished) deposited at
// the same shuffle round. __syncthreads and shared memory are not supported (no kernel uses them).
#pragma once
#include <algorithm>
#include <cmath>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

struct emu_uint3 { unsigned int x, y, z; };
static emu_uint3 threadIdx, blockIdx, blockDim, gridDim;
static int emu_round;                  // shuffle round of the running thread
static float emu_shfl_table[32][64];   // [lane][round] value deposited by that lane

extern "C" void emu_set_thread(unsigned tx, unsigned ty, unsigned tz, unsigned bx, unsigned by, unsigned bz,
                               unsigned bdx, unsigned bdy, unsigned bdz, unsigned gdx, unsigned gdy,
                               unsigned gdz) {
    threadIdx = {tx, ty, tz}; blockIdx = {bx, by, bz};
    blockDim = {bdx, bdy, bdz}; gridDim = {gdx, gdy, gdz};
    emu_round = 0;
}

static inline float __shfl_down_sync(unsigned, float v, int delta) {
    const unsigned lin = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned lane = lin & 31u;
    const int r = emu_round++;
    emu_shfl_table[lane][r] = v;
    return lane + delta < 32u ? emu_shfl_table[lane + delta][r] : v;
}

static inline float emu_h2f(unsigned short h) { _Float16 x; __builtin_memcpy(&x, &h, 2); return (float)x; }
static inline unsigned short emu_f2h(float f) {
    _Float16 x = (_Float16)f; unsigned short h; __builtin_memcpy(&h, &x, 2); return h;
}
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

struct float4 { float x, y, z, w; };
struct ushort4 { unsigned short x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
