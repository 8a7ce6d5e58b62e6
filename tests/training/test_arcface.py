"""training/arcface.py: parity with the authors' ResNetArcFace (gfpgan 1.3.8 wheel), loading, gray input."""
from __future__ import annotations

import importlib.util
import sys
import zipfile

import pytest
import torch

from training.arcface import ResNetArcFace, gray_resize, load_arcface
from vidrestore.errors import CheckpointError


def _authors_arcface():
    from tests.support import reference
    wheel = reference.find_wheel()
    if wheel is None:
        from tests.support.require import require
        require(None, "gfpgan-1.3.8 wheel not found")
    reference._install_stubs()
    spec = importlib.util.spec_from_loader("_gfpgan_ref_arcface", loader=None)
    mod = importlib.util.module_from_spec(spec)
    with zipfile.ZipFile(wheel) as zf:
        exec(compile(zf.read("gfpgan/archs/arcface_arch.py").decode(), "arcface_arch.py", "exec"), mod.__dict__)
    sys.modules.setdefault("_gfpgan_ref_arcface", mod)
    return mod


def test_matches_the_authors_network(tmp_path):
    ref_mod = _authors_arcface()
    torch.manual_seed(0)
    ref = ref_mod.ResNetArcFace("IRBlock", [2, 2, 2, 2], use_se=False)
    for m in ref.modules():                                   # non-trivial BN statistics
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    ref.eval()
    torch.save(ref.state_dict(), tmp_path / "arcface_resnet18.pth")
    ours = load_arcface(tmp_path / "arcface_resnet18.pth")
    x = torch.rand(2, 1, 128, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert not ours.training and all(not p.requires_grad for p in ours.parameters())


def test_gray_resize():
    img = torch.zeros(1, 3, 64, 64)
    img[:, 0] = 1.0
    g = gray_resize(img)
    assert g.shape == (1, 1, 128, 128) and torch.allclose(g, torch.full_like(g, 0.2989))


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_arcface(tmp_path / "x.pth")
    torch.save({"params": {"conv1.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="ResNetArcFace"):
        load_arcface(tmp_path / "bad.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in ResNetArcFace().state_dict().items()}},
               tmp_path / "wrapped.pth")
    assert load_arcface(tmp_path / "wrapped.pth")(torch.zeros(1, 1, 128, 128)).shape == (1, 512)
