"""The CUDA numerics policy (no TF32 in FP32) and that every CUDA torch network of the product applies it."""
from __future__ import annotations

import pytest
import torch

from vidrestore.models import numerics


@pytest.fixture
def tf32_on():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_turns_tf32_off_and_cpu_leaves_the_flags(tf32_on):
    numerics.use_product_numerics("cpu")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert not numerics.product_numerics_active()
    numerics.use_product_numerics("cuda:1")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert numerics.product_numerics_active()


def test_test_helper_uses_the_product_policy_and_restores(tf32_on):
    from tests.support.numerics import product_numerics
    with product_numerics():
        assert numerics.product_numerics_active()
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


def _recorder(monkeypatch, module):
    calls = []
    monkeypatch.setattr(module, "use_product_numerics", lambda device: calls.append(str(device)))
    return calls


def test_every_cuda_torch_network_applies_it_when_built(monkeypatch, tmp_path):
    """GFP-GAN torch backend, GPU RetinaFace, torch Real-ESRGAN upsampler (built on the CPU here:
    the call is what is checked; the policy itself is a no-op off CUDA)."""
    import vidrestore.backends.torch as tb
    import vidrestore.faces.detect_torch as dt
    import vidrestore.upscale.backends as ub
    from tests.support.checkpoints import write_checkpoint

    calls = _recorder(monkeypatch, dt)
    dt.TorchRetinaFaceDetector(device="cpu")
    assert calls == ["cpu"]
    calls = _recorder(monkeypatch, ub)
    ub.TorchUpsampler(torch.nn.Conv2d(3, 3, 1), device="cpu")
    assert calls == ["cpu"]
    calls = _recorder(monkeypatch, tb)
    tb.TorchBackend(write_checkpoint(tmp_path / "g.pth", 64, channel_multiplier=1, num_style_feat=64),
                    device="cpu")
    assert calls == ["cpu"]
