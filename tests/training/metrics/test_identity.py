"""training/metrics/identity.py: Deg equals the angle between the authors' ResNetArcFace embeddings
(gfpgan 1.3.8 wheel, same random weights), 0 for the same image, 180 for opposite embeddings."""
from __future__ import annotations

import importlib.util
import math
import zipfile

import numpy as np
import pytest
import torch

from training.arcface import gray_resize
from training.metrics.identity import IdentityDistance, angle_degrees
from training.metrics.lpips_distance import to_tensor


def _authors_arcface_module():
    from tests.support import reference
    wheel = reference.find_wheel()
    if wheel is None:
        pytest.skip("gfpgan-1.3.8 wheel not found")
    reference._install_stubs()
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("_gfpgan_ref_arcface_deg", loader=None))
    with zipfile.ZipFile(wheel) as zf:
        exec(compile(zf.read("gfpgan/archs/arcface_arch.py").decode(), "arcface_arch.py", "exec"), mod.__dict__)
    return mod


def test_angle():
    assert angle_degrees(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(90)
    assert angle_degrees(np.array([1.0, 1]), np.array([-1.0, -1])) == pytest.approx(180)


def test_deg_equals_the_authors_network(tmp_path):
    torch.manual_seed(0)
    ref = _authors_arcface_module().ResNetArcFace("IRBlock", [2, 2, 2, 2], use_se=False).eval()
    torch.save(ref.state_dict(), tmp_path / "arcface_resnet18.pth")
    deg = IdentityDistance(arcface_path=tmp_path / "arcface_resnet18.pth")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
    with torch.no_grad():
        ea, eb = (ref(gray_resize(to_tensor(x)))[0].double().numpy() for x in (a, b))
    expected = math.degrees(math.acos(np.dot(ea, eb) / np.linalg.norm(ea) / np.linalg.norm(eb)))
    assert deg(a, b) == pytest.approx(expected, abs=1e-3) and deg(a, b) > 0.01
    assert deg(a, a) == pytest.approx(0.0, abs=1e-3)
