"""Discriminators: StyleGAN2's (whole face) and GFP-GAN's facial-component one (eyes, mouth).

"Clean" form of the authors' (BasicSR) StyleGAN2Discriminator and FacialComponentDiscriminator: the
same layers, parameter names and numerics (equalised learning rate, [1, 3, 3, 1] blur before every
stride-2 conv, leaky ReLU x sqrt(2) with a bias, minibatch standard deviation), written with plain
torch ops instead of the compiled ``upfirdn2d``/``fused_act`` extensions, so the authors' saved
discriminators load with ``strict=True`` and it runs on any device.

Shapes (S = out_size): x (N, 3, S, S) -> ResBlocks halve S down to 4x4 -> + stddev channel -> 3x3 conv
-> flatten -> linear -> LReLU -> linear -> (N, 1) logits.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

SQRT2 = math.sqrt(2.0)


class EqualConv2d(nn.Module):
    """Conv with weights ~ N(0, 1) scaled at run time by 1/sqrt(fan_in) (equalised learning rate)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear with run-time weight scale 1/sqrt(in); optional bias + leaky ReLU x sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, *, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = 1.0 / math.sqrt(in_channels)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, self.bias)


class BiasLeakyReLU(nn.Module):
    """leaky_relu(x + bias, 0.2) * sqrt(2) (BasicSR's FusedLeakyReLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * SQRT2


class Blur(nn.Module):
    """Depthwise FIR filter (outer product of ``kernel``, normalised) with asymmetric zero padding."""

    def __init__(self, kernel: tuple[int, ...], pad: tuple[int, int]) -> None:
        super().__init__()
        k = torch.tensor(kernel, dtype=torch.float32)
        k2 = k[None, :] * k[:, None]
        self.register_buffer("kernel", (k2 / k2.sum())[None, None], persistent=False)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, -1, -1), groups=c)


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d (stride 2 when downsampling) -> [bias + LReLU x sqrt 2]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
                 resample_kernel: tuple[int, ...] = (1, 3, 3, 1), bias: bool = True,
                 activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = len(resample_kernel) - 2 + kernel_size - 1
            layers.append(Blur(resample_kernel, ((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(BiasLeakyReLU(out_channels) if bias else _ScaledLeakyReLU())
        super().__init__(*layers)


class _ScaledLeakyReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, 0.2) * SQRT2


class ResBlock(nn.Module):
    """(conv3x3 -> blur + stride-2 conv3x3) + (blur + stride-2 1x1 skip), divided by sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, resample_kernel: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, resample_kernel=resample_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, resample_kernel=resample_kernel,
                              bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def discriminator_channels(channel_multiplier: int = 1, narrow: float = 1.0) -> dict[int, int]:
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {k: max(1, int(v * narrow)) for k, v in base.items()}


class StyleGAN2Discriminator(nn.Module):
    """Whole-face discriminator; (N, 3, S, S) -> (N, 1) logits."""

    def __init__(self, out_size: int, *, channel_multiplier: int = 1, narrow: float = 1.0,
                 resample_kernel: tuple[int, ...] = (1, 3, 3, 1), stddev_group: int = 4) -> None:
        super().__init__()
        ch = discriminator_channels(channel_multiplier, narrow)
        log_size = int(math.log2(out_size))
        body: list[nn.Module] = [ConvLayer(3, ch[out_size], 1)]
        c = ch[out_size]
        for i in range(log_size, 2, -1):
            body.append(ResBlock(c, ch[2 ** (i - 1)], resample_kernel))
            c = ch[2 ** (i - 1)]
        self.conv_body = nn.Sequential(*body)
        self.final_conv = ConvLayer(c + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1))
        self.stddev_group = stddev_group

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_body(x)
        b, c, h, w = out.shape
        group = max(g for g in range(1, min(b, self.stddev_group) + 1) if b % g == 0)
        y = out.view(group, -1, 1, c, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, y.repeat(group, 1, h, w)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(b, -1))


class FacialComponentDiscriminator(nn.Module):
    """VGG-style patch discriminator for an eye or mouth crop: (N, 3, h, w) -> (N, 1, h/4, w/4) logits,
    and with ``return_feats`` the features after conv3 (h/2) and conv5 (h/4) for the Gram style loss."""

    def __init__(self, *, width: float = 1.0) -> None:
        """``width`` < 1 narrows the layers (small test models; the authors' network is 1.0)."""
        super().__init__()
        c1, c2, c3 = (max(1, int(c * width)) for c in (64, 128, 256))
        self.conv1 = ConvLayer(3, c1, 3)
        self.conv2 = ConvLayer(c1, c2, 3, downsample=True)
        self.conv3 = ConvLayer(c2, c2, 3)
        self.conv4 = ConvLayer(c2, c3, 3, downsample=True)
        self.conv5 = ConvLayer(c3, c3, 3)
        self.final_conv = ConvLayer(c3, 1, 3, activate=False)

    def forward(self, x: Tensor, *, return_feats: bool = False) -> tuple[Tensor, list[Tensor]]:
        f1 = self.conv3(self.conv2(self.conv1(x)))
        f2 = self.conv5(self.conv4(f1))
        return self.final_conv(f2), ([f1, f2] if return_feats else [])
