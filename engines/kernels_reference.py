"""Plain-torch reference of every CUDA kernel in engines/kernels/*.cu (same signatures, any device).

These functions define the semantics the kernels must reproduce; engines/kernels.py has the CuPy
twins with identical signatures, so a caller can swap one for the other. All arithmetic is FP32;
FP16 results are rounded once at the end, like the kernels. Geometry follows OpenCV: pixel centres at
integer coordinates, a 2x3 matrix maps destination pixels to source points (cv2.warpAffine with
WARP_INVERSE_MAP), bilinear taps outside the source use the border rule tap by tap.
``interpolation`` "cubic" / "lanczos" (OpenCV's INTER_CUBIC with A = -0.75 / INTER_LANCZOS4 weights, in
float rather than OpenCV's 1/32-pixel fixed point; results clamped to 0..255) exist only here: the CUDA
kernels are bilinear, and callers wanting a higher-order warp on the GPU use these functions.

Host helpers shared with the wrappers: :func:`weight_sq_sum`, :func:`invert_affine`,
:func:`paste_box`.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

SQRT2 = math.sqrt(2.0)
Border = Literal["constant", "replicate"]
Interpolation = Literal["linear", "cubic", "lanczos"]
_TAPS = {"linear": (0, 1), "cubic": (-1, 0, 1, 2), "lanczos": (-3, -2, -1, 0, 1, 2, 3, 4)}
ColorMatrix = Literal["bt709", "bt601"]

# Limited-range Y'CbCr -> R'G'B' factors on (Y-16), (U-128), (V-128): ys, rv, gu, gv, bu.
YUV_TO_RGB = MappingProxyType({
    "bt601": (1.1643835616438356, 1.596026785714286, 0.39176229009491365, 0.8129676472377707,
              2.017232142857143),
    "bt709": (1.1643835616438356, 1.7927410714285714, 0.21324861427372965, 0.5329093285594441,
              2.112401785714286),
})
# R'G'B' (0..255) -> limited-range rows: (yr, yg, yb), (ur, ug, ub), (vr, vg, vb); offsets 16/128.
RGB_TO_YUV = MappingProxyType({
    "bt601": ((0.2567882352941176, 0.5041294117647059, 0.09790588235294118),
              (-0.14822290089850837, -0.29099278537600143, 0.4392156862745098),
              (0.4392156862745098, -0.3677883136136052, -0.07142737266090458)),
    "bt709": ((0.18258588235294118, 0.6142305882352941, 0.06200705882352941),
              (-0.10064373237978098, -0.3385719538947288, 0.4392156862745098),
              (0.4392156862745098, -0.3989421625902075, -0.04027352368430227)),
})


# ----------------------------------------------------------------------------- modulated conv
def weight_sq_sum(weight: Tensor) -> Tensor:
    """wsq[o, i] = sum over the kernel window of W[o, i]^2, FP32, from (1, O, I, k, k) or (O, I, k, k)."""
    w = weight.detach().float()
    if w.dim() == 5:
        w = w[0]
    if w.dim() != 4:
        raise ValueError(f"modulated-conv weight must be (1,O,I,k,k) or (O,I,k,k), got {tuple(weight.shape)}")
    return w.pow(2).sum(dim=(2, 3)).contiguous()


def style_demod(styles: Tensor, wsq: Tensor, *, eps: float = 1e-8) -> Tensor:
    """demod[b, o] = rsqrt(sum_i s[b, i]^2 * wsq[o, i] + eps) in FP32: (B, Cin), (Cout, Cin) -> (B, Cout)."""
    s = styles.float()
    return torch.rsqrt(s.pow(2) @ wsq.float().t() + eps)


def modulate_input(x: Tensor, styles: Tensor, *, out: Tensor | None = None) -> Tensor:
    """x (B, Cin, H, W) times styles[b, i] (B, Cin); result in x's dtype (``out`` may be ``x``)."""
    r = (x.float() * styles.float()[:, :, None, None]).to(x.dtype)
    if out is None:
        return r
    return out.copy_(r)


def modconv_epilogue(y: Tensor, demod: Tensor | None, bias: Tensor | None, *, noise: Tensor | None = None,
                     noise_strength: float = 0.0, gain: float = SQRT2, negative_slope: float = 0.2,
                     activate: bool = True) -> Tensor:
    """In place on y (B, C, H, W): lrelu(y*demod[b,o]*gain + strength*noise[h,w] + bias[o]); returns y.

    StyleConv: demod, gain sqrt(2), noise (H, W) or (1, 1, H, W), activate. ToRGB: demod None,
    gain 1, no noise, activate False.
    """
    v = y.float()
    if demod is not None:
        v = v * demod.float()[:, :, None, None]
    v = v * gain
    if noise is not None:
        v = v + noise_strength * noise.float().reshape(1, 1, y.shape[2], y.shape[3])
    if bias is not None:
        v = v + bias.float().reshape(1, -1, 1, 1)
    if activate:
        v = torch.where(v >= 0, v, v * negative_slope)
    return y.copy_(v.to(y.dtype))


# ----------------------------------------------------------------------------- CS-SFT
def sft_half(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """In place on x (B, C, H, W): second half of the channels -> x*scale + shift; returns x."""
    half = x.shape[1] // 2
    second = x[:, half:]
    second.copy_((second.float() * scale.float() + shift.float()).to(x.dtype))
    return x


# ----------------------------------------------------------------------------- geometry helpers
def invert_affine(matrix: np.ndarray | Tensor) -> np.ndarray:
    """Inverse of one (2, 3) or many (K, 2, 3) affine matrices (float64 numpy)."""
    m = np.asarray(matrix.detach().cpu() if isinstance(matrix, Tensor) else matrix, dtype=np.float64)
    a, t = m[..., :2], m[..., 2:]
    ainv = np.linalg.inv(a)
    return np.concatenate([ainv, -ainv @ t], axis=-1)


def paste_box(frame_to_crop: np.ndarray | Tensor, size: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Frame box (x0, y0, x1, y1), ends exclusive, holding every pixel whose crop point lies in
    (-1, size) x (-1, size), i.e. every pixel a bilinear paste can touch; clipped to the frame."""
    inv = invert_affine(frame_to_crop)
    corners = np.array([[-1.0, -1.0, 1.0], [size, -1.0, 1.0], [-1.0, size, 1.0], [size, size, 1.0]])
    pts = corners @ inv.T
    x0 = max(0, math.floor(pts[:, 0].min()))
    y0 = max(0, math.floor(pts[:, 1].min()))
    x1 = min(width, math.floor(pts[:, 0].max()) + 1)
    y1 = min(height, math.floor(pts[:, 1].max()) + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def _as_mats(matrices: np.ndarray | Tensor, device: torch.device) -> Tensor:
    m = torch.as_tensor(np.asarray(matrices.detach().cpu() if isinstance(matrices, Tensor) else matrices),
                        dtype=torch.float32)
    return m.reshape(-1, 6).to(device)


def _bilinear(sx: Tensor, sy: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Integer top-left tap and fractions, with coordinates clamped to [-2, size+1] like the kernels."""
    sx = sx.clamp(-2.0, width + 1.0)
    sy = sy.clamp(-2.0, height + 1.0)
    fx0, fy0 = torch.floor(sx), torch.floor(sy)
    return fx0.long(), fy0.long(), sx - fx0, sy - fy0


def _sample_rgb(img: Tensor, xi: Tensor, yi: Tensor, border: Border, border_value: Tensor) -> Tensor:
    """img (H, W, 3) float; integer taps -> (..., 3) with the per-tap border rule."""
    h, w = img.shape[:2]
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    v = img[yi.clamp(0, h - 1), xi.clamp(0, w - 1)]
    if border == "constant":
        v = torch.where(inside[..., None], v, border_value)
    return v


def _kernel_weights(frac: Tensor, interpolation: Interpolation) -> list[Tensor]:
    """Per-tap weights (one tensor per offset in ``_TAPS[interpolation]``) for fractional positions."""
    if interpolation == "linear":
        return [1.0 - frac, frac]
    if interpolation == "cubic":
        a, x = -0.75, frac
        c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        c1 = ((a + 2) * x - (a + 3)) * x * x + 1
        c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        return [c0, c1, c2, 1.0 - c0 - c1 - c2]
    if interpolation == "lanczos":
        ws = [torch.sinc(frac - o) * torch.sinc((frac - o) / 4.0) for o in _TAPS["lanczos"]]
        total = sum(ws)
        return [w / total for w in ws]
    raise ValueError(f"interpolation must be 'linear', 'cubic' or 'lanczos', got {interpolation!r}")


def _sample_kernel(img: Tensor, sx: Tensor, sy: Tensor, interpolation: Interpolation, border: Border,
                   border_value: Tensor) -> Tensor:
    """img (H, W, 3) float sampled at (sx, sy) with a separable kernel, border rule tap by tap,
    clamped to 0..255 (higher-order kernels overshoot) -> (..., 3)."""
    h, w = img.shape[:2]
    flat = img.reshape(-1, 3)
    offs = _TAPS[interpolation]
    reach = len(offs)
    sx = sx.clamp(-reach - 1.0, w + reach * 1.0)
    sy = sy.clamp(-reach - 1.0, h + reach * 1.0)
    fx0, fy0 = torch.floor(sx), torch.floor(sy)
    wx, wy = _kernel_weights(sx - fx0, interpolation), _kernel_weights(sy - fy0, interpolation)
    xi, yi = fx0.long(), fy0.long()
    xs, ys = [xi + o for o in offs], [yi + o for o in offs]
    in_x, in_y = [(x >= 0) & (x < w) for x in xs], [(y >= 0) & (y < h) for y in ys]
    xs, ys = [x.clamp(0, w - 1) for x in xs], [y.clamp(0, h - 1) * w for y in ys]
    acc = torch.zeros(*sx.shape, 3, dtype=torch.float32, device=img.device)
    outside = torch.zeros_like(sx)
    for j in range(reach):
        for i in range(reach):
            wt = wy[j] * wx[i]
            if border == "constant":
                inside = in_y[j] & in_x[i]
                outside += torch.where(inside, 0.0, wt)
                wt = torch.where(inside, wt, 0.0)
            v = flat.index_select(0, (ys[j] + xs[i]).reshape(-1)).reshape(*sx.shape, 3)
            acc += wt[..., None] * v
    if border == "constant":
        acc += outside[..., None] * border_value
    return acc.clamp_(0.0, 255.0)


# ----------------------------------------------------------------------------- crops from frames
def warp_crops_rgb(frame: Tensor, crop_to_frame: np.ndarray | Tensor, *, size: int = 512,
                   dtype: torch.dtype = torch.float32, border: Border = "constant",
                   border_value: Sequence[float] = (0.0, 0.0, 0.0), out: Tensor | None = None,
                   interpolation: Interpolation = "linear") -> Tensor:
    """Bilinear (or ``interpolation``) affine crops (K, 3, size, size) in [-1, 1] from a uint8 (H, W, 3) frame.

    crop_to_frame (K, 2, 3): crop pixel -> frame pixel (the inverse of the alignment matrix; see
    :func:`invert_affine`). border "constant" uses border_value (0..255 per channel) tap by tap,
    "replicate" the nearest edge pixel.
    """
    if border not in ("constant", "replicate"):
        raise ValueError(f"border must be 'constant' or 'replicate', got {border!r}")
    dev = frame.device
    m = _as_mats(crop_to_frame, dev)
    h, w = frame.shape[:2]
    img = frame.float()
    bv = torch.tensor([float(v) for v in border_value], dtype=torch.float32, device=dev)
    g = torch.arange(size, dtype=torch.float32, device=dev)
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    crops = []
    for k in range(m.shape[0]):
        a = m[k]
        sx = a[0] * gx + a[1] * gy + a[2]
        sy = a[3] * gx + a[4] * gy + a[5]
        if interpolation != "linear":
            v = _sample_kernel(img, sx, sy, interpolation, border, bv)
            crops.append((v * (2.0 / 255.0) - 1.0).permute(2, 0, 1))
            continue
        xi, yi, fx, fy = _bilinear(sx, sy, w, h)
        c00 = _sample_rgb(img, xi, yi, border, bv)
        c01 = _sample_rgb(img, xi + 1, yi, border, bv)
        c10 = _sample_rgb(img, xi, yi + 1, border, bv)
        c11 = _sample_rgb(img, xi + 1, yi + 1, border, bv)
        fx, fy = fx[..., None], fy[..., None]
        top = (1.0 - fx) * c00 + fx * c01
        bot = (1.0 - fx) * c10 + fx * c11
        v = (1.0 - fy) * top + fy * bot
        crops.append((v * (2.0 / 255.0) - 1.0).permute(2, 0, 1))
    res = torch.stack(crops).to(dtype) if crops else torch.empty(0, 3, size, size, dtype=dtype, device=dev)
    if out is None:
        return res
    return out.copy_(res)


def warp_crops_nv12(y: Tensor, uv: Tensor, crop_to_frame: np.ndarray | Tensor, *, matrix: ColorMatrix = "bt709",
                    size: int = 512, dtype: torch.dtype = torch.float32, border: Border = "constant",
                    border_value: Sequence[float] = (0.0, 0.0, 0.0), out: Tensor | None = None) -> Tensor:
    """As :func:`warp_crops_rgb` from an NV12 frame: equal to warping ``nv12_to_rgb(y, uv)``."""
    return warp_crops_rgb(nv12_to_rgb(y, uv, matrix=matrix), crop_to_frame, size=size, dtype=dtype,
                          border=border, border_value=border_value, out=out)


# ----------------------------------------------------------------------------- paste-back
def paste_crops(frame: Tensor, crops: Tensor, frame_to_crop: np.ndarray | Tensor, mask: Tensor, *,
                strength: float = 1.0, boxes: Sequence[tuple[int, int, int, int]] | None = None,
                interpolation: Interpolation = "linear") -> Tensor:
    """Blend restored crops (K, 3, S, S) in [-1, 1] into a uint8 (H, W, 3) frame in place, crop by crop.

    frame_to_crop (K, 2, 3): the alignment matrices (frame pixel -> crop pixel). mask (S, S) float
    feather in [0, 1]. Per pixel of the crop's box: colour c = bilinear((clamp(crop,-1,1)+1)*127.5)
    and mask m = bilinear(mask), both with constant-0 border; alpha = strength*m;
    frame = round(frame + alpha*(c - frame)). Returns frame. With ``interpolation`` "cubic"/"lanczos"
    the colour c is sampled with that kernel, the crop's edge repeated outside it, clamped to 0..255.
    """
    h, w = frame.shape[:2]
    s = crops.shape[-1]
    mats = np.asarray(frame_to_crop.detach().cpu() if isinstance(frame_to_crop, Tensor) else frame_to_crop,
                      dtype=np.float64).reshape(-1, 2, 3)
    dev = frame.device
    msk = mask.float()
    for k in range(crops.shape[0]):
        x0, y0, x1, y1 = boxes[k] if boxes is not None else paste_box(mats[k], s, h, w)
        if x1 <= x0 or y1 <= y0:
            continue
        a = [float(v) for v in mats[k].astype(np.float32).reshape(6)]  # the kernels get float32
        ys = torch.arange(y0, y1, dtype=torch.float32, device=dev)
        xs = torch.arange(x0, x1, dtype=torch.float32, device=dev)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        u = a[0] * gx + a[1] * gy + a[2]
        v = a[3] * gx + a[4] * gy + a[5]
        iu, iv, fu, fv = _bilinear(u, v, s, s)
        pix = (crops[k].float().clamp(-1.0, 1.0) + 1.0) * 127.5  # (3, S, S)
        m = torch.zeros_like(u)
        c = torch.zeros(3, *u.shape, dtype=torch.float32, device=dev)
        for du, dv, wt in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
            cu, cv = iu + du, iv + dv
            inside = (cu >= 0) & (cu < s) & (cv >= 0) & (cv < s)
            wt = torch.where(inside, wt, torch.zeros_like(wt))
            cu, cv = cu.clamp(0, s - 1), cv.clamp(0, s - 1)
            m = m + wt * msk[cv, cu]
            c = c + wt * pix[:, cv, cu]
        if interpolation != "linear":
            c = _sample_kernel(pix.permute(1, 2, 0), u, v, interpolation, "replicate",
                               torch.zeros(3, device=dev)).permute(2, 0, 1)
        alpha = strength * m
        region = frame[y0:y1, x0:x1]
        f = region.float()
        blended = torch.round(f + alpha[..., None] * (c.permute(1, 2, 0) - f)).clamp(0, 255)
        region.copy_(torch.where((alpha != 0)[..., None], blended, f).to(torch.uint8))
    return frame


# ----------------------------------------------------------------------------- colour conversion
def _uv_pairs(uv: Tensor, height: int, width: int) -> Tensor:
    if tuple(uv.shape) == (height // 2, width):
        return uv.reshape(height // 2, width // 2, 2)
    if tuple(uv.shape) != (height // 2, width // 2, 2):
        raise ValueError(f"NV12 uv plane must be ({height // 2}, {width // 2}, 2) or ({height // 2}, {width}), "
                         f"got {tuple(uv.shape)}")
    return uv


def nv12_to_rgb(y: Tensor, uv: Tensor, *, matrix: ColorMatrix = "bt709", out: Tensor | None = None) -> Tensor:
    """Limited-range NV12 (y (H, W), uv (H/2, W/2, 2)) -> uint8 RGB (H, W, 3), nearest chroma."""
    h, w = y.shape
    ys, rv, gu, gv, bu = YUV_TO_RGB[matrix]
    pairs = _uv_pairs(uv, h, w).float()
    up = pairs.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)[:h, :w]
    yy = ys * (y.float() - 16.0)
    u = up[..., 0] - 128.0
    v = up[..., 1] - 128.0
    rgb = torch.stack([yy + rv * v, yy - gu * u - gv * v, yy + bu * u], dim=-1)
    res = torch.round(rgb).clamp(0, 255).to(torch.uint8)
    if out is None:
        return res
    return out.copy_(res)


def rgb_to_nv12(rgb: Tensor, *, matrix: ColorMatrix = "bt709", y_out: Tensor | None = None,
                uv_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """uint8 RGB (H, W, 3), H and W even -> limited-range NV12 (y (H, W), uv (H/2, W/2, 2)).

    Luma per pixel; chroma from the mean RGB of each 2x2 block.
    """
    h, w = rgb.shape[:2]
    (yr, yg, yb), (ur, ug, ub), (vr, vg, vb) = RGB_TO_YUV[matrix]
    f = rgb.float()
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    yv = torch.round(16.0 + yr * r + yg * g + yb * b).clamp(0, 255).to(torch.uint8)
    mean = f.reshape(h // 2, 2, w // 2, 2, 3).sum(dim=(1, 3)) * 0.25
    mr, mg, mb = mean[..., 0], mean[..., 1], mean[..., 2]
    u = 128.0 + ur * mr + ug * mg + ub * mb
    v = 128.0 + vr * mr + vg * mg + vb * mb
    uvv = torch.round(torch.stack([u, v], dim=-1)).clamp(0, 255).to(torch.uint8)
    y_res = yv if y_out is None else y_out.copy_(yv)
    uv_res = uvv if uv_out is None else uv_out.copy_(uvv.reshape(uv_out.shape))
    return y_res, uv_res
