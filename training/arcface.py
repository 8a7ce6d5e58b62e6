"""ArcFace ResNet-18 identity network (the authors' ``ResNetArcFace('IRBlock', [2, 2, 2, 2], use_se=False)``).

Input (N, 1, 128, 128) gray in [-1, 1] (the generator's range, as the authors feed it) -> (N, 512)
embedding. Parameter names equal the authors' arcface_resnet18.pth, which loads with strict=True.
Always used frozen in eval mode (BatchNorm running statistics, no dropout).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vidrestore.errors import CheckpointError

from .pretrained import load_torch


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IRBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus the (projected) input, -> PReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.prelu = nn.PReLU()
        self.conv2 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + residual)


class ResNetArcFace(nn.Module):
    """``width`` < 1 narrows every layer (tests only; the released weights need 1.0)."""

    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), *, width: float = 1.0) -> None:
        super().__init__()
        c = [max(1, int(v * width)) for v in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(1, c[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        self._cin = c[0]
        self.layer1 = self._make_layer(c[0], layers[0])
        self.layer2 = self._make_layer(c[1], layers[1], stride=2)
        self.layer3 = self._make_layer(c[2], layers[2], stride=2)
        self.layer4 = self._make_layer(c[3], layers[3], stride=2)
        self.bn4 = nn.BatchNorm2d(c[3])
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(c[3] * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self._cin != planes:
            down = nn.Sequential(nn.Conv2d(self._cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        mods = [IRBlock(self._cin, planes, stride, down)]
        self._cin = planes
        mods += [IRBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, 128, 128) -> (N, 512)."""
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


def gray_resize(img: Tensor, size: int = 128) -> Tensor:
    """(N, 3, H, W) RGB -> (N, 1, size, size) luma (0.2989, 0.5870, 0.1140), bilinear, as the authors."""
    y = 0.2989 * img[:, 0] + 0.5870 * img[:, 1] + 0.1140 * img[:, 2]
    return F.interpolate(y[:, None], (size, size), mode="bilinear", align_corners=False)


def load_arcface(path: str | Path | None, *, device: torch.device | str = "cpu",
                 width: float = 1.0) -> ResNetArcFace:
    """Frozen ResNetArcFace-18 in eval mode; ``path`` None gives random weights (tests only).
    Accepts a plain state dict or one under ``params``/``state_dict``; strips a ``module.`` prefix."""
    net = ResNetArcFace(width=width if path is None else 1.0)
    if path is not None:
        state = load_torch(path, what="ArcFace weights")
        for key in ("params", "state_dict"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"not a ResNetArcFace-18 (IRBlock, no SE) state dict: {str(exc)[:300]}",
                                  path=path) from None
    return net.to(device).eval().requires_grad_(False)
