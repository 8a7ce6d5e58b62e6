"""StyleGAN2 pieces: input modulation equals weight modulation, FP32 demodulation, noise, ToRGB skip."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from vidrestore.models.stylegan2 import ModulatedConv2d, StyleConv, StyleGAN2Generator, ToRGB


def _weight_modulated(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Textbook StyleGAN2: per-sample modulated+demodulated weights, one conv per sample."""
    s = conv.modulation(style)                                   # (N, in)
    outs = []
    for b in range(x.shape[0]):
        w = conv.weight[0] * s[b][None, :, None, None]
        if conv.demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xb = x[b:b + 1]
        if conv.upsample:
            xb = F.interpolate(xb, scale_factor=2, mode="bilinear", align_corners=False)
        outs.append(F.conv2d(xb, w, padding=conv.kernel_size // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate,upsample,k", [(True, False, 3), (True, True, 3), (False, False, 1)])
def test_input_modulation_equals_weight_modulation(demodulate: bool, upsample: bool, k: int) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, k, 32, demodulate=demodulate, upsample=upsample)
    x, style = torch.randn(3, 16, 6, 6), torch.randn(3, 32)
    with torch.no_grad():
        got, want = conv(x, style), _weight_modulated(conv, x, style)
    assert got.shape == want.shape == (3, 8, 12 if upsample else 6, 12 if upsample else 6)
    assert (got - want).abs().max().item() < 1e-5


def test_demodulation_is_fp32_in_half_modules() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(512, 4, 3, 8).half()
    s = (torch.randn(2, 512) * 300).half()              # sum of 4608 squares ~ 1e5 > FP16 max 65504
    exact = torch.rsqrt((s.double()[:, None, :, None, None] * conv.weight.double()).square().sum(dim=(2, 3, 4)))
    d = conv.demodulation(s)
    assert d.dtype == torch.float32
    assert ((d.double() - exact).abs() / exact).max().item() < 1e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv.demodulation(s.float()).dtype == torch.float32
    naive = torch.rsqrt((s[:, None, :, None, None] * conv.weight).square().sum(dim=(2, 3, 4)))
    assert naive.dtype == torch.float16 and (naive == 0).any()   # what an FP16 sum would give


def test_styleconv_order_sqrt2_noise_bias_lrelu() -> None:
    torch.manual_seed(0)
    layer = StyleConv(4, 4, 3, 8)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.bias.normal_()
    x, style, noise = torch.randn(2, 4, 5, 5), torch.randn(2, 8), torch.randn(1, 1, 5, 5)
    with torch.no_grad():
        pre = layer.modulated_conv(x, style) * math.sqrt(2) + 0.5 * noise + layer.bias
        assert torch.allclose(layer(x, style, noise), F.leaky_relu(pre, 0.2), atol=1e-6)
        a, b = layer(x, style, None), layer(x, style, None)
    assert (a - b).abs().max() > 1e-3                            # None: fresh noise per call


def test_torgb_adds_upsampled_skip() -> None:
    torch.manual_seed(0)
    rgb = ToRGB(4, 8)
    x, style, skip = torch.randn(1, 4, 8, 8), torch.randn(1, 8), torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        base = rgb(x, style)
        up = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        assert torch.allclose(rgb(x, style, skip), base + up, atol=1e-6)


def test_generator_layout() -> None:
    gen = StyleGAN2Generator(32, num_style_feat=16, num_mlp=2)
    assert gen.num_latent == 8 and gen.num_layers == 7
    assert [tuple(b.shape) for b in gen.stored_noise()] == [
        (1, 1, 4, 4), (1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 16, 16), (1, 1, 32, 32), (1, 1, 32, 32)]
    keys = set(gen.state_dict())
    assert {"style_mlp.1.weight", "style_mlp.3.bias", "constant_input.weight",
            "style_conv1.modulated_conv.modulation.weight", "style_convs.5.weight", "to_rgbs.2.bias",
            "noises.noise6"} <= keys
    with torch.no_grad():
        out = gen(torch.randn(2, 8, 16))
    assert out.shape == (2, 3, 32, 32)
