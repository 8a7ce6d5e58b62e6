"""training/metrics/lpips_distance.py: the lpips package with AlexNet weights from a torchvision-format
file equals LPIPS computed by hand from the published formula (unit-normalised AlexNet ReLU features,
squared differences weighted by the linear heads, spatial mean, sum over 5 layers); 0 for equal images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.metrics.lpips_distance import LPIPS, to_tensor
from vidrestore.errors import CheckpointError


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.alexnet()
    path = tmp_path_factory.mktemp("alex") / "alexnet-owt-7be5be79.pth"
    torch.save(net.state_dict(), path)
    return path, net


def _by_hand(metric: LPIPS, alex, x: torch.Tensor, y: torch.Tensor) -> float:
    sl = metric.net.scaling_layer
    heads = [lin.model[-1].weight.reshape(-1) for lin in metric.net.lins]

    def feats(t):
        t = (t - sl.shift) / sl.scale
        out = []
        for i, layer in enumerate(alex.features[:12]):
            t = layer(t)
            if i in (1, 4, 7, 9, 11):
                out.append(t)
        return out
    total = 0.0
    with torch.no_grad():
        for fa, fb, w in zip(feats(x), feats(y), heads):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += float(((na - nb) ** 2 * w.view(1, -1, 1, 1)).sum(1).mean())
    return total


def test_equals_the_formula_and_zero_for_equal_images(alexnet_file):
    path, alex = alexnet_file
    metric = LPIPS(alexnet_path=path)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    ours = metric(a, b)
    ref = _by_hand(metric, alex.eval(), to_tensor(a), to_tensor(b))
    assert ours == pytest.approx(ref, rel=1e-5) and ours > 0
    assert metric(a, a) == pytest.approx(0.0, abs=1e-7)


def test_wrong_file_is_a_checkpoint_error(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="AlexNet"):
        LPIPS(alexnet_path=tmp_path / "x.pth")
