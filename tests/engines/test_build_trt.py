"""TensorRT build: the ONNX the builder consumes, profiles, layer matching, errors without TensorRT.
The real build runs only where TensorRT and a GPU exist (needs_cuda)."""
from __future__ import annotations

import importlib.util

import onnx
import pytest
import torch

from engines.build_trt import (build_engine, gpu_identity, import_tensorrt, inspect_onnx, profile_shapes,
                               timing_cache_path)
from engines.engine_cache import BatchProfile, EngineCache
from engines.export_onnx import export_onnx
from tests.support.small_gfpgan import small_checkpoint
from vidrestore.errors import BackendUnavailable, ConfigError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def exported(small_gfpgan_64, small_gfpgan_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trt")
    return small_gfpgan_onnx, export_onnx(small_gfpgan_64, folder / "m16.onnx", fp16=True)


def test_inspect_onnx_reads_what_the_builder_needs(exported):
    fp32, fp16 = exported
    info = inspect_onnx(fp32)
    assert (info.image_size, info.dynamic_batch, info.precision) == (64, True, "fp32")
    assert len(info.sha256) == 64
    assert inspect_onnx(fp16).precision == "fp16"
    assert inspect_onnx(fp16).sha256 != info.sha256


def test_inspect_onnx_rejects_what_cannot_become_a_dynamic_engine(exported, tmp_path):
    fp32, _ = exported
    proto = onnx.load(str(fp32))
    proto.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    static = tmp_path / "static.onnx"
    onnx.save(proto, str(static))
    with pytest.raises(BackendUnavailable, match="fixed batch 4") as info:
        inspect_onnx(static)
    assert str(static) in str(info.value)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not a protobuf")
    with pytest.raises(BackendUnavailable, match="not a readable ONNX"):
        inspect_onnx(garbage)


def test_profile_shapes_cover_min_opt_max():
    assert profile_shapes(BatchProfile(1, 8, 32), 512) == ((1, 3, 512, 512), (8, 3, 512, 512), (32, 3, 512, 512))


def test_timing_cache_name_is_per_gpu_and_version(tmp_path):
    a = timing_cache_path(tmp_path, "NVIDIA H100 80GB HBM3", "9.0", "10.13.0")
    b = timing_cache_path(tmp_path, "NVIDIA A100-SXM4-80GB", "8.0", "10.13.0")
    c = timing_cache_path(tmp_path, "NVIDIA H100 80GB HBM3", "9.0", "11.0.1")
    assert len({a, b, c}) == 3 and a.parent == tmp_path and " " not in a.name


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_missing_tensorrt_gives_install_advice(tmp_path):
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        import_tensorrt()
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        build_engine(str(tmp_path / "whatever.pth"), cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # failed before exporting anything


def test_build_engine_validates_options(tmp_path):
    with pytest.raises(ConfigError, match="fp16 or fp32"):
        build_engine("x.pth", precision="bf16", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        build_engine("x.pth", min_batch=4, opt_batch=2, max_batch=8, cache_dir=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_gpu_identity_without_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        gpu_identity()


@pytest.mark.needs_cuda
def test_build_fp16_engine_is_cached_and_rebuilt_only_when_the_key_changes(tmp_path):
    from tests.support.require import require_module
    require_module("tensorrt", gpu=True)
    ckpt = small_checkpoint(tmp_path / "w.pth")
    logs: list[str] = []
    first = build_engine(str(ckpt), precision="fp16", min_batch=1, opt_batch=2, max_batch=4,
                         cache_dir=tmp_path, workspace_gib=1.0, log=logs.append)
    assert first.is_file() and first.with_suffix(".json").is_file()
    assert any("building" in line for line in logs)
    logs.clear()
    again = build_engine(str(ckpt), precision="fp16", min_batch=1, opt_batch=2, max_batch=4,
                         cache_dir=tmp_path, workspace_gib=1.0, log=logs.append)
    assert again == first and not any("building" in line for line in logs)
    other = build_engine(str(ckpt), precision="fp16", min_batch=1, opt_batch=2, max_batch=8,
                         cache_dir=tmp_path, workspace_gib=1.0)
    assert other != first
    assert len(EngineCache(tmp_path).entries()) == 2
    assert list(tmp_path.glob("timing-*.cache"))
