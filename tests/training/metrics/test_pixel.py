"""training/metrics/pixel.py: PSNR and Gaussian-window SSIM on known values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics.pixel import C1, gaussian_window, psnr, ssim


def test_psnr_known():
    a = np.full((16, 16, 3), 100, np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255 ** 2), abs=1e-9)       # MSE 1 -> 48.13 dB
    b = a.astype(np.float64)
    b[::2] += 4                                                                         # MSE 8
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 8))


def test_ssim_of_constant_images_is_the_luminance_term():
    a = np.full((32, 32, 3), 100.0)
    b = np.full((32, 32, 3), 140.0)
    expect = (2 * 100 * 140 + C1) / (100 ** 2 + 140 ** 2 + C1)
    assert ssim(a, b) == pytest.approx(expect, rel=1e-9)


def test_ssim_properties():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (48, 48, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    s1 = ssim(a, np.clip(a + rng.normal(0, 10, a.shape), 0, 255))
    s2 = ssim(a, np.clip(a + rng.normal(0, 40, a.shape), 0, 255))
    assert 1 > s1 > s2 > 0
    assert ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0)
    w = gaussian_window()
    assert w.shape == (11, 11) and w.sum() == pytest.approx(1.0) and w[5, 5] == w.max()
    with pytest.raises(ValueError):
        ssim(a[:8, :8], a[:8, :8])


def test_ssim_against_a_direct_window_sum():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 255, (11, 11)), rng.uniform(0, 255, (11, 11))
    w = gaussian_window()
    C2 = (0.03 * 255) ** 2
    ma, mb = (w * a).sum(), (w * b).sum()
    va, vb, cov = (w * a * a).sum() - ma ** 2, (w * b * b).sum() - mb ** 2, (w * a * b).sum() - ma * mb
    expect = (2 * ma * mb + C1) * (2 * cov + C2) / ((ma ** 2 + mb ** 2 + C1) * (va + vb + C2))
    assert ssim(a, b) == pytest.approx(expect, rel=1e-6)        # a single valid window
