"""The GFP-GAN degradation model: y = [(x * k_sigma) downsampled by r + n_delta]_JPEG_q, resized back.

Images are float32 HWC RGB in [0, 1]. Every random choice comes from a ``numpy.random.Generator``
passed in; nothing touches a global RNG, so one seed gives one output on any worker.

    params = sample_params(cfg, rng)          # the random draws, a small frozen record
    lq = apply_degradation(gt, params, rng)   # the noise field is the only draw made here

Ranges default to the authors' GFPGANv1 options (``DegradationConfig``), including their second,
torchvision colour jitter on the LQ (brightness, contrast, saturation, hue in a random order, with
probability ``color_jitter_pt_prob`` = 0.3; ``color_jitter_pt``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import DegradationConfig


# ---------------------------------------------------------------------------------------------
# operators

def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """(size, size) float32 Gaussian summing to 1; anisotropic when sigma_y differs, rotated by theta
    (radians). ``size`` must be odd; the kernel is centred on the middle pixel."""
    if size % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {size}")
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    grid = np.stack([xx, yy], -1).astype(np.float64)                         # (size, size, 2) as (x, y)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", grid, inv, grid))
    return (k / k.sum()).astype(np.float32)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with ``kernel`` (reflect-101 borders, like the authors' cv2.filter2D)."""
    return cv2.filter2D(img, -1, kernel)


def downsample(img: np.ndarray, scale: float) -> np.ndarray:
    """Bilinear resize to (w // scale, h // scale) pixels (at least 1)."""
    h, w = img.shape[:2]
    size = (max(1, int(w // scale)), max(1, int(h // scale)))
    out = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    return out if out.ndim == img.ndim else out[..., None]


def resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to (height, width)."""
    out = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out if out.ndim == img.ndim else out[..., None]


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, *, gray: bool = False
                       ) -> np.ndarray:
    """Add N(0, (sigma/255)^2) per pixel (per channel unless ``gray``) and clip to [0, 1]."""
    shape = img.shape[:2] + (1,) if gray else img.shape
    noise = rng.standard_normal(shape).astype(np.float32) * np.float32(sigma / 255.0)
    return np.clip(img + noise, 0.0, 1.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG at ``quality`` (1-100) with OpenCV; RGB in, RGB out."""
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    bgr = np.ascontiguousarray(u8[..., ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("cv2.imencode failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(dec[..., ::-1]).astype(np.float32) / 255.0


def color_jitter(img: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Add a per-channel offset (3,) in [0, 1] units and clip."""
    return np.clip(img + shift.astype(np.float32), 0.0, 1.0)


JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def color_jitter_pt(img: np.ndarray, order: tuple[int, ...], factors: tuple[float, ...]) -> np.ndarray:
    """The authors' ``color_jitter_pt``: torchvision's ``adjust_<op>`` applied in ``order`` (indices into
    JITTER_OPS) with ``factors[i]`` for op i, on (H, W, 3) float32 RGB in [0, 1]."""
    import torch
    from torchvision.transforms import functional as TF
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    for i in order:
        t = getattr(TF, f"adjust_{JITTER_OPS[i]}")(t, float(factors[i]))
    return np.ascontiguousarray(t.numpy().transpose(1, 2, 0)).astype(np.float32)


def to_gray(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma, repeated to 3 channels."""
    y = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.repeat(y[..., None], 3, axis=2).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the random model

@dataclass(frozen=True)
class DegradationParams:
    kernel: np.ndarray           # (k, k) float32, sums to 1
    sigma: tuple[float, float, float]  # sigma_x, sigma_y, theta of the kernel
    scale: float                 # downsampling factor r
    noise_sigma: float           # 0-255 units
    jpeg_quality: int
    jitter: np.ndarray | None    # (3,) offset in [0, 1] units, or None
    gray: bool
    jitter_pt: tuple[tuple[int, ...], tuple[float, ...]] | None = None   # (order, factors) or None


def sample_params(cfg: DegradationConfig, rng: np.random.Generator) -> DegradationParams:
    """Draw one set of degradation parameters (fixed draw order: kernel, r, noise, q, jitter, gray,
    tensor jitter)."""
    kind = cfg.kernel_list[int(rng.choice(len(cfg.kernel_list), p=np.asarray(cfg.kernel_prob) /
                                          sum(cfg.kernel_prob)))]
    lo, hi = cfg.blur_sigma
    if kind == "iso":
        sx = sy = float(rng.uniform(lo, hi))
        theta = 0.0
    else:
        sx, sy = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
        theta = float(rng.uniform(-math.pi, math.pi))
    kernel = gaussian_kernel(cfg.blur_kernel_size, sx, sy, theta)
    scale = float(rng.uniform(*cfg.downsample_range))
    noise = float(rng.uniform(*cfg.noise_range))
    quality = int(rng.uniform(*cfg.jpeg_range))
    jitter = None
    if rng.uniform() < cfg.color_jitter_prob:
        s = cfg.color_jitter_shift / 255.0
        jitter = rng.uniform(-s, s, 3).astype(np.float32)
    gray = bool(rng.uniform() < cfg.gray_prob)
    jitter_pt = None
    if rng.uniform() < cfg.color_jitter_pt_prob:
        order = tuple(int(i) for i in rng.permutation(len(JITTER_OPS)))
        factors = tuple(float(rng.uniform(*getattr(cfg, op))) for op in JITTER_OPS)
        jitter_pt = (order, factors)
    return DegradationParams(kernel, (sx, sy, theta), scale, noise, quality, jitter, gray, jitter_pt)


def apply_degradation(gt: np.ndarray, p: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    """GT (H, W, 3) float32 [0, 1] -> LQ of the same size, quantised to 8-bit levels."""
    h, w = gt.shape[:2]
    lq = blur(gt, p.kernel)
    lq = downsample(lq, p.scale)
    lq = add_gaussian_noise(lq, p.noise_sigma, rng)
    lq = jpeg_compress(lq, p.jpeg_quality)
    lq = resize_to(lq, (h, w))
    if p.jitter is not None:
        lq = color_jitter(lq, p.jitter)
    if p.gray:
        lq = to_gray(lq)
    if p.jitter_pt is not None:
        lq = color_jitter_pt(lq, *p.jitter_pt)
    return (np.clip(np.rint(lq * 255.0), 0, 255) / 255.0).astype(np.float32)


def degrade(gt: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Sample and apply: returns (lq, gt), gt turned gray too when the LQ is gray and cfg.gt_gray."""
    p = sample_params(cfg, rng)
    lq = apply_degradation(gt, p, rng)
    if p.gray and cfg.gt_gray:
        gt = to_gray(gt)
    return lq, gt
