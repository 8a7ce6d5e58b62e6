"""training/discriminators.py: shapes, BasicSR parameter names, blur/stddev numerics, gradients."""
from __future__ import annotations

import pytest
import torch

from training.discriminators import Blur, ConvLayer, FacialComponentDiscriminator, StyleGAN2Discriminator


def test_stylegan2_discriminator_shapes_and_names():
    d = StyleGAN2Discriminator(32, narrow=0.0625)
    out = d(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 1)
    keys = set(d.state_dict())
    # BasicSR's StyleGAN2Discriminator layout (so the authors' saved net_d loads with strict=True)
    for k in ["conv_body.0.0.weight", "conv_body.0.1.bias", "conv_body.1.conv1.0.weight", "conv_body.1.conv1.1.bias",
              "conv_body.1.conv2.1.weight", "conv_body.1.conv2.2.bias", "conv_body.1.skip.1.weight",
              "conv_body.3.skip.1.weight", "final_conv.0.weight", "final_conv.1.bias", "final_linear.0.weight",
              "final_linear.0.bias", "final_linear.1.weight", "final_linear.1.bias"]:
        assert k in keys, k
    assert "conv_body.1.skip.1.bias" not in keys and len(d.conv_body) == 4        # 32 -> 16 -> 8 -> 4
    assert not any("kernel" in k for k in keys)                                  # blur kernels are not saved


def test_full_size_widths():
    d = StyleGAN2Discriminator(512, channel_multiplier=1)
    assert d.conv_body[0][0].weight.shape == (32, 3, 1, 1) and d.final_linear[0].weight.shape == (512, 512 * 16)
    assert sum(p.numel() for p in d.parameters()) == pytest.approx(24.0e6, rel=0.1)


def test_blur_keeps_constants_and_halves_size():
    x = torch.ones(1, 2, 16, 16)
    layer = ConvLayer(2, 2, 3, downsample=True)
    assert layer(x).shape == (1, 2, 8, 8)
    skip = ConvLayer(2, 2, 1, downsample=True, bias=False, activate=False)
    assert skip(x).shape == (1, 2, 8, 8)
    blur = Blur((1, 3, 3, 1), (2, 2))
    y = blur(x)
    assert y.shape == (1, 2, 17, 17) and torch.allclose(y[..., 3:-3, 3:-3], torch.ones(1)) and y[0, 0, 0, 0] < 1
    k = blur.kernel[0, 0]
    torch.testing.assert_close(k, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)


def test_minibatch_stddev_sees_the_batch():
    torch.manual_seed(0)
    d = StyleGAN2Discriminator(16, narrow=0.0625).eval()
    x = torch.randn(1, 3, 16, 16)
    same = d(x.repeat(4, 1, 1, 1))
    assert torch.allclose(same, same[:1].expand(4, 1))
    varied = torch.cat([x, torch.randn(3, 3, 16, 16)])
    assert not torch.allclose(d(varied)[0], same[0])          # same image, different batch -> other logit
    assert d(torch.randn(5, 3, 16, 16)).shape == (5, 1)       # batch not divisible by 4 still works


def test_component_discriminator_features_and_gradients():
    d = FacialComponentDiscriminator()
    x = torch.randn(2, 3, 80, 80, requires_grad=True)
    out, feats = d(x, return_feats=True)
    assert out.shape == (2, 1, 20, 20) and [f.shape for f in feats] == [(2, 128, 40, 40), (2, 256, 20, 20)]
    out.mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in d.parameters())
    assert d(torch.randn(1, 3, 120, 120))[1] == []
    names = set(d.state_dict())
    assert {"conv1.0.weight", "conv1.1.bias", "conv2.1.weight", "conv2.2.bias", "final_conv.0.weight",
            "final_conv.0.bias"} <= names
