"""GFP-GAN ("clean" v1.2/v1.3/v1.4 architecture): a degradation-removal U-Net whose features drive a
pretrained StyleGAN2 decoder through per-layer W codes and channel-split SFT.

Shapes at out_size=512 (S = out_size, decoder widths 512,512,512,512,256,128,64 for 4..512 px, the
U-Net half of that):

    x (N,3,S,S) -> 1x1 conv -> down ResBlocks to 4x4 (skips kept) -> 3x3 conv = F_latent (N,256,4,4)
    F_latent -> flatten (NCHW) -> linear -> W codes (N, 2*log2(S)-2, num_style_feat)
    F_latent -> (+ skip, up ResBlock) per level 8..S -> F_spatial -> scale, shift, and an RGB
    StyleGAN2(W, [(scale, shift)]) -> image (N,3,S,S), not clamped

Parameter names equal the released checkpoints', so they load with ``strict=True`` (285 keys at 512).
"""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from .sft import make_condition_branches
from .stylegan2 import LRELU_SLOPE, StyleGAN2Generator, stylegan_channels, upsample2x


class ResBlock(nn.Module):
    """conv3x3 -> LReLU -> resize -> conv3x3 -> LReLU, plus a bias-free 1x1 conv of the resized input.

    ``down``: resize = bilinear x0.5 (align_corners=False), i.e. exactly 2x2 average pooling.
    ``up``: bilinear x2; the linear 1x1 skip is applied before upsampling (same result, 4x cheaper).
    """

    def __init__(self, in_channels: int, out_channels: int, *, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # in-place activations on fresh conv outputs (a conv's backward does not need its output)
        out = F.leaky_relu_(self.conv1(x), LRELU_SLOPE)
        if self.up:
            out = F.leaky_relu_(self.conv2(upsample2x(out)), LRELU_SLOPE)
            return out + upsample2x(self.skip(x))
        out = F.leaky_relu_(self.conv2(F.avg_pool2d(out, 2)), LRELU_SLOPE)
        return out + self.skip(F.avg_pool2d(x, 2))


class GFPGAN(nn.Module):
    """GFPGANv1Clean with different_w=True, sft_half=True, input_is_latent=True (the released setup).

    Constructor options let training build small models (e.g. out_size=64 or 128) with the same code.
    """

    def __init__(self, out_size: int = 512, *, num_style_feat: int = 512, channel_multiplier: int = 2,
                 num_mlp: int = 8, narrow: float = 1.0) -> None:
        super().__init__()
        log_size = int(math.log2(out_size))
        if 2 ** log_size != out_size or out_size < 8:
            raise ValueError(f"out_size must be a power of two >= 8, got {out_size}")
        self.out_size = out_size
        self.num_style_feat = num_style_feat
        self.channel_multiplier = channel_multiplier
        self.num_mlp = num_mlp
        self.narrow = narrow
        levels = [2 ** i for i in range(3, log_size + 1)]               # 8, 16, ..., out_size
        ch = stylegan_channels(channel_multiplier=channel_multiplier, narrow=narrow * 0.5)

        # degradation removal U-Net
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(ch[res], ch[res // 2], up=False) for res in reversed(levels))
        self.final_conv = nn.Conv2d(ch[4], ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(
            ResBlock(ch[res // 2], ch[res], up=True) for res in levels)
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[res], 3, 1) for res in levels)

        self.stylegan_decoder = StyleGAN2Generator(
            out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
            channel_multiplier=channel_multiplier, narrow=narrow)
        self.num_latent = self.stylegan_decoder.num_latent
        self.final_linear = nn.Linear(ch[4] * 4 * 4, self.num_latent * num_style_feat)
        self.condition_scale, self.condition_shift = make_condition_branches([ch[r] for r in levels])

    def set_kernels(self, kernels: Any | None) -> None:
        """Custom kernels for the StyleGAN2 decoder (see :meth:`StyleGAN2Generator.set_kernels`)."""
        self.stylegan_decoder.set_kernels(kernels)

    @property
    def config(self) -> dict[str, int | float]:
        """Constructor arguments, enough to rebuild the architecture."""
        return {"out_size": self.out_size, "num_style_feat": self.num_style_feat,
                "channel_multiplier": self.channel_multiplier, "num_mlp": self.num_mlp,
                "narrow": self.narrow}

    def forward(self, x: Tensor, *, return_rgbs: bool = False, randomize_noise: bool = False
                ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """x: (N, 3, S, S) RGB in [-1, 1] -> restored (N, 3, S, S), not clamped.

        ``return_rgbs``: also return the U-Net's RGB at every level 8..S (for the pyramid loss).
        ``randomize_noise``: draw fresh noise (training) instead of the stored buffers (inference).
        """
        feat = F.leaky_relu_(self.conv_body_first(x), LRELU_SLOPE)
        skips: list[Tensor] = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu_(self.final_conv(feat), LRELU_SLOPE)             # F_latent (N, C, 4, 4)

        latent = self.final_linear(feat.flatten(1)).reshape(feat.shape[0], self.num_latent,
                                                            self.num_style_feat)   # batch 0 traces too

        conditions: list[tuple[Tensor, Tensor]] = []
        rgbs: list[Tensor] = []
        for k, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - k])                               # deepest skip first
            conditions.append((self.condition_scale[k](feat), self.condition_shift[k](feat)))
            if return_rgbs:
                rgbs.append(self.toRGB[k](feat))

        image = self.stylegan_decoder(latent, conditions, randomize_noise=randomize_noise)
        if return_rgbs:
            return image, rgbs
        return image

