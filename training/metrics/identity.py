"""Deg (the GFP-GAN paper's identity distance), full-reference, lower is better: the angle in degrees
between the ArcFace embeddings of the restored face and of the ground truth, with the authors'
ResNetArcFace-18 (``arcface_resnet18`` in the metric weights registry; 128x128 gray input made as in
training: [-1, 1] RGB -> BT.601 luma -> bilinear resize).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..arcface import gray_resize, load_arcface
from .lpips_distance import to_tensor


def angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors in degrees (0 = same direction)."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


class IdentityDistance:
    """``IdentityDistance(arcface_path=...)(restored, gt)`` -> degrees; ``arcface_path=None``: random
    weights (tests only)."""

    name = "deg"

    def __init__(self, *, arcface_path: str | Path | None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = load_arcface(arcface_path, device=self.device)

    @torch.no_grad()
    def embed(self, img: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> 512-d embedding."""
        return self.net(gray_resize(to_tensor(img).to(self.device)))[0].double().cpu().numpy()

    def __call__(self, restored: np.ndarray, gt: np.ndarray) -> float:
        return angle_degrees(self.embed(restored), self.embed(gt))
