"""Turns a ModelConfig into a ready RestoreBackend plus the sentence that explains the choice."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..config import ModelConfig
from ..errors import BackendUnavailable
from .base import RestoreBackend
from .torch import CallableBackend, IdentityBackend, TorchBackend, resolve_device


def create_backend(config: ModelConfig, *,
                   restorer: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[RestoreBackend, str]:
    if restorer is not None:
        return CallableBackend(restorer, max_batch=config.batch), "restorer callable passed by the caller"
    if config.restorer == "identity":
        dev = "cpu" if config.device == "auto" else str(resolve_device(config.device))
        return IdentityBackend(device=dev, max_batch=max(config.batch, 1)), "--restorer identity"

    from ..models.weights import resolve_weights
    weights = resolve_weights(config.weights)
    from .select import choose_backend
    choice = choose_backend(requested=config.backend, device=config.device, precision=config.precision)
    return _instantiate(choice.name, choice.device, choice.precision, weights, config), choice.reason


def _instantiate(name: str, device: str, precision: str, weights: Path,
                 config: ModelConfig) -> RestoreBackend:
    if name == "torch":
        return TorchBackend(weights, device=device, precision=precision, max_batch=config.batch,
                            threads=config.threads, kernels=config.kernels)
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend, ensure_onnx
        onnx_path = ensure_onnx(weights, fp16=(precision == "fp16"), cache_dir=config.cache_dir)
        return OnnxRuntimeBackend(onnx_path, device=device, precision=precision,
                                  max_batch=config.batch, threads=config.threads)
    if name == "tensorrt":
        from .tensorrt import TensorRTBackend
        return TensorRTBackend.from_weights(weights, precision=precision, max_batch=config.batch,
                                            cache_dir=config.cache_dir)
    if name == "torch-tensorrt":
        from .torch_tensorrt import TorchTensorRTBackend
        return TorchTensorRTBackend(weights, precision=precision, max_batch=config.batch)
    raise BackendUnavailable(f"unknown backend {name!r}")
