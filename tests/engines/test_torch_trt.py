"""torch-tensorrt path: clear error without it; compile and parity on a GPU with it installed."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from engines.engine_cache import BatchProfile

HAS_TORCH_TRT = importlib.util.find_spec("torch_tensorrt") is not None


@pytest.mark.skipif(HAS_TORCH_TRT, reason="torch-tensorrt is installed here")
def test_missing_torch_tensorrt_gives_install_advice(tmp_path):
    from engines.torch_trt import compile_model, import_torch_tensorrt
    from tests.support.small_gfpgan import small_gfpgan
    from vidrestore.backends.torch_tensorrt import TorchTensorRTBackend
    from vidrestore.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="pip install torch-tensorrt"):
        import_torch_tensorrt()
    with pytest.raises(BackendUnavailable, match="pip install torch-tensorrt"):
        compile_model(small_gfpgan(64), image_size=64)
    if torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="pip install torch-tensorrt"):
            TorchTensorRTBackend(tmp_path / "w.pth", device="cuda")
    with pytest.raises(BackendUnavailable, match="--device cuda"):
        TorchTensorRTBackend(tmp_path / "w.pth", device="cpu")


@pytest.mark.needs_cuda
def test_compiled_fp16_model_matches_torch_for_dynamic_batches(tmp_path, testdata):
    from tests.support.require import require_module
    require_module("torch_tensorrt", gpu=True)
    from tests.support.small_gfpgan import face_batch, psnr, small_checkpoint
    from vidrestore.backends.torch_tensorrt import TorchTensorRTBackend
    from vidrestore.models import load_gfpgan

    ckpt = small_checkpoint(tmp_path / "w.pth", out_size=64)
    backend = TorchTensorRTBackend(ckpt, device="cuda", precision="fp16", max_batch=4, opt_batch=2,
                                   image_size=64)
    x = face_batch(testdata, 64, 5).cuda()
    with torch.no_grad():
        ref = load_gfpgan(ckpt, device="cuda")(x)
    out = backend.restore(x)                   # 5 -> 4 + 1
    assert out.shape == x.shape and out.dtype == torch.float32
    assert psnr(out, ref) >= 35.0
    assert backend.profile == BatchProfile(1, 2, 4)
