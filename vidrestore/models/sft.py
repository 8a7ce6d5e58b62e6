"""Channel-split spatial feature transform (CS-SFT) of GFP-GAN, and its condition branches.

CS-SFT keeps the first half of the decoder's channels (the generative prior) unchanged and
modulates the second half with spatial maps predicted from the degradation-removal U-Net:
``[x_a, x_b] -> [x_a, x_b * scale + shift]`` (the scale is used as is, not ``1 + scale``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

LRELU_SLOPE = 0.2


def cs_sft(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """x: (N, C, H, W); scale, shift: (N, C - C//2, H, W) (or broadcastable) -> (N, C, H, W).

    The split point is ``C // 2``: channels ``[0, C//2)`` pass through, ``[C//2, C)`` are modulated.
    """
    half = x.shape[1] // 2
    same, mod = x[:, :half], x[:, half:]
    return torch.cat([same, mod * scale + shift], dim=1)


class ConditionBranch(nn.Sequential):
    """3x3 conv -> LeakyReLU(0.2) -> 3x3 conv: U-Net feature (N, C, H, W) -> SFT map (N, out, H, W).

    A Sequential so that the parameter names match the checkpoints (``.0.weight``, ``.2.weight``).
    """

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(LRELU_SLOPE, inplace=True),
            nn.Conv2d(channels, out_channels or channels, 3, 1, 1),
        )


def make_condition_branches(widths: list[int]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """One scale and one shift branch per level, given the U-Net feature width of each level.

    With the half-channel split the decoder's modulated half has as many channels as the U-Net
    feature (the U-Net is half as wide as the decoder), so each branch keeps its width.
    """
    scale = nn.ModuleList(ConditionBranch(w) for w in widths)
    shift = nn.ModuleList(ConditionBranch(w) for w in widths)
    return scale, shift
