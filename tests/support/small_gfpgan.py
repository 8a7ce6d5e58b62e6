"""Small GFP-GANs for engine/backend tests: the real model class and code paths, a fraction of the cost.

``small_gfpgan()``: 64 px, narrow widths - an in-memory module (fast export and inference).
``small_checkpoint(path)``: 8 px at full width, saved in the official format, so that
:func:`vidrestore.models.load_gfpgan` (which infers size/width from the keys) can load it.
Noise strengths and decoder biases are randomised like trained weights so every path matters.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not name.startswith("stylegan_decoder."):
                continue
            if value.numel() == 1 and name.endswith(".weight"):          # noise strength
                value.copy_(torch.rand(1, generator=gen) * 0.15 + 0.05)
            elif name.endswith(".bias") and ".modulation." not in name and "style_mlp" not in name:
                value.copy_(torch.randn(value.shape, generator=gen) * 0.1)
    return model.eval().requires_grad_(False)


def small_gfpgan(out_size: int = 64, *, seed: int = 0, narrow: float = 0.125) -> torch.nn.Module:
    from vidrestore.models import GFPGAN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GFPGAN(out_size, num_style_feat=64, num_mlp=1, narrow=narrow)
    return _randomise(model, seed + 1)


def small_checkpoint(path: Path, *, out_size: int = 8, seed: int = 0) -> Path:
    from vidrestore.models import GFPGAN, save_gfpgan

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GFPGAN(out_size, num_style_feat=64, num_mlp=1, channel_multiplier=1)
    return save_gfpgan(_randomise(model, seed + 1), path)


def face_batch(testdata: Path, size: int, n: int = 1) -> torch.Tensor:
    """Real aligned face crops resized to ``size`` (Adele, Julia Roberts, repeated), (n, 3, S, S) in [-1, 1]."""
    import cv2

    names = ["gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png"]
    crops = []
    for i in range(n):
        bgr = cv2.imread(str(testdata / "images" / names[i % 2]), cv2.IMREAD_COLOR)
        if bgr.shape[:2] != (size, size):
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        if i >= 2:
            bgr = np.ascontiguousarray(bgr[:, ::-1])  # mirrored: a different input
        crops.append(torch.from_numpy(bgr[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(crops).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor, *, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2), both clamped like pixels would be."""
    a, b = a.float().clamp(-1, 1), b.float().clamp(-1, 1)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(peak_to_peak ** 2 / mse))
