"""TorchBackend's kernels option (the CuPy model kernels on CUDA, plain torch elsewhere)."""
from __future__ import annotations

import pytest
import torch

from vidrestore.backends.torch import TorchBackend
from vidrestore.errors import BackendUnavailable, ConfigError
from vidrestore.models import GFPGAN, save_gfpgan


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_gfpgan(GFPGAN(32, num_style_feat=32, channel_multiplier=1),
                       tmp_path_factory.mktemp("ckpt") / "small.pth")


def test_cpu_uses_plain_torch(small_checkpoint):
    for choice in ("auto", "torch"):
        b = TorchBackend(small_checkpoint, device="cpu", kernels=choice, max_batch=2)
        assert b.kernels == "torch" and b.model.stylegan_decoder.kernels is None
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert b.restore(x).shape == x.shape
    with pytest.raises(BackendUnavailable):
        TorchBackend(small_checkpoint, device="cpu", kernels="cupy")
    with pytest.raises(ConfigError):
        TorchBackend(small_checkpoint, device="cpu", kernels="fastest")


@pytest.mark.needs_cuda
def test_cuda_plugs_in_the_cupy_kernels(small_checkpoint):
    pytest.importorskip("cupy")
    b = TorchBackend(small_checkpoint, device="cuda", precision="fp16", kernels="cupy", max_batch=2)
    plain = TorchBackend(small_checkpoint, device="cuda", precision="fp16", kernels="torch", max_batch=2)
    assert b.kernels == "cupy" and b.model.stylegan_decoder.kernels is not None
    assert plain.kernels == "torch"
    x = torch.rand(3, 3, 32, 32, device="cuda") * 2 - 1
    y, ref = b.restore(x), plain.restore(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert (y - ref).abs().max().item() <= 2e-2 * max(1.0, ref.abs().max().item())
