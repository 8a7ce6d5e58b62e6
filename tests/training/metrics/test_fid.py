"""training/metrics/fid.py: pytorch-fid's Inception built without its downloader (random weights saved
in a file and loaded back give the same features), the Frechet distance (pytorch-fid's) against an
independent eigenvalue formula, and 0 for a set compared with itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.metrics.fid import FID, random_state


def _frechet_by_eigenvalues(m1, s1, m2, s2) -> float:
    """||m1 - m2||^2 + tr(s1) + tr(s2) - 2 sum sqrt(eig(s1 s2)) (eigenvalues of a PSD product >= 0)."""
    ev = np.linalg.eigvals(s1 @ s2)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum())


def test_distance_equals_the_eigenvalue_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200, 8))
    b = rng.normal(0.3, 1.5, (200, 8)) @ rng.normal(0, 1, (8, 8))
    sa, sb = FID.statistics(a), FID.statistics(b)
    assert FID.distance(sa, sb) == pytest.approx(_frechet_by_eigenvalues(*sa, *sb), rel=1e-6)
    assert FID.distance(sa, sa) == pytest.approx(0.0, abs=1e-6)


def test_inception_from_a_file_and_sets(tmp_path):
    torch.manual_seed(0)
    torch.save(random_state(), tmp_path / "pt_inception.pth")
    torch.manual_seed(0)
    same_init = FID(weights_path=None)
    torch.manual_seed(1)
    fid = FID(weights_path=tmp_path / "pt_inception.pth")   # loaded over another random init: equal only if loaded
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    feats = fid.features(imgs)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all() and np.abs(feats).max() > 0
    np.testing.assert_allclose(feats, same_init.features(imgs), rtol=1e-5, atol=1e-6 * np.abs(feats).max())
    # (the 2048-d Frechet distance itself is not computed here: scipy's sqrtm of 2048x2048 matrices
    # takes minutes on two shared cores; the distance is checked on 8-d sets above)
