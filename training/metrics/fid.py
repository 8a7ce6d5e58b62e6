"""FID (Heusel et al. 2017), a distance between the restored and the ground-truth sets, lower is better:
pytorch-fid's Inception (the TensorFlow FID network, pool3 2048-d features, inputs resized to 299 and
scaled as pytorch-fid does) and its Frechet distance. The network weights come from the metric weights
registry (``inception_fid``) instead of pytorch-fid's downloader. Face papers compare against FFHQ
statistics as well; ``--fid-ref`` in training.evaluate takes any folder (or a saved .npz of mu/sigma).
"""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import torch

from vidrestore.errors import BackendUnavailable

from ..pretrained import load_torch


def _import_pytorch_fid():
    try:
        from pytorch_fid import fid_score, inception
    except ImportError:
        raise BackendUnavailable("the FID metric needs pytorch-fid: pip install pytorch-fid "
                                 "(or pip install -e \".[train]\")") from None
    return inception, fid_score


def _build(weights_path: str | Path | None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(pytorch-fid's ``InceptionV3`` pool3 wrapper, the Inception network inside it)."""
    inception, _ = _import_pytorch_fid()
    built: dict[str, torch.nn.Module] = {}
    make = inception._inception_v3

    def capture(*args, **kwargs):
        built["net"] = make(*args, **kwargs)
        return built["net"]

    def from_file(url: str, *args, **kwargs):
        if weights_path is None:
            return built["net"].state_dict()
        return load_torch(weights_path, what="FID Inception weights")

    with mock.patch.object(inception, "_inception_v3", capture), \
            mock.patch.object(inception, "load_state_dict_from_url", from_file):
        net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True)
    return net.eval().requires_grad_(False), built["net"]


def build_inception(weights_path: str | Path | None) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (pool3 block) with the weights from ``weights_path`` (the file
    pytorch-fid downloads); None: random weights (tests only). pytorch-fid's URL loader is answered
    with the file instead of the network."""
    return _build(weights_path)[0]


def random_state() -> dict[str, torch.Tensor]:
    """Random weights in the layout of pytorch-fid's weights file (tests)."""
    return _build(None)[1].state_dict()


class FID:
    """``features(images)`` per batch, ``distance(feats_a, feats_b)`` for two sets."""

    name = "fid"

    def __init__(self, *, weights_path: str | Path | None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = build_inception(weights_path).to(self.device)

    @torch.no_grad()
    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 2048) pool3 features of uint8 RGB images (any size; resized to 299 inside)."""
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in images]).float() / 255
        return self.net(x.to(self.device))[0].reshape(len(images), -1).double().cpu().numpy()

    @staticmethod
    def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return feats.mean(0), np.cov(feats, rowvar=False)

    @staticmethod
    def distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
        _, fid_score = _import_pytorch_fid()
        return float(fid_score.calculate_frechet_distance(stats_a[0], stats_a[1], stats_b[0], stats_b[1]))
