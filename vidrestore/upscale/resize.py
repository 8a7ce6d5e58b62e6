"""Output sizes and plain resampling for ``--upscale``.

* :func:`output_size`: ``S`` x the upright input size. An integer ``S`` gives exactly ``S*W x S*H``
  (odd results are kept: the encoder switches 4:2:0 to 4:4:4 for them). A fractional ``S`` rounds each
  side to the nearest even number, what 4:2:0 codecs need, so no chroma format change is forced.
* :func:`resize_rgb`: (H, W, 3) uint8 frames, numpy (OpenCV; uint16 planes too) or torch tensors (GPU path).
  ``lanczos`` is OpenCV's ``INTER_LANCZOS4`` (8 taps) when enlarging and ``INTER_AREA`` when shrinking
  (Lanczos without a prefilter aliases); ``bilinear`` is ``INTER_LINEAR``. The torch twin computes the
  same Lanczos-4 weights as separable (out, in) matrices - within 1 level of OpenCV
  (tests/vidrestore/upscale/test_resize.py) - and antialiased bilinear for shrinking.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

Method = str   # "lanczos" | "bilinear"


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of the output for an upright ``width x height`` input at ``scale`` >= 1."""
    if scale == int(scale):
        return int(width * scale), int(height * scale)
    even = lambda v: max(2, 2 * int(math.floor(v / 2 + 0.5)))  # noqa: E731 - nearest even
    return even(width * scale), even(height * scale)


def resize_rgb(frame: Any, size: tuple[int, int], *, method: Method = "lanczos") -> Any:
    """``frame`` (H, W, 3) or (H, W) uint8, numpy or torch -> same type at ``size`` = (width, height)."""
    w, h = size
    if tuple(frame.shape[:2]) == (h, w):
        return frame
    if isinstance(frame, torch.Tensor):
        return _resize_torch(frame, size, method=method)
    import cv2

    grow = w >= frame.shape[1] and h >= frame.shape[0]
    interp = (cv2.INTER_LANCZOS4 if grow else cv2.INTER_AREA) if method == "lanczos" else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=interp)


def _lanczos4(d: np.ndarray) -> np.ndarray:
    """OpenCV's Lanczos-4 kernel sin(pi d) sin(pi d / 4) / (pi^2 d^2 / 4), 1 at d = 0."""
    d = np.asarray(d, dtype=np.float64)
    out = np.ones_like(d)
    nz = np.abs(d) > 1e-12
    x = np.pi * d[nz]
    out[nz] = np.sin(x) * np.sin(x / 4) / (x * x / 4)
    return out


@lru_cache(maxsize=32)
def lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of OpenCV's INTER_LANCZOS4 along one axis (pixel centres
    aligned, 8 taps, weights normalised, indices beyond the edge clamped)."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    ratio = n_in / n_out
    for o in range(n_out):
        f = (o + 0.5) * ratio - 0.5
        i0 = math.floor(f)
        frac = f - i0
        taps = np.arange(i0 - 3, i0 + 5)
        wts = _lanczos4(frac + 3 - np.arange(8)) if frac > 1.1920929e-07 else np.eye(8)[3]
        wts = wts / wts.sum()
        np.add.at(m[o], np.clip(taps, 0, n_in - 1), wts)
    m.setflags(write=False)
    return m.astype(np.float32)


def _resize_torch(frame: torch.Tensor, size: tuple[int, int], *, method: Method) -> torch.Tensor:
    w, h = size
    gray = frame.ndim == 2
    x = (frame[..., None] if gray else frame).permute(2, 0, 1).float()          # (C, H, W)
    grow = w >= x.shape[2] and h >= x.shape[1]
    if method == "lanczos" and grow:
        ry = torch.from_numpy(lanczos_matrix(x.shape[1], h)).to(x.device)
        rx = torch.from_numpy(lanczos_matrix(x.shape[2], w)).to(x.device)
        y = torch.matmul(torch.matmul(ry, x), rx.T)
    else:
        y = torch.nn.functional.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False,
                                            antialias=not grow)[0]
    y = y.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
    return (y[..., 0] if gray else y).contiguous()


def upscaled_matrices(matrices: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Frame->crop matrices (K, 2, 3) of the source frame (width, height) = ``src`` turned into
    matrices of the output frame ``dst``: M' = M . A, where A maps an output pixel to the source
    position it shows (pixel centres aligned, as every resize here): x = (X + 0.5) * w / W - 0.5."""
    m = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    sx, sy = src[0] / dst[0], src[1] / dst[1]
    a = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return (m @ a).astype(np.float64)
