"""training/losses.py on known values."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from training import losses as L


def test_l1_of_constants():
    assert float(L.l1(torch.full((2, 3, 4, 4), 0.3), torch.full((2, 3, 4, 4), -0.2))) == pytest.approx(0.5)


def test_gram_by_hand():
    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)            # C=2, H=1, W=2
    expect = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    torch.testing.assert_close(L.gram(feat)[0], expect)


def test_logistic_losses_at_zero_logits():
    z = torch.zeros(4, 1)
    assert float(L.g_nonsaturating(z)) == pytest.approx(math.log(2))
    assert float(L.d_logistic(z, z)) == pytest.approx(2 * math.log(2))
    # confident, correct discriminator -> ~0; generator then has a large loss
    assert float(L.d_logistic(torch.full((2, 1), 20.0), torch.full((2, 1), -20.0))) < 1e-8
    assert float(L.g_nonsaturating(torch.full((2, 1), -20.0))) == pytest.approx(20.0, rel=1e-6)


def test_r1_of_a_linear_discriminator_is_its_weight_norm_squared():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8, requires_grad=True)          # a linear D with a learnable weight
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    pen = L.r1_penalty(logits, x)
    assert float(pen.detach()) == pytest.approx(float(w.detach().pow(2).sum()), rel=1e-6)
    assert pen.requires_grad                                                     # create_graph for D's step


def test_r1_of_a_quadratic_discriminator():
    x = torch.full((2, 1, 1, 2), 3.0, requires_grad=True)
    logits = (x ** 2).flatten(1).sum(1)                                          # grad = 2x = 6 per entry
    assert float(L.r1_penalty(logits, x).detach()) == pytest.approx(2 * 36.0)


def test_roi_align_of_a_ramp():
    ramp = torch.arange(64, dtype=torch.float32).expand(1, 3, 64, 64).clone()   # value = x
    boxes = torch.tensor([[10.0, 20.0, 26.0, 36.0]])
    from torchvision.ops import roi_align
    out = roi_align(ramp, L.component_rois(boxes), output_size=4)
    torch.testing.assert_close(out[0, 0], torch.tensor([12.0, 16.0, 20.0, 24.0]).expand(4, 4))


def test_crop_components_sizes_and_values():
    ramp = torch.arange(512, dtype=torch.float32).expand(2, 3, 512, 512).clone()
    box = torch.tensor([[100.0, 100.0, 180.0, 180.0], [200.0, 200.0, 280.0, 280.0]])
    crops = L.crop_components(ramp, {"left_eye": box, "right_eye": box, "mouth": box}, out_size=512)
    assert crops["left_eye"].shape == (2, 3, 80, 80) and crops["mouth"].shape == (2, 3, 120, 120)
    torch.testing.assert_close(crops["left_eye"][0, 0, 0], torch.arange(80.0) + 100.5)   # 1 px bins
    torch.testing.assert_close(crops["right_eye"][1, 2, 5], torch.arange(80.0) + 200.5)  # batch index kept
    small = L.crop_components(ramp[:, :, :64, :64], {"left_eye": box / 8, "right_eye": box / 8,
                                                     "mouth": box / 8}, out_size=64)
    assert small["left_eye"].shape[-1] == 10 and small["mouth"].shape[-1] == 15


def test_pyramid():
    gt = torch.rand(2, 3, 64, 64)
    pyr = L.gt_pyramid(gt, 4)
    assert [p.shape[-1] for p in pyr] == [8, 16, 32, 64] and pyr[-1] is gt
    torch.testing.assert_close(pyr[2], F.interpolate(gt, scale_factor=0.5, mode="bilinear", align_corners=False))
    losses = L.pyramid_l1(pyr, gt)
    assert len(losses) == 4 and all(float(v) == 0 for v in losses)
    shifted = [p + 0.25 for p in pyr]
    assert all(float(v) == pytest.approx(0.25) for v in L.pyramid_l1(shifted, gt))


def test_component_style_and_identity():
    torch.manual_seed(0)
    f = [torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3)]
    assert float(L.component_style(f, f)) == 0.0
    g = [f[0] * 2, f[1]]                                    # Gram scales by 4 -> L1 = 3 * mean|gram|
    expect = 0.5 * 3 * L.gram(f[0]).abs().mean()
    assert float(L.component_style(g, f)) == pytest.approx(float(expect), rel=1e-5)
    a, b = torch.zeros(2, 512, requires_grad=True), torch.ones(2, 512, requires_grad=True)
    loss = L.identity_l1(a, b)
    loss.backward()
    assert float(loss.detach()) == 1.0 and b.grad is None and a.grad is not None


def test_vgg19_layout_matches_torchvision(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers
    ref = make_layers(cfgs["E"], batch_norm=False)
    ours = L.vgg19_features()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert len(ours) == len(L.VGG19_LAYERS) and L.VGG19_LAYERS[2] == "conv1_2" and L.VGG19_LAYERS[34] == "conv5_4"
    # weights from a torchvision-style file land in the right layers; features are pre-activation
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()} | {"classifier.0.weight": torch.zeros(1)},
               tmp_path / "vgg.pth")
    loss = L.Perceptual({"conv1_2": 0.1, "conv3_4": 1.0}, weights_path=tmp_path / "vgg.pth")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    norm = ((x + 1) / 2 - torch.tensor(L.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(L.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = loss.extract(x)
        torch.testing.assert_close(feats["conv1_2"], ref[:3](norm))
        torch.testing.assert_close(feats["conv3_4"], ref[:17](norm))
    assert float(feats["conv3_4"].min()) < 0                              # before ReLU
    assert all(not p.requires_grad for p in loss.parameters())


def test_perceptual_loss_values():
    torch.manual_seed(0)
    loss = L.Perceptual({"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}, width=0.125)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    p0, s0 = loss(x, x)
    assert float(p0) == 0 and float(s0) == 0
    y = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    p, s = loss(y, x)
    assert float(p.detach()) > 0 and float(s.detach()) > 0
    p.backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0
    # by hand for one layer
    one = L.Perceptual({"conv1_2": 0.5}, width=0.125)
    one.features.load_state_dict(loss.features[: len(one.features)].state_dict())
    with torch.no_grad():
        fx, fg = one.extract(y)["conv1_2"], one.extract(x)["conv1_2"]
        pv, sv = one(y, x)
    assert float(pv) == pytest.approx(0.5 * float((fx - fg).abs().mean()), rel=1e-5)
    assert float(sv) == pytest.approx(0.5 * float((L.gram(fx) - L.gram(fg)).abs().mean()), rel=1e-5)


def test_perceptual_rejects_unknown_layers_and_bad_files(tmp_path):
    from vidrestore.errors import CheckpointError
    with pytest.raises(ValueError, match="conv9_9"):
        L.Perceptual({"conv9_9": 1.0})
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="vgg19"):
        L.Perceptual({"conv1_2": 1.0}, weights_path=tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not found"):
        L.Perceptual({"conv1_2": 1.0}, weights_path=tmp_path / "missing.pth")


def test_gram_is_fp32_under_fp16_and_bf16_autocast():
    # conv1_2-like features at 512 px: the sum over 262k pixels overflows FP16 (max 65504) before
    # the division by C*H*W; computed in FP32 it is exact to float32 precision
    torch.manual_seed(0)
    feat = torch.rand(1, 4, 512, 512) * 3 + 1
    ref = L.gram(feat.double()).float()
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype):
            x = feat * 1.0                                             # an autocast-region tensor
            g = L.gram(x.to(dtype))
        assert g.dtype == torch.float32 and torch.isfinite(g).all()
        torch.testing.assert_close(g, ref, rtol=2e-3, atol=0)
