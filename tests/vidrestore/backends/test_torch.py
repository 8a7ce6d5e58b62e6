"""TorchBackend.restore is exactly the model: a batch larger than max_batch is split, and every row
equals the model applied to that row alone."""
from __future__ import annotations

import torch

from tests.support.small_gfpgan import face_batch, small_checkpoint
from vidrestore.backends.torch import TorchBackend
from vidrestore.models import load_gfpgan


def test_split_batch_equals_the_model(testdata, tmp_path):
    ckpt = small_checkpoint(tmp_path / "s.pth", out_size=8)
    backend = TorchBackend(ckpt, device="cpu", max_batch=2)
    model = load_gfpgan(ckpt).eval()
    gen = torch.Generator().manual_seed(0)
    x = face_batch(testdata, 8, 5) + 0.1 * torch.randn(5, 3, 8, 8, generator=gen)  # 5 distinct rows
    # max_batch 2: chunks of 2, 2, 1
    y = backend.restore(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    with torch.inference_mode():
        whole = torch.cat([model(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(y, whole, rtol=0, atol=1e-5)
    assert (y[0] - y[1]).abs().max() > 1e-2       # rows differ: nothing was reused across rows
