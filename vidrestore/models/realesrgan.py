"""Real-ESRGAN background upsamplers in plain torch: RRDBNet (x4, and x2 through pixel-unshuffle)
and SRVGGNetCompact (realesr-general-x4v3), with the authors' state-dict key names.

Numerically the networks of BasicSR 1.4.2 ``basicsr/archs/rrdbnet_arch.py`` and Real-ESRGAN 0.3.0
``realesrgan/archs/srvgg_arch.py`` (parity tests in tests/vidrestore/models/test_realesrgan.py load
those files by path). Input and output: (N, 3, H, W) float RGB in [0, 1] (output not clamped);
RRDBNet x2 needs even H and W (callers pad, see :mod:`vidrestore.upscale.tiling`).

Checkpoints are the authors' release files, ``{"params_ema": state}`` (RealESRGAN_x4plus.pth,
RealESRGAN_x2plus.pth) or ``{"params": state}`` (realesr-general-x4v3.pth); the architecture and
its options are inferred from the state dict (:func:`infer_upsampler`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError

# --bg-upsampler name -> (release name in models.weights.KNOWN_WEIGHTS, network scale)
UPSAMPLER_RELEASES: dict[str, tuple[str, int]] = {
    "realesrgan-x2": ("RealESRGAN_x2plus", 2),
    "realesrgan-x4": ("RealESRGAN_x4plus", 4),
    "realesr-general-x4v3": ("realesr-general-x4v3", 4),
}


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions with dense connections; output ``0.2 * x5 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator. ``scale`` 4 works on the image; 2 (and 1) pixel-unshuffle it first (2x2
    or 4x4 blocks into channels), so the trunk always runs at a quarter of the output resolution
    per side and two nearest-neighbour x2 upsamplings follow."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, *, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle ** 2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that can influence an output pixel (rounded up)."""
        trunk = 2 + 15 * len(self.body)                  # conv_first, 15 convs per RRDB, conv_body
        return self.unshuffle * (trunk + 3)              # + the four HR convs (1.25 trunk pixels) + unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGGNetCompact(nn.Module):
    """A VGG-style stack at input resolution (conv + PReLU, ``num_conv`` times), a last conv to
    ``3 * upscale**2`` channels, pixel shuffle, plus the nearest-upsampled input (residual)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, *, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu") -> None:
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"act_type must be prelu, relu or leakyrelu, got {act_type!r}")
        self.upscale = upscale
        self.num_conv = num_conv
        layers: list[nn.Module] = []
        for i in range(num_conv + 1):
            layers.append(nn.Conv2d(num_in_ch if i == 0 else num_feat, num_feat, 3, 1, 1))
            layers.append(nn.PReLU(num_parameters=num_feat) if act_type == "prelu"
                          else nn.ReLU() if act_type == "relu" else nn.LeakyReLU(0.1))
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def receptive_radius(self) -> int:
        return self.num_conv + 2      # every 3x3 conv at input resolution adds one pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        base = F.interpolate(x, scale_factor=float(self.upscale), mode="nearest")
        return self.upsampler(out) + base


@dataclass(frozen=True)
class UpsamplerSpec:
    """What a checkpoint holds: the architecture and its constructor options."""

    arch: str            # "rrdbnet" | "srvgg"
    scale: int
    options: dict        # constructor keyword arguments

    def build(self) -> nn.Module:
        if self.arch == "rrdbnet":
            return RRDBNet(**self.options)
        return SRVGGNetCompact(**self.options)


def _indices(state, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := rx.fullmatch(k))})


def infer_upsampler(state: dict[str, torch.Tensor]) -> UpsamplerSpec:
    """The architecture a Real-ESRGAN state dict belongs to. Raises KeyError/ValueError otherwise."""
    if "conv_first.weight" in state:
        first = state["conv_first.weight"]
        out_ch = int(state["conv_last.weight"].shape[0])
        ratio = int(first.shape[1]) // out_ch
        scale = {1: 4, 4: 2, 16: 1}.get(ratio)
        if scale is None or int(first.shape[1]) % out_ch:
            raise ValueError(f"conv_first takes {first.shape[1]} channels for {out_ch} output channels")
        blocks = _indices(state, r"body\.(\d+)\.rdb1\.conv1\.weight")
        if not blocks:
            raise KeyError("body.0.rdb1.conv1.weight")
        opts = dict(num_in_ch=out_ch, num_out_ch=out_ch, scale=scale, num_feat=int(first.shape[0]),
                    num_block=len(blocks), num_grow_ch=int(state["body.0.rdb1.conv1.weight"].shape[0]))
        return UpsamplerSpec("rrdbnet", scale, opts)
    convs = [i for i in _indices(state, r"body\.(\d+)\.weight") if state[f"body.{i}.weight"].ndim == 4]
    if not convs:
        raise KeyError("conv_first.weight or body.0.weight")
    first, last = state[f"body.{convs[0]}.weight"], state[f"body.{convs[-1]}.weight"]
    in_ch, num_feat = int(first.shape[1]), int(first.shape[0])
    upscale = int(round((int(last.shape[0]) / in_ch) ** 0.5))
    if upscale * upscale * in_ch != int(last.shape[0]):
        raise ValueError(f"last conv has {last.shape[0]} channels, not 3 * scale^2")
    num_conv = len(convs) - 2
    act = "prelu" if "body.1.weight" in state else "leakyrelu"
    opts = dict(num_in_ch=in_ch, num_out_ch=in_ch, num_feat=num_feat, num_conv=num_conv, upscale=upscale,
                act_type=act)
    return UpsamplerSpec("srvgg", upscale, opts)


def load_upsampler(path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a Real-ESRGAN checkpoint (``params_ema`` preferred, else ``params``) strictly; eval mode,
    gradients off. CheckpointError naming the file for anything that is not one."""
    from .checkpoints import _mismatch_message, read_checkpoint_state

    path = Path(path)
    state = read_checkpoint_state(path, kind="Real-ESRGAN")
    try:
        spec = infer_upsampler(state)
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"not a Real-ESRGAN (RRDBNet / SRVGGNetCompact) checkpoint: cannot infer the "
                              f"architecture from its {len(state)} keys ({exc})", path=path) from exc
    model = spec.build()
    problem = _mismatch_message(model, state)
    if problem is not None:
        raise CheckpointError(f"wrong architecture for {spec.arch} {spec.options}: {problem}", path=path)
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device=device, dtype=dtype)
