"""A set of metrics evaluated together over pairs of (restored, ground truth) images: per-image metrics
are averaged, FID compares the two sets. Used by ``training.evaluate`` and by validation in training.

    suite = MetricSuite(("psnr", "ssim", "lpips"), weights=MetricWeights(alexnet="/w/alexnet.pth"))
    for restored, gt in pairs:
        suite.add(restored, gt)           # (H, W, 3) uint8 RGB each
    suite.results()                        # {"psnr": ..., "ssim": ..., "lpips": ...}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidrestore.errors import ConfigError

from . import pixel
from .niqe import load_params, niqe
from .weights import metric_file

METRICS = ("psnr", "ssim", "lpips", "fid", "niqe", "deg", "lmd")
LOWER_IS_BETTER = {"psnr": False, "ssim": False, "lpips": True, "fid": True, "niqe": True, "deg": True,
                   "lmd": True}
NEEDS = {"lpips": "alexnet", "fid": "inception_fid", "niqe": "niqe_pris_params", "deg": "arcface_resnet18"}


@dataclass(frozen=True, kw_only=True)
class MetricWeights:
    """Files for the metrics' networks: a path, None for the registry's cached file, or "random"
    (random networks: tests and smoke runs only; NIQE has no random variant)."""
    alexnet: str | None = None
    inception_fid: str | None = None
    arcface_resnet18: str | None = None
    niqe_pris_params: str | None = None
    download: bool = False                   # fetch registry files that are not cached


def metric_weights(files: dict[str, str], *, download: bool = False) -> MetricWeights:
    """MetricWeights from {registry name: path or "random"} (unknown names: ConfigError)."""
    known = {"alexnet", "inception_fid", "arcface_resnet18", "niqe_pris_params"}
    unknown = sorted(set(files) - known)
    if unknown:
        raise ConfigError(f"unknown metric weights {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return MetricWeights(**files, download=download)


def parse_names(text: str | tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip())
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; known: {', '.join(METRICS)}")
    return names


def _file(weights: MetricWeights, name: str) -> Path | None:
    value = getattr(weights, name)
    if value == "random":
        return None
    return metric_file(name, value, download=weights.download)


class MetricSuite:
    def __init__(self, names: tuple[str, ...] | str, *, weights: MetricWeights = MetricWeights(),
                 device: str = "cpu") -> None:
        self.names = parse_names(names)
        self._per_image: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}
        self._values: dict[str, list[float]] = {n: [] for n in self.names}
        self._fid: Any = None
        self._feats: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        for n in self.names:
            if n == "psnr":
                self._per_image[n] = pixel.psnr
            elif n == "ssim":
                self._per_image[n] = pixel.ssim
            elif n == "lpips":
                from .lpips_distance import LPIPS
                self._per_image[n] = LPIPS(alexnet_path=_file(weights, "alexnet"), device=device)
            elif n == "niqe":
                params = load_params(metric_file("niqe_pris_params", weights.niqe_pris_params,
                                                 download=weights.download))
                self._per_image[n] = lambda restored, gt, p=params: niqe(restored, p)
            elif n == "deg":
                from .identity import IdentityDistance
                self._per_image[n] = IdentityDistance(arcface_path=_file(weights, "arcface_resnet18"), device=device)
            elif n == "lmd":
                from .landmarks import LandmarkDistance
                self._per_image[n] = LandmarkDistance()
            elif n == "fid":
                from .fid import FID
                self._fid = FID(weights_path=_file(weights, "inception_fid"), device=device)

    def reset(self) -> None:
        """Forget the images added so far (the networks stay loaded)."""
        self._values = {n: [] for n in self.names}
        self._feats = ([], [])

    def add(self, restored: np.ndarray, gt: np.ndarray) -> None:
        """One pair of (H, W, 3) uint8 RGB images of the same size."""
        if restored.shape != gt.shape:
            raise ValueError(f"sizes differ: restored {restored.shape[1]}x{restored.shape[0]}, "
                             f"ground truth {gt.shape[1]}x{gt.shape[0]}")
        for n, fn in self._per_image.items():
            self._values[n].append(float(fn(restored, gt)))
        if self._fid is not None:
            self._feats[0].append(self._fid.features([restored])[0])
            self._feats[1].append(self._fid.features([gt])[0])

    def per_image(self) -> dict[str, list[float]]:
        return {n: list(v) for n, v in self._values.items() if n in self._per_image}

    def results(self) -> dict[str, float]:
        out = {n: float(np.mean(v)) for n, v in self._values.items() if n in self._per_image and v}
        if self._fid is not None and len(self._feats[0]) >= 2:
            a, b = (self._fid.statistics(np.stack(f)) for f in self._feats)
            out["fid"] = self._fid.distance(a, b)
        return {n: out[n] for n in self.names if n in out}
