"""ONNX Runtime's optimised graph cache: written once beside the export, reused (not rewritten) with the
same numbers, and invalidated like the export (new weights/export, settings, ONNX Runtime version)."""
from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime
import pytest
import torch

from engines.export_onnx import export_onnx
from tests.support.small_gfpgan import small_gfpgan
from vidrestore.backends import ort_graph
from vidrestore.backends.onnxruntime import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_onnx(small_gfpgan(64, seed=0), tmp_path_factory.mktemp("export") / "small.onnx")


@pytest.fixture()
def model_file(exported, tmp_path):
    """A fresh copy of the export per test, in a folder of its own (no cached graph yet)."""
    (tmp_path / "onnx").mkdir()
    return Path(shutil.copy(exported, tmp_path / "onnx" / "small.onnx"))


def _backend(path, **kw):
    return OnnxRuntimeBackend(path, max_batch=2, threads=1, **kw)


def test_written_once_then_reused_with_equal_numbers(model_file, x):
    first = _backend(model_file)
    assert first.graph_cache_use.state == "written"
    cached = first.graph_cache_use.path
    assert cached.parent == model_file.parent and cached.name.startswith(model_file.name + ".optimized-")
    stamp = cached.stat().st_mtime_ns
    second = _backend(model_file)
    assert second.graph_cache_use.state == "reused" and second.graph_cache_use.path == cached
    assert cached.stat().st_mtime_ns == stamp                            # opened, not rewritten
    plain = _backend(model_file, graph_cache=False)                      # optimised from the export
    assert plain.graph_cache_use is None
    y = plain.restore(x)
    assert torch.equal(first.restore(x), y) and torch.equal(second.restore(x), y)
    assert not [p for p in cached.parent.iterdir() if p.name.endswith(".tmp")]


def test_invalidated_like_the_export(model_file, x):
    a = _backend(model_file)
    ya = a.restore(x)
    export_onnx(small_gfpgan(64, seed=1), model_file)                   # new weights, same file name
    b = _backend(model_file)
    assert b.graph_cache_use.state == "written" and b.graph_cache_use.path != a.graph_cache_use.path
    assert float((b.restore(x) - ya).abs().max()) > 1e-2               # the new weights ran, not the old graph
    # settings and the runtime are in the key as well
    level = str(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert ort_graph.cached_graph_path(model_file, level=level) == b.graph_cache_use.path
    basic = str(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    assert ort_graph.cached_graph_path(model_file, level=basic) != b.graph_cache_use.path


def test_runtime_version_is_in_the_key(model_file, monkeypatch):
    level = str(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
    before = ort_graph.cached_graph_path(model_file, level=level)
    monkeypatch.setattr(onnxruntime, "__version__", onnxruntime.__version__ + ".post1")
    assert ort_graph.cached_graph_path(model_file, level=level) != before


def test_damaged_cache_is_rebuilt(model_file, x):
    first = _backend(model_file)
    y = first.restore(x)
    first.graph_cache_use.path.write_bytes(b"not a graph")
    second = _backend(model_file)
    assert second.graph_cache_use.state == "written" and torch.equal(second.restore(x), y)
