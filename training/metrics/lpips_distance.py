"""LPIPS (Zhang et al. 2018), full-reference perceptual distance, lower is better: the maintained
``lpips`` package (v0.1 linear heads, which ship inside its wheel) on the AlexNet backbone, whose
ImageNet weights come from the metric weights registry (``alexnet``) instead of torchvision's
downloader, so it works offline once the file is cached.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidrestore.errors import BackendUnavailable, CheckpointError

from ..pretrained import load_torch

# torchvision alexnet().features index -> the lpips slice holding it (lpips.pretrained_networks.alexnet)
_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def _import_lpips():
    try:
        import lpips
    except ImportError:
        raise BackendUnavailable("the LPIPS metric needs the lpips package: pip install lpips "
                                 "(or pip install -e \".[train]\")") from None
    return lpips


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


class LPIPS:
    """``LPIPS(alexnet_path=...)(restored, gt)`` -> distance. ``alexnet_path=None``: random AlexNet and
    random linear heads (tests only)."""

    name = "lpips"

    def __init__(self, *, alexnet_path: str | Path | None, device: str | torch.device = "cpu") -> None:
        lpips = _import_lpips()
        self.device = torch.device(device)
        net = lpips.LPIPS(net="alex", pretrained=alexnet_path is not None, pnet_rand=True, verbose=False)
        if alexnet_path is not None:
            load_alexnet(net, alexnet_path)
        self.net = net.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, restored: np.ndarray, gt: np.ndarray) -> float:
        return float(self.net(to_tensor(restored).to(self.device), to_tensor(gt).to(self.device)).reshape(()))


def load_alexnet(net: torch.nn.Module, path: str | Path) -> None:
    """Copy torchvision AlexNet weights (``features.N.*``) into the lpips backbone's slices."""
    state = load_torch(path, what="AlexNet weights")
    if not isinstance(state, dict):
        raise CheckpointError("not a torchvision AlexNet state dict", path=path)
    mapped = {}
    for idx, s in _SLICES.items():
        for kind in ("weight", "bias"):
            key = f"features.{idx}.{kind}"
            if key not in state:
                raise CheckpointError(f"not torchvision AlexNet weights: {key} missing", path=path)
            mapped[f"slice{s}.{idx}.{kind}"] = state[key]
    try:
        net.net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"not torchvision AlexNet weights: {str(exc)[:200]}", path=path) from None
