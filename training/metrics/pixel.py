"""PSNR and SSIM on 8-bit images (full-reference), as BasicSR computes them.

Inputs are (H, W, C) or (H, W) arrays with values in [0, 255] (any float/uint8 dtype); no border crop,
RGB (not the Y channel). SSIM: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, means
over the 'valid' region (no padding), averaged over channels (Wang et al. 2004).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.exp(-0.5 * ((np.arange(size) - size // 2) / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def _ssim_channel(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> float:
    r = window.shape[0] // 2

    def filt(x: np.ndarray) -> np.ndarray:                 # 'valid' region of a same-size filter
        return cv2.filter2D(x, -1, window)[r:-r, r:-r]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + C1) * (2 * cov + C2)
    den = (mu_a ** 2 + mu_b ** 2 + C1) * (var_a + var_b + C2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over channels; images at least 11 px on each side."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels")
    w = gaussian_window()
    if a.ndim == 2:
        return _ssim_channel(a, b, w)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], w) for c in range(a.shape[2])]))


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [-1, 1] -> (H, W, 3) uint8 RGB, clamped and rounded."""
    x = t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()
