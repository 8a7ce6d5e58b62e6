"""TensorRT runtime: loading errors without TensorRT/GPU here; parity, batching and stream use on a GPU."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.support.small_gfpgan import face_batch, psnr, small_checkpoint

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_runner_without_tensorrt_raises_backend_unavailable(tmp_path):
    from engines.runtime import EngineRunner
    from vidrestore.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        EngineRunner(tmp_path / "x.engine")


@pytest.fixture(scope="module")
def engine_and_model(tmp_path_factory):
    from tests.support.require import require_module
    require_module("tensorrt", gpu=True)
    from engines.build_trt import build_engine
    from vidrestore.models import load_gfpgan

    folder = tmp_path_factory.mktemp("engine")
    ckpt = small_checkpoint(folder / "w.pth", out_size=64)
    engine = build_engine(str(ckpt), precision="fp16", min_batch=2, opt_batch=4, max_batch=4,
                          cache_dir=folder, workspace_gib=1.0)
    return engine, load_gfpgan(ckpt, device="cuda")


@pytest.mark.needs_cuda
def test_engine_matches_torch_and_handles_any_batch(engine_and_model, testdata):
    from engines.runtime import EngineRunner

    engine, model = engine_and_model
    runner = EngineRunner(engine, device="cuda")
    assert (runner.profile.min, runner.profile.max, runner.image_size) == (2, 4, 64)
    x = face_batch(testdata, 64, 7).cuda()
    with torch.no_grad():
        ref = model(x)
    out = runner.run(x)                       # 7 -> chunks 4 + 3
    assert out.shape == x.shape and out.device == x.device
    assert psnr(out, ref) >= 35.0
    single = runner.run(x[:1])                 # below the profile min: padded to 2
    assert single.shape == (1, 3, 64, 64)
    assert float((single - out[:1]).abs().max()) < 1e-2
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        runner.run(torch.zeros(1, 3, 32, 32, device="cuda"))
    with pytest.raises(ValueError, match="CUDA tensors"):
        runner.run(torch.zeros(1, 3, 64, 64))


@pytest.mark.needs_cuda
def test_runs_on_the_current_torch_stream(engine_and_model, testdata):
    from vidrestore.backends.tensorrt import TensorRTBackend

    engine, _ = engine_and_model
    backend = TensorRTBackend(engine, device="cuda", precision="fp16")
    x = face_batch(testdata, 64, 4).cuda()
    expected = backend.restore(x)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = backend.restore(x * 1.0)           # input produced and consumed on `stream`
    stream.synchronize()
    assert torch.equal(y, expected)
    assert backend.max_batch == 4 and backend.name == "tensorrt"
