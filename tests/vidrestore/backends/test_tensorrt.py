"""TensorRT backend module: importable without TensorRT; clear errors for what cannot work."""
from __future__ import annotations

import importlib.util

import pytest

from vidrestore.backends.tensorrt import TensorRTBackend
from vidrestore.errors import BackendUnavailable, ConfigError


def test_cpu_device_and_bad_precision_are_refused_before_loading(tmp_path):
    with pytest.raises(BackendUnavailable, match="--device cuda"):
        TensorRTBackend(tmp_path / "x.engine", device="cpu")
    with pytest.raises(ConfigError, match="fp16 or fp32"):
        TensorRTBackend(tmp_path / "x.engine", precision="bf16")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_the_error_says_how_to_install(tmp_path):
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        TensorRTBackend(tmp_path / "x.engine", device="cuda")
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        TensorRTBackend.from_weights(tmp_path / "w.pth", cache_dir=tmp_path)
