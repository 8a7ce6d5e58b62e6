"""GFP-GAN losses: reconstruction (L1, pyramid), perceptual + style (VGG-19), adversarial (logistic, R1),
facial component (ROI crops, local GAN, Gram style) and identity (ArcFace). Pure functions plus a
``Perceptual`` module; the weights are applied by the training loop, from ``LossConfig``.

All images are (N, 3, H, W) in [-1, 1] unless a docstring says otherwise.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vidrestore.errors import CheckpointError

from .pretrained import load_torch

# ---------------------------------------------------------------------------------------------
# reconstruction

def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error."""
    return (x - y).abs().mean()


def gt_pyramid(gt: Tensor, levels: int) -> list[Tensor]:
    """``levels`` images, smallest first, ending with ``gt``; each is the next one halved
    (bilinear, align_corners=False, as the authors)."""
    out = [gt]
    for _ in range(levels - 1):
        out.insert(0, F.interpolate(out[0], scale_factor=0.5, mode="bilinear", align_corners=False))
    return out


def pyramid_l1(rgbs: list[Tensor], gt: Tensor) -> list[Tensor]:
    """L1 of each intermediate RGB (8 px .. S px) against the GT halved to its size; one loss per level."""
    return [l1(r, g) for r, g in zip(rgbs, gt_pyramid(gt, len(rgbs)))]


# ---------------------------------------------------------------------------------------------
# adversarial

def d_logistic(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator's logistic loss: softplus(-D(real)) + softplus(D(fake)) (means)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """Generator's non-saturating loss softplus(-D(G(x))) (the authors' wgan_softplus / vanilla GAN)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """E ||grad_x D(x)||^2 over the batch, with a graph for the discriminator's backward pass.
    ``real`` must have requires_grad set before D was applied."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# style / facial components

def gram(feat: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrix divided by C*H*W, always in float32: under fp16 autocast
    the sum over H*W products (262 k at 512 px for conv1_2) would overflow before the division, so
    autocast is switched off here and the features are promoted."""
    n, c, h, w = feat.shape
    with torch.autocast(device_type=feat.device.type, enabled=False):
        f = feat.float().reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)


def component_rois(boxes: Tensor) -> Tensor:
    """(N, 4) x1, y1, x2, y2 -> (N, 5) rows [batch index, x1, y1, x2, y2] for roi_align."""
    idx = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)[:, None]
    return torch.cat([idx, boxes], 1)


def crop_components(img: Tensor, boxes: dict[str, Tensor], *, out_size: int) -> dict[str, Tensor]:
    """ROI-align the left eye, right eye and mouth of every image: {part: (N, 3, s, s)}, s = 80 px for
    eyes and 120 px for mouths at 512 (scaled by out_size / 512); crops are multiplied by that ratio
    when it is > 1, exactly as the authors do."""
    from torchvision.ops import roi_align

    ratio = out_size / 512
    sizes = {"left_eye": max(8, round(80 * ratio)), "right_eye": max(8, round(80 * ratio)),
             "mouth": max(8, round(120 * ratio))}
    gain = max(1, int(ratio))
    out = {}
    for part, size in sizes.items():
        rois = component_rois(boxes[part].to(img.device, img.dtype))
        out[part] = roi_align(img, rois, output_size=size) * gain
    return out


def component_style(fake_feats: list[Tensor], real_feats: list[Tensor]) -> Tensor:
    """0.5 * L1(Gram) on the first feature map + L1(Gram) on the second; real features detached."""
    return (l1(gram(fake_feats[0]), gram(real_feats[0].detach())) * 0.5
            + l1(gram(fake_feats[1]), gram(real_feats[1].detach())))


def identity_l1(embed_fake: Tensor, embed_real: Tensor) -> Tensor:
    """L1 between ArcFace embeddings; the real one is a constant."""
    return l1(embed_fake, embed_real.detach())


# ---------------------------------------------------------------------------------------------
# perceptual (VGG-19)

VGG19_LAYERS = ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
                "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
                "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
                "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
                "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5"]
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(width: float = 1.0) -> nn.Sequential:
    """torchvision's ``vgg19().features`` layout (same indices, so ``features.N.*`` weights load), with
    non-inplace ReLUs. ``width`` < 1 narrows every conv (tests only)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = max(1, int(v * width))
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False)]
            cin = cout
    return nn.Sequential(*layers)


class Perceptual(nn.Module):
    """L1 between VGG-19 features *before* activation (conv outputs), weighted per layer, and the style
    (Gram) L1 on the same layers. Input [-1, 1] -> [0, 1] -> ImageNet normalisation. Frozen.

    ``weights_path``: torchvision's vgg19 ImageNet state dict (``features.N.weight`` keys, e.g.
    vgg19-dcbb9e9d.pth); None leaves random weights (tests only).
    """

    def __init__(self, layer_weights: dict[str, float], *, weights_path: str | Path | None = None,
                 width: float = 1.0) -> None:
        super().__init__()
        unknown = set(layer_weights) - set(VGG19_LAYERS)
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {sorted(unknown)}")
        self.layer_weights = dict(layer_weights)
        last = max(VGG19_LAYERS.index(k) for k in layer_weights)
        features = vgg19_features(width)
        if weights_path is not None:
            _load_vgg(features, weights_path)
        self.features = features[: last + 1]
        self.names = VGG19_LAYERS[: last + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "Perceptual":   # always eval (no dropout/BN anyway)
        return super().train(False)

    def extract(self, x: Tensor) -> dict[str, Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        feats = {}
        for name, layer in zip(self.names, self.features):
            x = layer(x)
            if name in self.layer_weights:
                feats[name] = x
        return feats

    def forward(self, x: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """(perceptual, style) losses, unweighted by the global factors."""
        fx = self.extract(x)
        with torch.no_grad():
            fg = self.extract(gt)
        percep = sum(l1(fx[k], fg[k]) * w for k, w in self.layer_weights.items())
        style = sum(l1(gram(fx[k]), gram(fg[k])) * w for k, w in self.layer_weights.items())
        return percep, style


def _load_vgg(features: nn.Sequential, path: str | Path) -> None:
    state = load_torch(path, what="VGG-19 weights")
    sub = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"not torchvision vgg19 weights: {str(exc)[:300]}", path=path) from None
