"""The upsampler on a GPU (needs_cuda: skipped here, run by benchmarks/gpu_check.sh): torch CUDA FP16 and
the TensorRT FP16 engine against torch FP32 on the CPU, the tensor Lanczos on the device, and the cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.models.checkpoints import save_gfpgan
from vidrestore.models.realesrgan import RRDBNet, load_upsampler
from vidrestore.upscale.backends import TorchUpsampler
from vidrestore.upscale.resize import resize_rgb
from vidrestore.upscale.tiling import upscale_tiled


def _weights(path) -> str:
    g = torch.Generator().manual_seed(0)
    net = RRDBNet(scale=2, num_feat=16, num_block=2, num_grow_ch=8)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in ** -0.5 if p.ndim > 1 else 0.05))
    return str(save_gfpgan(net.state_dict(), path))


@pytest.mark.needs_cuda
def test_torch_cuda_fp16_and_lanczos_on_device(tmp_path) -> None:
    w = _weights(tmp_path / "x2.pth")
    x = torch.rand(2, 3, 96, 80, generator=torch.Generator().manual_seed(1))
    want = upscale_tiled(x, TorchUpsampler(load_upsampler(w), device="cpu"), scale=2, tile=32, pad=40, align=2)
    got = upscale_tiled(x.cuda(), TorchUpsampler(load_upsampler(w), device="cuda", precision="fp16"), scale=2,
                        tile=32, pad=40, align=2)
    assert (got.cpu() - want).abs().max().item() < 2e-2
    rgb = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    dev = resize_rgb(torch.from_numpy(rgb).cuda(), (122, 90)).cpu().numpy()
    assert np.abs(dev.astype(int) - resize_rgb(rgb, (122, 90)).astype(int)).max() <= 1


@pytest.mark.needs_cuda
def test_tensorrt_fp16_engine_matches_torch_and_is_cached(tmp_path) -> None:
    pytest.importorskip("tensorrt")
    from engines.engine_cache import EngineCache
    from engines.upsampler_trt import build_upsampler_engine
    from vidrestore.upscale.backends import TensorRTUpsampler

    w = _weights(tmp_path / "x2.pth")
    engine = build_upsampler_engine(w, window=112, max_batch=4, align=2, cache_dir=tmp_path, workspace_gib=1.0)
    assert build_upsampler_engine(w, window=112, max_batch=4, align=2, cache_dir=tmp_path) == engine
    assert len(EngineCache(tmp_path).entries()) == 1
    trt = TensorRTUpsampler(engine, device="cuda")
    x = torch.rand(3, 3, 150, 130, generator=torch.Generator().manual_seed(2))
    want = upscale_tiled(x, TorchUpsampler(load_upsampler(w), device="cpu"), scale=2, tile=32, pad=40, align=2)
    got = upscale_tiled(x.cuda(), trt, scale=2, tile=32, pad=40, align=2, max_batch=4)
    assert (got.cpu() - want).abs().max().item() < 2e-2
