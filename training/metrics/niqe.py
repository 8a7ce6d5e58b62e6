"""NIQE (Mittal, Soundararajan, Bovik 2013), no-reference: the distance between a multivariate Gaussian
fitted to an image's natural-scene-statistics features and the pristine model (published parameters,
``niqe_pris_params`` in the metric weights). Lower is better.

Protocol as the MATLAB release and BasicSR's ``calculate_niqe`` (the numbers in face-restoration papers):
8-bit image -> Y channel (BT.601, [16, 235]) -> rounded; 96x96 blocks (the image cropped to whole
blocks); at two scales (the second a MATLAB-style antialiased bicubic halving) the MSCN coefficients
((I - mu) / (sigma + 1), 7x7 Gaussian window, 'nearest' borders) of each block give 18 features: the
GGD shape and scale of the coefficients, and the AGGD shape, mean and left/right scales of the
products with the four neighbours (right, down, down-right, down-left). Written from the paper and the
MATLAB semantics; checked against BasicSR 1.4.2 in tests/training/metrics/test_niqe.py.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def load_params(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu (36,), covariance (36, 36), Gaussian window (7, 7)) from niqe_pris_params.npz."""
    with np.load(path) as z:
        return (z["mu_pris_param"].reshape(-1).astype(np.float64), z["cov_pris_param"].astype(np.float64),
                z["gaussian_window"].astype(np.float64))


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 255] -> BT.601 luma Y in [16, 235], MATLAB's rgb2ycbcr, with BasicSR's float32
    round trips through [0, 1] (they decide which values round up at exactly .5)."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    y = ((x @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0).astype(np.float32)
    return (y * np.float32(255.0)).astype(np.float64)


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a ** 3 - 2.5 * a ** 2 + 1) * (a <= 1)
            + (-0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """(n_out, n_in) weights of MATLAB's imresize (bicubic, antialiasing for scale < 1, symmetric
    borders) along one axis."""
    n_out = int(math.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)                   # 1-based input coordinate of each output
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]          # 1-based input indices
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w /= w.sum(1, keepdims=True)
    idx0 = idx.astype(np.int64) - 1                         # symmetric padding ("abccba")
    period = 2 * n_in
    idx0 = np.mod(idx0, period)
    idx0 = np.where(idx0 >= n_in, period - 1 - idx0, idx0)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), taps), idx0.reshape(-1)), w.reshape(-1))
    return m


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D float image."""
    return _resize_matrix(img.shape[0], 0.5) @ img @ _resize_matrix(img.shape[1], 0.5).T


@lru_cache(maxsize=1)
def _ratio_table() -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import gamma
    alphas = np.arange(0.2, 10.001, 0.001)
    r = gamma(2 / alphas) ** 2 / (gamma(1 / alphas) * gamma(3 / alphas))
    return alphas, r


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian (moment matching on the 0.001 grid of shapes):
    (shape alpha, left scale, right scale)."""
    from scipy.special import gamma
    x = x.reshape(-1)
    left = math.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else 0.0
    right = math.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else 0.0
    g = left / right if right > 0 else np.inf
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x ** 2)
    r_norm = r_hat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alphas, table = _ratio_table()
    alpha = float(alphas[np.argmin((table - r_norm) ** 2)])
    k = math.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def block_features(b: np.ndarray) -> list[float]:
    """The 18 NIQE features of one block of MSCN coefficients."""
    from scipy.special import gamma
    alpha, bl, br = aggd_fit(b)
    feats = [alpha, (bl + br) / 2]
    for shift in SHIFTS:
        prod = b * np.roll(b, shift, axis=(0, 1))
        alpha, bl, br = aggd_fit(prod)
        mean = (br - bl) * gamma(2 / alpha) / gamma(1 / alpha)
        feats += [alpha, mean, bl, br]
    return feats


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1)


def niqe_y(y: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """NIQE of a rounded luma image (H, W) in [0, 255], at least 192 px on each side."""
    mu_p, cov_p, window = params
    nh, nw = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    if nh < 2 or nw < 2:
        raise ValueError(f"NIQE needs at least {2 * BLOCK}x{2 * BLOCK} pixels, got {y.shape[1]}x{y.shape[0]}")
    img = y[: nh * BLOCK, : nw * BLOCK].astype(np.float32)        # float32 as the MATLAB/BasicSR pipeline
    per_scale = []
    for scale in (1, 2):
        coeffs = mscn(img, window)
        s = BLOCK // scale
        per_scale.append(np.array([block_features(coeffs[i * s:(i + 1) * s, j * s:(j + 1) * s])
                                   for j in range(nw) for i in range(nh)]))
        if scale == 1:
            img = (imresize_half(img.astype(np.float64) / 255.0).astype(np.float32) * np.float32(255.0))
    feats = np.concatenate(per_scale, axis=1)
    mu = np.nanmean(feats, axis=0)
    cov = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    d = mu_p - mu
    return float(math.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))


def niqe(rgb: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray], *, crop_border: int = 0) -> float:
    """NIQE of an (H, W, 3) RGB image in [0, 255] (Y channel, rounded, as BasicSR's calculate_niqe)."""
    y = y_channel(rgb)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_y(np.round(y), params)
