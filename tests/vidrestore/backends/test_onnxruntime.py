"""onnxruntime backend: parity with the torch model, batching, errors, the checkpoint -> ONNX path."""
from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from engines.export_onnx import export_onnx
from tests.support.small_gfpgan import face_batch, psnr, small_checkpoint
from vidrestore.backends.base import RestoreBackend
from vidrestore.backends.onnxruntime import OnnxRuntimeBackend, available_providers, ensure_onnx
from vidrestore.errors import BackendUnavailable, ConfigError


@pytest.fixture
def model(small_gfpgan_64):
    return small_gfpgan_64


@pytest.fixture
def onnx_path(small_gfpgan_onnx):
    return small_gfpgan_onnx


def test_is_a_restore_backend_and_matches_torch_at_batch_1_and_3(model, onnx_path, testdata):
    backend = OnnxRuntimeBackend(onnx_path, device="cpu", precision="fp32", max_batch=4, threads=1)
    assert isinstance(backend, RestoreBackend)
    assert (backend.name, backend.device, backend.precision, backend.max_batch) == ("onnxruntime", "cpu", "fp32", 4)
    x = face_batch(testdata, 64, 3)
    with torch.no_grad():
        ref = model(x)
    for n in (1, 3):
        out = backend.restore(x[:n])
        assert out.shape == (n, 3, 64, 64) and out.dtype == torch.float32 and out.device.type == "cpu"
        assert float((out - ref[:n]).abs().max()) <= 2e-3


def test_batches_larger_than_max_batch_are_split(model, onnx_path, testdata):
    backend = OnnxRuntimeBackend(onnx_path, max_batch=2, threads=1)
    x = face_batch(testdata, 64, 5)
    with torch.no_grad():
        ref = model(x)
    out = backend.restore(x)
    assert out.shape == (5, 3, 64, 64)
    assert float((out - ref).abs().max()) <= 2e-3


def test_output_follows_input_dtype_and_rejects_bad_shapes(onnx_path):
    backend = OnnxRuntimeBackend(onnx_path, threads=1)
    x = torch.zeros(1, 3, 64, 64, dtype=torch.float64)
    assert backend.restore(x).dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        backend.restore(torch.zeros(3, 64, 64))


def test_fp16_onnx_runs_on_cpu_close_to_fp32(model, tmp_path, testdata):
    path = export_onnx(model, tmp_path / "half.onnx", fp16=True)
    backend = OnnxRuntimeBackend(path, precision="fp16", threads=1)
    x = face_batch(testdata, 64, 2)
    with torch.no_grad():
        ref = model(x)
    assert psnr(backend.restore(x), ref) >= 35.0


def test_errors_name_the_problem(onnx_path, tmp_path):
    with pytest.raises(BackendUnavailable, match="ONNX file not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="fp32 and fp16"):
        OnnxRuntimeBackend(onnx_path, precision="bf16")
    with pytest.raises(ConfigError, match="--batch"):
        OnnxRuntimeBackend(onnx_path, max_batch=0)
    if "CUDAExecutionProvider" not in available_providers():
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            OnnxRuntimeBackend(onnx_path, device="cuda")
    other = tmp_path / "renamed.onnx"
    proto = onnx.load(str(export_onnx(nn.Conv2d(3, 3, 1).eval(), tmp_path / "conv.onnx", size=8)))
    proto.graph.output[0].name = "y"
    proto.graph.node[-1].output[0] = "y"
    onnx.save(proto, str(other))
    with pytest.raises(BackendUnavailable, match="expected") as info:
        OnnxRuntimeBackend(other)
    assert str(other) in str(info.value)


def test_from_weights_exports_once_into_the_cache(tmp_path):
    from vidrestore.models import load_gfpgan

    ckpt = small_checkpoint(tmp_path / "w.pth")
    backend = OnnxRuntimeBackend.from_weights(ckpt, cache_dir=tmp_path / "cache", max_batch=2, threads=1)
    assert backend.onnx_path == ensure_onnx(ckpt, cache_dir=tmp_path / "cache")
    assert backend.onnx_path.parent == tmp_path / "cache" / "onnx"
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        ref = load_gfpgan(ckpt)(x)
    assert float((backend.restore(x) - ref).abs().max()) <= 2e-3


@pytest.mark.needs_cuda
def test_cuda_io_binding_matches_cpu(model, onnx_path, testdata):
    if "CUDAExecutionProvider" not in available_providers():
        pytest.skip("onnxruntime build without the CUDA execution provider")
    x = face_batch(testdata, 64, 3)
    cpu = OnnxRuntimeBackend(onnx_path, device="cpu").restore(x)
    gpu = OnnxRuntimeBackend(onnx_path, device="cuda", max_batch=2)
    out = gpu.restore(x.cuda())
    assert out.device.type == "cuda" and out.shape == x.shape
    assert float((out.cpu() - cpu).abs().max()) <= 2e-3


@pytest.mark.slow
def test_fp16_vs_fp32_at_512_on_a_real_face(gfpgan_checkpoint, tmp_path, testdata):
    """The issue's check at full size: FP16 (demodulation in FP32) vs FP32 on Adele, >= 35 dB."""
    from vidrestore.models import load_gfpgan

    model = load_gfpgan(gfpgan_checkpoint)
    fp32 = OnnxRuntimeBackend(export_onnx(model, tmp_path / "a.onnx"))
    fp16 = OnnxRuntimeBackend(export_onnx(model, tmp_path / "b.onnx", fp16=True), precision="fp16")
    x = face_batch(testdata, 512, 1)
    assert psnr(fp16.restore(x), fp32.restore(x)) >= 35.0
