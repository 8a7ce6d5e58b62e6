"""``--color-match lab``: give the restored face the colour statistics of the original crop.

Per crop and Lab channel, inside the paste mask (the mask values are the weights):
``out = (restored - mean_r) * (std_o / std_r) + mean_o`` where mean/std are of the restored (r) and
original (o) crop. This removes the global colour and brightness shift a restorer may introduce
while keeping its detail. The authors' helper does not do this (``none`` is their behaviour).

Lab is CIE L*a*b* of sRGB with the D65 white (the constants of OpenCV's conversion, L in [0, 100], exact
power-law formulas rather than OpenCV's tabulated gamma). :func:`match_lab` works on uint8 numpy crops,
:func:`match_lab_torch` on (K, 3, S, S) tensors in [-1, 1] with the same formulas (the GPU path).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_MIN_WEIGHT = 16.0          # below this much mask (in pixels) the statistics are meaningless: no change
_MIN_STD = 1e-3             # a flat restored channel keeps its spread (no division by ~0)
_STRIDE = 2                 # statistics on every 2nd pixel each way: 4x cheaper, same numbers to ~0.1%

# sRGB (linear) -> XYZ, D65, and the white point OpenCV normalises by
_RGB2XYZ = np.array([[0.412453, 0.357580, 0.180423],
                     [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.950456, 1.0, 1.088754])
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)


def _stats(lab: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = w.sum()
    mean = (lab * w[..., None]).sum((0, 1)) / total
    var = (((lab - mean) ** 2) * w[..., None]).sum((0, 1)) / total
    return mean, np.sqrt(np.maximum(var, 0.0))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] (float32) -> Lab, the formulas of :func:`rgb_to_lab_torch` in numpy."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((np.maximum(rgb, 0) + 0.055) / 1.055) ** 2.4)
    xyz = lin @ (_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    y = xyz[..., 1]
    l_ = np.where(y > 0.008856, 116.0 * f[..., 1] - 16.0, 903.3 * y)
    return np.stack([l_, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (not clamped)."""
    l_, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    big = l_ > 903.3 * 0.008856
    fy = (l_ + 16.0) / 116.0
    y = np.where(big, fy ** 3, l_ / 903.3)
    fy = np.where(big, fy, 7.787 * y + 16.0 / 116.0)
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def inv(f):
        return np.where(f > 0.206893, f ** 3, (f - 16.0 / 116.0) / 7.787)

    xyz = np.stack([inv(fx), y, inv(fz)], -1) * _WHITE.astype(np.float32)
    lin = np.maximum(xyz @ _XYZ2RGB.T.astype(np.float32), 0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1.0 / 2.4) - 0.055).astype(np.float32)


def match_lab(restored: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB restored crop -> colour-matched uint8 crop (a new array)."""
    w = np.asarray(mask, dtype=np.float64)[::_STRIDE, ::_STRIDE]
    if w.sum() < _MIN_WEIGHT / _STRIDE ** 2:
        return restored.copy()
    lab_r = rgb_to_lab(restored.astype(np.float32) / np.float32(255.0))
    lab_o = rgb_to_lab(original[::_STRIDE, ::_STRIDE].astype(np.float32) / np.float32(255.0))
    mu_r, sd_r = _stats(lab_r[::_STRIDE, ::_STRIDE].astype(np.float64), w)
    mu_o, sd_o = _stats(lab_o.astype(np.float64), w)
    gain = (sd_o / np.maximum(sd_r, _MIN_STD)).astype(np.float32)
    rgb = lab_to_rgb((lab_r - mu_r.astype(np.float32)) * gain + mu_o.astype(np.float32))
    return np.clip(np.rint(rgb * np.float32(255.0)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- torch
def rgb_to_lab_torch(rgb: "torch.Tensor") -> "torch.Tensor":
    """(K, 3, H, W) sRGB in [0, 1] -> Lab (L in [0, 100])."""
    import torch
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4)
    m = torch.as_tensor(_RGB2XYZ / _WHITE[:, None], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,kjhw->kihw", m, lin)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    y = xyz[:, 1]
    l_ = torch.where(y > 0.008856, 116.0 * f[:, 1] - 16.0, 903.3 * y)
    return torch.stack([l_, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb_torch(lab: "torch.Tensor") -> "torch.Tensor":
    """Inverse of :func:`rgb_to_lab_torch` (not clamped)."""
    import torch
    l_, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    fy = (l_ + 16.0) / 116.0
    y = torch.where(l_ > 903.3 * 0.008856, fy ** 3, l_ / 903.3)
    fy = torch.where(l_ > 903.3 * 0.008856, fy, 7.787 * y + 16.0 / 116.0)
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def inv(f):
        return torch.where(f > 0.206893, f ** 3, (f - 16.0 / 116.0) / 7.787)

    xyz = torch.stack([inv(fx), y, inv(fz)], 1) * torch.as_tensor(_WHITE, dtype=lab.dtype,
                                                                  device=lab.device)[None, :, None, None]
    lin = torch.einsum("ij,kjhw->kihw", torch.as_tensor(_XYZ2RGB, dtype=lab.dtype, device=lab.device), xyz)
    lin = lin.clamp_min(0)
    return torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1.0 / 2.4) - 0.055)


def match_lab_torch(restored: "torch.Tensor", original: "torch.Tensor",
                    masks: "torch.Tensor") -> "torch.Tensor":
    """(K, 3, S, S) crops in [-1, 1] and (K, S, S) or (S, S) masks -> colour-matched crops in [-1, 1]."""
    import torch
    r = (restored.float().clamp(-1, 1) + 1.0) * 0.5
    o = (original.float().clamp(-1, 1) + 1.0) * 0.5
    w = masks.float().expand(r.shape[0], *r.shape[-2:])[:, None, ::_STRIDE, ::_STRIDE]
    lab_r = rgb_to_lab_torch(r)
    lab_o = rgb_to_lab_torch(o[..., ::_STRIDE, ::_STRIDE])
    total = w.sum((2, 3), keepdim=True)

    def stats(lab):
        mean = (lab * w).sum((2, 3), keepdim=True) / total.clamp_min(1e-12)
        var = (((lab - mean) ** 2) * w).sum((2, 3), keepdim=True) / total.clamp_min(1e-12)
        return mean, var.clamp_min(0).sqrt()

    mu_r, sd_r = stats(lab_r[..., ::_STRIDE, ::_STRIDE])
    mu_o, sd_o = stats(lab_o)
    out = lab_to_rgb_torch((lab_r - mu_r) * (sd_o / sd_r.clamp_min(_MIN_STD)) + mu_o)
    out = out.clamp(0, 1) * 2.0 - 1.0
    keep = (total < _MIN_WEIGHT / _STRIDE ** 2).view(-1, 1, 1, 1)
    return torch.where(keep, restored.float(), out)
