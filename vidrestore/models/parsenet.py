"""ParseNet-512: the face-parsing network of GFP-GAN's paste helper (facexlib ``parsing_parsenet.pth``).

An encoder / residual body / decoder on a 512x512 RGB face in [-1, 1] (the authors' normalisation
``(x / 255 - 0.5) / 0.5``), giving 19-class CelebAMask-HQ logits at 512x512 (and an auxiliary image
head the paste does not use). Layout, as the released checkpoint stores it (a plain state dict):

- ``ConvLayer``: optional nearest x2 upsampling, reflection pad (k-1)/2, conv (stride 2 for "down";
  no bias when followed by batch norm), batch norm, activation (LeakyReLU 0.2 or none).
- ``ResidualBlock``: shortcut = identity, or a plain 3x3 ConvLayer (with the block's up/down scaling)
  when the shape changes; body = ConvLayer(act) -> ConvLayer(no act), the up/down step in the first
  ("up") or second ("down") conv; output = shortcut + body, no activation after the sum.
- 512 in, 32 px at the bottleneck: a 3x3 stem conv (no norm, no activation) to 64 channels, 4 down blocks
  (64-128-256-256-256, channels clipped to [32, 256]), 10 body blocks at 256 added to the encoder
  output (``feat + body(feat)``), 4 up blocks (256-256-256-128-64), then two 3x3 heads (19 logits, 3 image).

The module and attribute names equal the checkpoint's keys, so ``load_state_dict(strict=True)`` takes the
authors' file as is. Parity against facexlib's ``parsing/parsenet.py`` is tested with random weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError

NUM_CLASSES = 19


class _Norm(nn.Module):
    def __init__(self, channels: int, bn: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, *, scale: str = "none", bn: bool = False, act: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.conv2d = nn.Conv2d(cin, cout, 3, 2 if scale == "down" else 1, bias=not bn)
        self.norm = _Norm(cout, bn)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        return F.leaky_relu(x, 0.2) if self.act else x


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, scale: str = "none") -> None:
        super().__init__()
        self.shortcut_func = (nn.Identity() if scale == "none" and cin == cout
                              else ConvLayer(cin, cout, scale=scale))
        first, second = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.conv1 = ConvLayer(cin, cout, scale=first, bn=True, act=True)
        self.conv2 = ConvLayer(cout, cout, scale=second, bn=True, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_func(x) + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """``forward(x) -> (logits (N, 19, S, S), image (N, 3, S, S))`` for x (N, 3, S, S) in [-1, 1]."""

    def __init__(self, *, size: int = 512, base: int = 64, depth: int = 10, classes: int = NUM_CLASSES,
                 bottleneck: int = 32, channels: tuple[int, int] = (32, 256)) -> None:
        super().__init__()
        lo, hi = channels

        def clip(c: int) -> int:
            return max(lo, min(c, hi))

        steps = (size // min(size, bottleneck)).bit_length() - 1
        enc: list[nn.Module] = [ConvLayer(3, base)]
        head = base
        for _ in range(steps):
            enc.append(ResidualBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[ResidualBlock(clip(head), clip(head)) for _ in range(depth)])
        dec = []
        for _ in range(steps):
            dec.append(ResidualBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_img_conv = ConvLayer(clip(head), 3)
        self.out_mask_conv = ConvLayer(clip(head), classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        y = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(y), self.out_img_conv(y)


def load_parsenet(path: str | Path, *, map_location: str | torch.device = "cpu") -> ParseNet:
    """The released ParseNet-512 from a checkpoint file (plain state dict, or under ``params``), in eval mode.
    Raises CheckpointError naming the file for a missing/unreadable file or another architecture."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError("face-parsing weights not found", path=path) from exc
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of every kind
        raise CheckpointError(f"not a readable checkpoint ({str(exc)[:200]})", path=path) from exc
    if isinstance(state, dict) and isinstance(state.get("params"), dict):
        state = state["params"]
    net = ParseNet()
    try:
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - missing/unexpected keys, shape mismatch
        raise CheckpointError(f"not a ParseNet-512 face-parsing checkpoint ({str(exc)[:200]})",
                              path=path) from exc
    return net.eval()
