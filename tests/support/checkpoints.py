"""Realistic random GFP-GAN weights and face-crop inputs for model tests (no released weights needed).

"Realistic" = the authors' default initialisation (which :class:`vidrestore.models.GFPGAN` mirrors:
PyTorch default convs/linears, kaiming-normal modulations with bias 1, unit-variance conv weights
after the 1/sqrt(fan_in) scaling, Gaussian noise buffers) plus what training would have moved away
from zero, so that every path of the network changes the output: non-zero noise strengths, small
random biases in the decoder, and SFT scales near 1. With these weights each plausible
re-implementation mistake moves the 512 px output by far more than the parity tolerance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidrestore.models import GFPGAN, save_gfpgan


def realistic_state_dict(out_size: int = 512, *, seed: int = 0, channel_multiplier: int = 2,
                         num_style_feat: int = 512) -> dict[str, Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GFPGAN(out_size, channel_multiplier=channel_multiplier, num_style_feat=num_style_feat)
        gen = torch.Generator().manual_seed(seed + 1)
        state = model.state_dict()
        for name, value in state.items():
            if not name.startswith("stylegan_decoder."):
                if name.startswith("condition_scale.") and name.endswith(".2.bias"):
                    value.add_(1.0)                                     # scale = 1 + small map
                continue
            if value.numel() == 1 and name.endswith(".weight"):            # noise strength
                value.copy_(torch.rand(1, generator=gen) * 0.15 + 0.05)
            elif name.endswith(".bias") and ".modulation." not in name and "style_mlp" not in name:
                value.copy_(torch.randn(value.shape, generator=gen) * 0.1)
    return {k: v.clone() for k, v in state.items()}


def write_checkpoint(path: Path, out_size: int = 512, *, seed: int = 0, channel_multiplier: int = 2,
                     num_style_feat: int = 512, key: str = "params_ema") -> Path:
    """A random-weight checkpoint in the official ``{key: state_dict}`` format."""
    state = realistic_state_dict(out_size, seed=seed, channel_multiplier=channel_multiplier,
                                 num_style_feat=num_style_feat)
    return save_gfpgan(state, path, key=key)


def load_face(path: Path, size: int = 512) -> Tensor:
    """An RGB image file -> (1, 3, size, size) float32 in [-1, 1]."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (clamped, peak-to-peak 2)."""
    a = a.float().clamp(-1, 1)
    b = b.float().clamp(-1, 1)
    mse = (a - b).square().mean().item()
    return float("inf") if mse == 0 else 10.0 * float(np.log10(4.0 / mse))
