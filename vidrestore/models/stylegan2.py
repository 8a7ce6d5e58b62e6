"""StyleGAN2 generator pieces in the "clean" layout of the released GFP-GAN checkpoints.

Differences from the authors' implementation (same numbers, different arithmetic):

* The modulated convolution modulates the *input* instead of the weight:
  ``conv(x * s, W) * demod`` with ``demod[b, o] = rsqrt(sum_i s[b, i]^2 * sum_kk W[o, i]^2 + eps)``.
  That is one ordinary ``F.conv2d`` shared by the whole batch (no ``groups=batch``), so the batch
  dimension stays dynamic in ONNX/TensorRT exports and one large GEMM serves all faces.
* The demodulation factor is computed in FP32 whatever the module's dtype (FP16/BF16 sums of 4608
  squares lose too much precision), then cast back.

Custom kernels: :meth:`StyleGAN2Generator.set_kernels` plugs in an object with ``style_demod``,
``modulate_input``, ``modconv_epilogue`` and ``sft_half`` (the signatures of
``engines.kernels_reference``; ``engines.kernels.ModConvKernels``/``SFTKernels`` are the CUDA twins).
StyleConv then runs modulate -> shared conv -> one fused epilogue (demod, gain, noise, bias, LeakyReLU)
and CS-SFT runs in place. Without kernels (the default, and what ONNX export traces) the plain torch
code below is used unchanged.

State-dict key names follow the released checkpoints exactly (``modulated_conv.modulation.weight``,
``noises.noise{i}``, ``style_mlp.{1,3,...}`` ...), so the files load with ``strict=True``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .sft import cs_sft

LRELU_SLOPE = 0.2
DEMOD_EPS = 1e-8


def upsample2x(x: Tensor) -> Tensor:
    """Bilinear x2, ``align_corners=False`` (the upsampling of every GFP-GAN level and RGB skip)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def stylegan_channels(*, channel_multiplier: int = 2, narrow: float = 1.0) -> dict[int, int]:
    """Feature width per resolution of the StyleGAN2 decoder (the U-Net uses half of it)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512}
    for res, width in ((64, 256), (128, 128), (256, 64), (512, 32), (1024, 16)):
        base[res] = width * channel_multiplier
    return {res: int(width * narrow) for res, width in base.items()}


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (optionally demodulated), written as input modulation.

    ``weight`` is stored as (1, out, in, k, k) like the released checkpoints. ``upsample`` applies
    bilinear x2 to the input before an ordinary padded conv (no transposed conv, no blur).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int, *,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
                                   / math.sqrt(fan_in))
        self.reset_modulation()

    @torch.no_grad()
    def reset_modulation(self) -> None:
        """Kaiming-normal (fan_in, linear gain) weights and bias 1, as the released models were initialised."""
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        self.modulation.bias.fill_(1.0)

    def weight_sq(self) -> Tensor:
        """(out, in) float32 sum of squared weights over the kernel window (cached until the
        weight changes or moves; used by custom kernels' style_demod)."""
        w = self.weight
        key = (id(w), w._version, w.device, w.dtype)
        cached = getattr(self, "_wsq_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, w.detach()[0].float().square().sum(dim=(2, 3)).contiguous())
            self._wsq_cache = cached
        return cached[1]

    def demodulation(self, s: Tensor) -> Tensor:
        """(N, in) styles -> (N, out) factors rsqrt(sum_i s_i^2 * |W_oi|^2 + eps), computed in FP32
        (also under autocast, which would otherwise run the matmul in FP16/BF16)."""
        with torch.autocast(device_type=s.device.type, enabled=False):
            if torch.jit.is_tracing():
                # ONNX export: the per-weight sums are a graph constant of (out, in) - the exporter
                # cannot fold ReduceSum, so tracing the expression stored W**2 (out, in, k, k) beside
                # W, a quarter more file for the runtime to fold again (engines.export_onnx)
                w2 = self.weight_sq()
            else:
                w2 = self.weight[0].float().square().sum(dim=(2, 3))        # (out, in)
            return torch.rsqrt(s.float().square() @ w2.t() + DEMOD_EPS)    # (N, out)

    def forward(self, x: Tensor, style: Tensor, *, gain: float = 1.0) -> Tensor:
        """x: (N, in, H, W); style: (N, num_style_feat) -> (N, out, H', W') (H' = 2H when upsampling),
        times ``gain`` (folded into the demodulation factor: one pass over the output)."""
        s = self.modulation(style)                                     # (N, in)
        x = x * s[:, :, None, None].to(x.dtype)    # per-channel scale commutes with bilinear resize
        if self.upsample:
            x = upsample2x(x)
        out = F.conv2d(x, self.weight[0].to(x.dtype), padding=self.kernel_size // 2)
        if self.demodulate:
            out = out * (self.demodulation(s) * gain).to(out.dtype)[:, :, None, None]
        elif gain != 1.0:
            out = out * gain
        return out

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
                f"demodulate={self.demodulate}, upsample={self.upsample}")


class StyleConv(nn.Module):
    """Modulated conv -> x sqrt(2) -> + strength * noise -> + bias -> LeakyReLU(0.2).

    ``weight`` is the scalar noise strength (the checkpoint's name for it).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int, *,
                 upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat,
                                              demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))                        # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    kernels: Any = None       # see StyleGAN2Generator.set_kernels

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None) -> Tensor:
        """noise: (1 or N, 1, H', W') broadcast over channels, or None for fresh Gaussian noise."""
        if self.kernels is not None and noise is not None and noise.shape[0] == 1:
            return self._forward_kernels(x, style, noise)
        out = self.modulated_conv(x, style, gain=math.sqrt(2.0))
        if noise is None:
            noise = torch.randn(out.shape[0], 1, out.shape[2], out.shape[3], device=out.device,
                                dtype=out.dtype)
        # in place on the fresh conv output (autograd-safe: add and leaky_relu_ keep what they need)
        out = out.add_(self.weight * noise.to(out.dtype)).add_(self.bias)
        return F.leaky_relu_(out, LRELU_SLOPE)

    def _forward_kernels(self, x: Tensor, style: Tensor, noise: Tensor) -> Tensor:
        ops, mc = self.kernels, self.modulated_conv
        s = mc.modulation(style)
        xm = ops.modulate_input(x.contiguous(), s)
        if mc.upsample:
            xm = upsample2x(xm)
        y = F.conv2d(xm, mc.weight[0].to(xm.dtype), padding=mc.kernel_size // 2).contiguous()
        return ops.modconv_epilogue(y, ops.style_demod(s.contiguous(), mc.weight_sq()), self.bias,
                                    noise=noise, noise_strength=self.noise_strength(),
                                    gain=math.sqrt(2.0), negative_slope=LRELU_SLOPE, activate=True)

    def noise_strength(self) -> float:
        """The noise strength as a Python float, read once (kernels take it by value; reading it
        from a CUDA tensor synchronises, so it is cached until the parameter changes)."""
        w = self.weight
        key = (id(w), w._version, w.device, w.dtype)
        cached = getattr(self, "_strength_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, float(w.detach().float().cpu()))
            self._strength_cache = cached
        return cached[1]


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation + bias, plus the upsampled RGB of the previous level."""

    def __init__(self, in_channels: int, num_style_feat: int, *, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    kernels: Any = None       # see StyleGAN2Generator.set_kernels

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.kernels is not None:
            mc = self.modulated_conv
            xm = self.kernels.modulate_input(x.contiguous(), mc.modulation(style))
            y = F.conv2d(xm, mc.weight[0].to(xm.dtype)).contiguous()
            out = self.kernels.modconv_epilogue(y, None, self.bias, gain=1.0, activate=False)
        else:
            out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (upsample2x(skip) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 input of the generator: (1, C, 4, 4) expanded to the batch (no copy)."""

    def __init__(self, num_channel: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, like: Tensor) -> Tensor:
        """like: any tensor whose first dim is the batch; keeps the batch symbolic for export."""
        return self.weight.expand(like.shape[0], -1, -1, -1)


class PixelNorm(nn.Module):
    """x / rms(x) over features (first layer of the style MLP; parameter-free)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def style_mlp(num_style_feat: int, num_mlp: int) -> nn.Sequential:
    """Mapping network z -> w. Present in the checkpoints (keys style_mlp.1, .3, ...), unused by
    GFP-GAN, whose encoder predicts the W codes directly."""
    layers: list[nn.Module] = [PixelNorm()]
    for _ in range(num_mlp):
        lin = nn.Linear(num_style_feat, num_style_feat)
        nn.init.kaiming_normal_(lin.weight, a=LRELU_SLOPE, mode="fan_in", nonlinearity="leaky_relu")
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.LeakyReLU(LRELU_SLOPE)]
    return nn.Sequential(*layers)


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 synthesis network fed with per-layer W codes and optional CS-SFT conditions.

    Level 0 is 4x4 (one StyleConv + ToRGB); level k >= 1 has resolution 4 * 2^k with an upsampling
    StyleConv, (CS-SFT), a StyleConv and a ToRGB whose skip is the upsampled previous RGB.
    Latent layout: 0 -> 4x4 conv, 1 -> first ToRGB; level k uses 2k-1, 2k, 2k+1.
    Noise buffer 0 feeds the 4x4 conv; level k's convs take buffers 2k-1 and 2k.
    """

    def __init__(self, out_size: int, *, num_style_feat: int = 512, num_mlp: int = 8,
                 channel_multiplier: int = 2, narrow: float = 1.0) -> None:
        super().__init__()
        log_size = int(math.log2(out_size))
        if 2 ** log_size != out_size or out_size < 8:
            raise ValueError(f"out_size must be a power of two >= 8, got {out_size}")
        self.out_size = out_size
        self.log_size = log_size
        self.num_style_feat = num_style_feat
        self.num_layers = 2 * (log_size - 2) + 1          # styled convs = noise buffers
        self.num_latent = 2 * log_size - 2
        ch = stylegan_channels(channel_multiplier=channel_multiplier, narrow=narrow)
        self.channels = ch

        self.style_mlp = style_mlp(num_style_feat, num_mlp)
        self.constant_input = ConstantInput(ch[4], 4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for level in range(3, log_size + 1):
            out_ch = ch[2 ** level]
            self.style_convs.append(StyleConv(in_ch, out_ch, 3, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, upsample=True))
            in_ch = out_ch

    kernels: Any = None

    def set_kernels(self, kernels: Any | None) -> None:
        """Use ``kernels`` (style_demod, modulate_input, modconv_epilogue, sft_half) for the styled
        convs, ToRGBs and CS-SFT; None restores the plain torch path. Inference only (no autograd
        through custom kernels); per-sample noise (randomize_noise with N > 1) keeps the torch path."""
        self.kernels = kernels
        for m in self.modules():
            if isinstance(m, (StyleConv, ToRGB)):
                m.kernels = kernels

    def stored_noise(self) -> list[Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def forward(self, latent: Tensor, conditions: Sequence[tuple[Tensor, Tensor]] = (), *,
                randomize_noise: bool = False) -> Tensor:
        """latent: (N, num_latent, num_style_feat) W codes; conditions: (scale, shift) per level from
        8 px upwards, each (N, C/2, H, W) for CS-SFT on the second half of the channels (may cover
        fewer levels than the generator has). Returns the RGB image (N, 3, out_size, out_size)."""
        noise: list[Tensor | None] = ([None] * self.num_layers if randomize_noise
                                      else list(self.stored_noise()))
        out = self.style_conv1(self.constant_input(latent), latent[:, 0], noise[0])
        rgb = self.to_rgb1(out, latent[:, 1])
        for k in range(len(self.to_rgbs)):
            i = 2 * k + 1
            out = self.style_convs[2 * k](out, latent[:, i], noise[i])
            if k < len(conditions):
                scale, shift = conditions[k]
                if self.kernels is not None:                # in place on the fresh conv output
                    out = self.kernels.sft_half(out.contiguous(), scale.to(out.dtype).contiguous(),
                                                shift.to(out.dtype).contiguous())
                else:
                    out = cs_sft(out, scale, shift)
            out = self.style_convs[2 * k + 1](out, latent[:, i + 1], noise[i + 1])
            rgb = self.to_rgbs[k](out, latent[:, i + 2], rgb)
        return rgb
