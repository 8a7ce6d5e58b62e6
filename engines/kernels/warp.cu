// warp.cu - frame <-> face-crop image work: affine crop warps, paste-back, NV12 <-> RGB.
//
// Conventions (engines/kernels_reference.py implements exactly the same, in torch):
//   * Pixel centres sit at integer coordinates (OpenCV's convention). A 2x3 matrix A maps
//     destination pixel (x, y) to the source point (A00 x + A01 y + A02, A10 x + A11 y + A12),
//     i.e. cv2.warpAffine(..., flags=INTER_LINEAR | WARP_INVERSE_MAP) semantics.
//   * Bilinear sampling of the 4 taps floor(sx)+{0,1} x floor(sy)+{0,1}. A tap outside the source
//     is the constant border value (border = 0, BORDER_CONSTANT) or the nearest edge pixel
//     (border = 1, BORDER_REPLICATE), decided tap by tap, as cv2 does.
//   * Colour: limited-range Y'CbCr, BT.601 (bt709 = 0) or BT.709 (bt709 = 1); chroma of NV12 is
//     shared by each 2x2 pixel block (nearest chroma upsampling, as cv2.COLOR_YUV2RGB_NV12).
//     NV12 -> RGB rounds every pixel to uint8 before any bilinear sampling, so sampling an NV12
//     frame equals converting it with nv12_to_rgb and sampling the RGB result.
//   * Frames are uint8 with a row pitch in bytes (rows may be padded); RGB frames are (H, W, 3)
//     interleaved, channel order is kept (RGB in -> RGB crops; BGR in -> BGR crops).
//
// Kernels:
// warp_rgb_f32 / warp_rgb_f16(const u8* frame, long long pitch, int H, int W, const float* mats,
//                             T* out, int K, int S, int border, float bv0, float bv1, float bv2)
// warp_nv12_f32 / warp_nv12_f16(const u8* y, long long y_pitch, const u8* uv, long long uv_pitch,
//                               int H, int W, int bt709, const float* mats, T* out, int K, int S,
//                               int border, float bv0, float bv1, float bv2)
//     mats (K, 2, 3) float32 contiguous: crop pixel -> frame pixel (the INVERSE of the alignment
//     matrix that maps the frame onto the crop). out (K, 3, S, S) contiguous, value v/127.5 - 1 of
//     the bilinear sample v in [0, 255]. (bv0, bv1, bv2): constant border colour in 0..255.
//     NV12: y plane H rows of W bytes, uv plane H/2 rows of W/2 (u, v) byte pairs; H, W even.
//     block = (32, 8, 1); grid = (ceil(S/32), ceil(S/8), K).
//
// paste_f32 / paste_f16(u8* frame, long long pitch, int H, int W, const T* crop, int S,
//                       const float* mask, float a00, float a01, float a02, float a10, float a11,
//                       float a12, float strength, int x0, int y0, int x1, int y1)
//     One restored crop (3, S, S) in [-1, 1] (values outside are clamped tap by tap), a feather mask
//     (S, S) float32 in [0, 1], the frame -> crop matrix a (the alignment matrix itself). For each
//     frame pixel in the box [x0, x1) x [y0, y1): sample crop colour c = (clamp(crop) + 1) * 127.5
//     and mask m bilinearly with constant-0 border, alpha = strength * m, and
//     frame = round(frame + alpha * (c - frame)) clamped to 0..255; alpha == 0 leaves the pixel.
//     The host passes the box that contains every frame pixel whose crop point lies in
//     (-1, S) x (-1, S) (all other pixels would get alpha 0). Overlapping faces: one launch per crop
//     on one stream, in order, so later crops blend over earlier ones.
//     block = (16, 16, 1); grid = (ceil((x1-x0)/16), ceil((y1-y0)/16), 1).
//
// nv12_to_rgb(const u8* y, long long y_pitch, const u8* uv, long long uv_pitch, u8* rgb,
//             long long rgb_pitch, int H, int W, int bt709)
//     block = (32, 8, 1); grid = (ceil(W/32), ceil(H/8), 1); one thread per pixel.
// rgb_to_nv12(const u8* rgb, long long rgb_pitch, u8* y, long long y_pitch, u8* uv,
//             long long uv_pitch, int H, int W, int bt709)
//     One thread per 2x2 block: 4 luma values from their own pixels, chroma from the mean RGB of
//     the block. block = (32, 8, 1); grid = (ceil(W/2/32), ceil(H/2/8), 1). H, W even.

#include "common.cuh"

#define BORDER_CONSTANT 0
#define BORDER_REPLICATE 1

// Y'CbCr (limited range) -> R'G'B' in 0..255, rounded and clamped: BT.601 and BT.709 rows.
__device__ __forceinline__ void yuv_to_rgb(int Y, int U, int V, int bt709, float c[3]) {
    const float ys = 1.1643835616438356f;
    const float rv = bt709 ? 1.7927410714285714f : 1.596026785714286f;
    const float gu = bt709 ? 0.21324861427372965f : 0.39176229009491365f;
    const float gv = bt709 ? 0.5329093285594441f : 0.8129676472377707f;
    const float bu = bt709 ? 2.112401785714286f : 2.017232142857143f;
    const float yy = ys * (float)(Y - 16);
    const float u = (float)(U - 128);
    const float v = (float)(V - 128);
    c[0] = (float)to_u8(yy + rv * v);
    c[1] = (float)to_u8(yy - gu * u - gv * v);
    c[2] = (float)to_u8(yy + bu * u);
}

struct RgbSource {
    const u8* p; long long pitch; int H, W;
    __device__ __forceinline__ void fetch(int x, int y, float c[3]) const {
        const u8* q = p + (long long)y * pitch + 3LL * x;
        c[0] = (float)q[0]; c[1] = (float)q[1]; c[2] = (float)q[2];
    }
};

struct Nv12Source {
    const u8* y; long long y_pitch; const u8* uv; long long uv_pitch; int H, W, bt709;
    __device__ __forceinline__ void fetch(int x, int yy, float c[3]) const {
        const int Y = y[(long long)yy * y_pitch + x];
        const u8* q = uv + (long long)(yy >> 1) * uv_pitch + 2LL * (x >> 1);
        yuv_to_rgb(Y, q[0], q[1], bt709, c);
    }
};

template <typename Src>
__device__ __forceinline__ void tap(const Src& src, int x, int y, int border, const float bv[3],
                                    float c[3]) {
    if (x < 0 || y < 0 || x >= src.W || y >= src.H) {
        if (border == BORDER_CONSTANT) { c[0] = bv[0]; c[1] = bv[1]; c[2] = bv[2]; return; }
        x = min(max(x, 0), src.W - 1);
        y = min(max(y, 0), src.H - 1);
    }
    src.fetch(x, y, c);
}

template <typename Src, typename T>
__device__ __forceinline__ void warp_impl(const Src& src, const float* __restrict__ mats, T* out,
                                          int K, int S, int border, float bv0, float bv1, float bv2) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int k = blockIdx.z;
    if (x >= S || y >= S || k >= K) return;
    const float* m = mats + 6LL * k;
    // Clamping keeps floor() in int range; every tap of a point beyond [-1, size] is outside anyway
    // and replicate gives the same edge pixel for -2 as for any smaller coordinate.
    const float sx = clampf(m[0] * (float)x + m[1] * (float)y + m[2], -2.0f, (float)src.W + 1.0f);
    const float sy = clampf(m[3] * (float)x + m[4] * (float)y + m[5], -2.0f, (float)src.H + 1.0f);
    const float fx0 = floorf(sx), fy0 = floorf(sy);
    const int ix = (int)fx0, iy = (int)fy0;
    const float fx = sx - fx0, fy = sy - fy0;
    const float bv[3] = {bv0, bv1, bv2};
    float c00[3], c01[3], c10[3], c11[3];
    tap(src, ix, iy, border, bv, c00);
    tap(src, ix + 1, iy, border, bv, c01);
    tap(src, ix, iy + 1, border, bv, c10);
    tap(src, ix + 1, iy + 1, border, bv, c11);
    const long long plane = (long long)S * S;
    const long long base = 3LL * plane * k + (long long)y * S + x;
    for (int ch = 0; ch < 3; ++ch) {
        const float top = (1.0f - fx) * c00[ch] + fx * c01[ch];
        const float bot = (1.0f - fx) * c10[ch] + fx * c11[ch];
        const float v = (1.0f - fy) * top + fy * bot;
        store_f(out, base + ch * plane, v * (2.0f / 255.0f) - 1.0f);
    }
}

#define WARP_RGB_ENTRY(NAME, T)                                                                  \
    extern "C" __global__ void NAME(const u8* frame, long long pitch, int H, int W,              \
                                    const float* mats, T* out, int K, int S, int border,         \
                                    float bv0, float bv1, float bv2) {                           \
        RgbSource src; src.p = frame; src.pitch = pitch; src.H = H; src.W = W;                   \
        warp_impl<RgbSource, T>(src, mats, out, K, S, border, bv0, bv1, bv2);                    \
    }
WARP_RGB_ENTRY(warp_rgb_f32, float)
WARP_RGB_ENTRY(warp_rgb_f16, half_bits)

#define WARP_NV12_ENTRY(NAME, T)                                                                 \
    extern "C" __global__ void NAME(const u8* y, long long y_pitch, const u8* uv,                \
                                    long long uv_pitch, int H, int W, int bt709,                 \
                                    const float* mats, T* out, int K, int S, int border,         \
                                    float bv0, float bv1, float bv2) {                           \
        Nv12Source src; src.y = y; src.y_pitch = y_pitch; src.uv = uv; src.uv_pitch = uv_pitch;  \
        src.H = H; src.W = W; src.bt709 = bt709;                                                 \
        warp_impl<Nv12Source, T>(src, mats, out, K, S, border, bv0, bv1, bv2);                   \
    }
WARP_NV12_ENTRY(warp_nv12_f32, float)
WARP_NV12_ENTRY(warp_nv12_f16, half_bits)

// ---------------------------------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ void paste_impl(u8* frame, long long pitch, int H, int W,
                                           const T* __restrict__ crop, int S,
                                           const float* __restrict__ mask, float a00, float a01,
                                           float a02, float a10, float a11, float a12,
                                           float strength, int x0, int y0, int x1, int y1) {
    const int X = x0 + blockIdx.x * blockDim.x + threadIdx.x;
    const int Y = y0 + blockIdx.y * blockDim.y + threadIdx.y;
    if (X >= x1 || Y >= y1 || X < 0 || Y < 0 || X >= W || Y >= H) return;
    const float u = clampf(a00 * (float)X + a01 * (float)Y + a02, -2.0f, (float)S + 1.0f);
    const float v = clampf(a10 * (float)X + a11 * (float)Y + a12, -2.0f, (float)S + 1.0f);
    const float fu0 = floorf(u), fv0 = floorf(v);
    const int iu = (int)fu0, iv = (int)fv0;
    const float fu = u - fu0, fv = v - fv0;
    const float w[4] = {(1.0f - fu) * (1.0f - fv), fu * (1.0f - fv), (1.0f - fu) * fv, fu * fv};
    const int du[4] = {0, 1, 0, 1};
    const int dv[4] = {0, 0, 1, 1};
    const long long plane = (long long)S * S;
    float m = 0.0f, c[3] = {0.0f, 0.0f, 0.0f};
    for (int t = 0; t < 4; ++t) {
        const int cu = iu + du[t], cv = iv + dv[t];
        if (cu < 0 || cv < 0 || cu >= S || cv >= S) continue;  // constant 0 border
        const long long o = (long long)cv * S + cu;
        m += w[t] * mask[o];
        for (int ch = 0; ch < 3; ++ch) {
            const float p = (clampf(load_f(crop, ch * plane + o), -1.0f, 1.0f) + 1.0f) * 127.5f;
            c[ch] += w[t] * p;
        }
    }
    const float alpha = strength * m;
    if (alpha == 0.0f) return;
    u8* q = frame + (long long)Y * pitch + 3LL * X;
    for (int ch = 0; ch < 3; ++ch) {
        const float f = (float)q[ch];
        q[ch] = to_u8(f + alpha * (c[ch] - f));
    }
}

#define PASTE_ENTRY(NAME, T)                                                                     \
    extern "C" __global__ void NAME(u8* frame, long long pitch, int H, int W, const T* crop,      \
                                    int S, const float* mask, float a00, float a01, float a02,   \
                                    float a10, float a11, float a12, float strength, int x0,     \
                                    int y0, int x1, int y1) {                                    \
        paste_impl<T>(frame, pitch, H, W, crop, S, mask, a00, a01, a02, a10, a11, a12, strength, \
                      x0, y0, x1, y1);                                                           \
    }
PASTE_ENTRY(paste_f32, float)
PASTE_ENTRY(paste_f16, half_bits)

// ---------------------------------------------------------------------------------------------
extern "C" __global__ void nv12_to_rgb(const u8* y, long long y_pitch, const u8* uv,
                                       long long uv_pitch, u8* rgb, long long rgb_pitch, int H,
                                       int W, int bt709) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int yy = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || yy >= H) return;
    Nv12Source src;
    src.y = y; src.y_pitch = y_pitch; src.uv = uv; src.uv_pitch = uv_pitch;
    src.H = H; src.W = W; src.bt709 = bt709;
    float c[3];
    src.fetch(x, yy, c);
    u8* q = rgb + (long long)yy * rgb_pitch + 3LL * x;
    q[0] = (u8)c[0]; q[1] = (u8)c[1]; q[2] = (u8)c[2];
}

extern "C" __global__ void rgb_to_nv12(const u8* rgb, long long rgb_pitch, u8* y, long long y_pitch,
                                       u8* uv, long long uv_pitch, int H, int W, int bt709) {
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;  // 2x2 block column
    const int by = blockIdx.y * blockDim.y + threadIdx.y;  // 2x2 block row
    if (2 * bx >= W || 2 * by >= H) return;
    const float yr = bt709 ? 0.18258588235294118f : 0.2567882352941176f;
    const float yg = bt709 ? 0.6142305882352941f : 0.5041294117647059f;
    const float yb = bt709 ? 0.06200705882352941f : 0.09790588235294118f;
    const float ur = bt709 ? -0.10064373237978098f : -0.14822290089850837f;
    const float ug = bt709 ? -0.3385719538947288f : -0.29099278537600143f;
    const float ub = 0.4392156862745098f;
    const float vr = 0.4392156862745098f;
    const float vg = bt709 ? -0.3989421625902075f : -0.3677883136136052f;
    const float vb = bt709 ? -0.04027352368430227f : -0.07142737266090458f;
    float sr = 0.0f, sg = 0.0f, sb = 0.0f;
    for (int dy = 0; dy < 2; ++dy) {
        for (int dx = 0; dx < 2; ++dx) {
            const int x = 2 * bx + dx, yy = 2 * by + dy;
            const u8* q = rgb + (long long)yy * rgb_pitch + 3LL * x;
            const float r = (float)q[0], g = (float)q[1], b = (float)q[2];
            y[(long long)yy * y_pitch + x] = to_u8(16.0f + yr * r + yg * g + yb * b);
            sr += r; sg += g; sb += b;
        }
    }
    sr *= 0.25f; sg *= 0.25f; sb *= 0.25f;
    u8* o = uv + (long long)by * uv_pitch + 2LL * bx;
    o[0] = to_u8(128.0f + ur * sr + ug * sg + ub * sb);
    o[1] = to_u8(128.0f + vr * sr + vg * sg + vb * sb);
}
