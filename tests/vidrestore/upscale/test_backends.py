"""The upsampler behind every backend: ONNX export with dynamic batch and size against torch,
the FP16 file TensorRT builds from, backend choice, and everything around the TensorRT engine that a
CPU can check (profiles, cache keys and records, lazy import)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from engines.engine_cache import BatchProfile, EngineCache
from engines.export_upsampler import check_upsampler_graph, ensure_upsampler_onnx, export_upsampler
from engines.upsampler_trt import ShapeProfile, UpsamplerEngineKey, upsampler_profile
from vidrestore.backends.select import Capabilities
from vidrestore.config import ModelConfig
from vidrestore.errors import BackendUnavailable
from vidrestore.models.checkpoints import save_gfpgan
from vidrestore.models.realesrgan import RRDBNet, SRVGGNetCompact
from vidrestore.upscale.backends import OnnxUpsampler, TorchUpsampler, create_upsampler, upsampler_choice

CPU = Capabilities(cuda=False, ort_providers=("CPUExecutionProvider",))
GPU = Capabilities(cuda=True, gpu_name="NVIDIA H100", tensorrt=True, torch_tensorrt=False,
                   ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


def _net(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in ** -0.5 if p.ndim > 1 else 0.05))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_x2(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("esrgan") / "tiny_x2.pth"
    return str(save_gfpgan(_net(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4)).state_dict(),
                           path, key="params_ema"))


@pytest.mark.parametrize("make", [lambda: RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4),
                                  lambda: RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4),
                                  lambda: SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)],
                         ids=["rrdb-x2", "rrdb-x4", "srvgg-x4"])
def test_onnx_has_dynamic_batch_and_size_and_equals_torch(tmp_path, make) -> None:
    import onnx

    net = _net(make())
    path = export_upsampler(net, tmp_path / "up.onnx")
    proto = onnx.load(str(path))
    assert check_upsampler_graph(proto) == []
    ort = OnnxUpsampler(path)
    for shape in [(1, 3, 10, 14), (3, 3, 22, 8)]:        # batch and both sides differ from the export
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(shape[0]))
        with torch.no_grad():
            want = net(x)
        got = ort(x)
        assert got.shape == want.shape == (shape[0], 3, shape[2] * net.scale, shape[3] * net.scale)
        assert (got - want).abs().max().item() < 1e-4


def test_fp16_onnx_for_tensorrt_is_close_to_torch(tmp_path) -> None:
    import onnx

    net = _net(RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4))
    path = export_upsampler(net, tmp_path / "up16.onnx", fp16=True)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vidrestore.precision"] == "fp16" and meta["vidrestore.scale"] == "4"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT   # FP32 I/O
    assert check_upsampler_graph(proto) == []
    x = torch.rand(2, 3, 12, 18, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = net(x)
    assert (OnnxUpsampler(path)(x) - want).abs().max().item() < 2e-3


def test_fixed_size_graph_is_rejected(tmp_path) -> None:
    import onnx

    net = _net(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4))
    path = export_upsampler(net, tmp_path / "up.onnx")
    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 64     # freeze the height
    assert any("fixed height" in p for p in check_upsampler_graph(proto))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


def test_cached_export_is_keyed_by_checkpoint(cache, tiny_x2) -> None:
    a = ensure_upsampler_onnx(tiny_x2, cache_dir=cache)
    stamp = a.stat().st_mtime_ns
    assert ensure_upsampler_onnx(tiny_x2, cache_dir=cache) == a and a.parent == cache / "onnx"
    assert a.stat().st_mtime_ns == stamp                                  # reused, not exported again


def test_auto_choice_follows_the_face_network_rule() -> None:
    auto = ModelConfig()
    assert upsampler_choice(auto, device="cpu", probe=CPU).name == "onnxruntime"
    gpu = upsampler_choice(ModelConfig(precision="fp16"), device="cuda", probe=GPU)
    assert (gpu.name, gpu.device, gpu.precision) == ("tensorrt", "cuda", "fp16")
    assert gpu.reason.startswith("auto: tensorrt on cuda")
    int8 = upsampler_choice(ModelConfig(precision="int8"), device="cpu", probe=CPU)
    assert (int8.name, int8.precision) == ("onnxruntime", "fp32") and "face network only" in int8.reason
    tt = upsampler_choice(ModelConfig(backend="torch-tensorrt"), device="cuda", probe=GPU)
    assert tt.name == "tensorrt" and "torch-tensorrt has no upsampler path" in tt.reason
    assert upsampler_choice(ModelConfig(backend="torch"), device="cpu", probe=CPU).name == "torch"
    with pytest.raises(BackendUnavailable):
        upsampler_choice(ModelConfig(backend="tensorrt"), device="cuda", probe=CPU)


def test_create_upsampler_on_cpu(cache, tiny_x2) -> None:
    net, info, reason = create_upsampler(tiny_x2, model=ModelConfig(cache_dir=cache), device="cpu",
                                         window=64, max_batch=4, probe=CPU)
    assert isinstance(net, OnnxUpsampler) and (info.scale, info.align) == (2, 2) and "onnxruntime" in reason
    t, _, _ = create_upsampler(tiny_x2, model=ModelConfig(backend="torch"), device="cpu", window=64,
                               max_batch=4, probe=CPU)
    assert isinstance(t, TorchUpsampler)
    x = torch.rand(2, 3, 16, 20)
    assert (net(x) - t(x)).abs().max().item() < 1e-4


def test_tensorrt_profile_covers_the_tile_windows() -> None:
    p = upsampler_profile(window=464, max_batch=16, align=2)
    assert p.shapes() == ((1, 3, 8, 8), (16, 3, 464, 464), (16, 3, 464, 464))
    assert p.contains((16, 3, 464, 464)) and p.contains((1, 3, 200, 464))
    assert not p.contains((17, 3, 464, 464)) and not p.contains((1, 3, 466, 464))
    with pytest.raises(Exception):
        upsampler_profile(window=465, max_batch=4, align=2)          # unshuffle needs even windows


def test_engine_key_and_cache_record(tmp_path) -> None:
    key = UpsamplerEngineKey(onnx_sha256="ab" * 32, precision="fp16",
                             profile=upsampler_profile(window=464, max_batch=16, align=2),
                             gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", tensorrt_version="10.13")
    assert UpsamplerEngineKey.from_dict(key.to_dict()) == key
    assert key.file_stem().startswith("esrgan-fp16-b1-16-16-464x464-")
    others = [UpsamplerEngineKey(**{**key.__dict__, field: value}) for field, value in
              [("precision", "fp32"), ("gpu_name", "NVIDIA L4"), ("tensorrt_version", "11.0"),
               ("profile", upsampler_profile(window=400, max_batch=16, align=2)),
               ("onnx_sha256", "cd" * 32)]]
    assert len({key.digest(), *(o.digest() for o in others)}) == 6
    cache = EngineCache(tmp_path)
    built = []
    path = cache.get_or_build(key, lambda k, out: (built.append(k), out.write_bytes(b"engine")))
    assert cache.get_or_build(key, lambda k, out: built.append(k)) == path and len(built) == 1
    assert "another" in cache.why_invalid(others[1]) or cache.why_invalid(others[1]) == "no cache record"
    path.write_bytes(b"tampered")
    assert "differs" in cache.why_invalid(key)
    assert ShapeProfile(BatchProfile(1, 2, 4), (8, 8), (64, 64), (64, 64)).tag() == "b1-2-4-64x64"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_tensorrt_missing_is_a_clear_backend_error(tmp_path, tiny_x2) -> None:
    from engines.upsampler_trt import UpsamplerEngineRunner, build_upsampler_engine

    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        build_upsampler_engine(tiny_x2, window=64, max_batch=2, align=2, cache_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        UpsamplerEngineRunner(tmp_path / "x.engine")


def test_torch_upsampler_refuses_fp16_on_cpu() -> None:
    with pytest.raises(BackendUnavailable):
        TorchUpsampler(SRVGGNetCompact(num_feat=4, num_conv=1), device="cpu", precision="fp16")
    assert np.isfinite(TorchUpsampler(SRVGGNetCompact(num_feat=4, num_conv=1), device="cpu")(
        torch.rand(1, 3, 4, 4)).numpy()).all()
