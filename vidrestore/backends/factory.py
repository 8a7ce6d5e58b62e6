"""Turns a ModelConfig into a ready RestoreBackend plus the sentence that explains the choice."""
from __future__ import annotations

from typing import Callable

import torch

from ..config import ModelConfig
from .base import RestoreBackend
from .torch import CallableBackend, IdentityBackend, resolve_device

CPU_BATCH = 1    # faces per call on the CPU: batching is slower per face there (measured below)
GPU_BATCH = 8    # on a GPU: fills the SMs; TensorRT profiles are built around it


def default_batch(device: str) -> int:
    """Faces per network call when ``--batch`` is not given. On the 2-core CPU, faces/s at batch 1 vs 4
    (benchmarks/results/model_throughput-*-batch.json): onnxruntime FP32 0.368 vs 0.332, INT8 0.607 vs
    0.499, torch 0.217 vs 0.168 - a 512 px batch's activations leave the caches. On a GPU larger
    batches are what make it fast."""
    return CPU_BATCH if str(device).startswith("cpu") else GPU_BATCH


def create_backend(config: ModelConfig, *,
                   restorer: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[RestoreBackend, str]:
    if restorer is not None:
        return CallableBackend(restorer, max_batch=config.batch or 4), "restorer callable passed by the caller"
    if config.restorer == "identity":
        dev = "cpu" if config.device == "auto" else str(resolve_device(config.device))
        return IdentityBackend(device=dev, max_batch=config.batch or 4), "--restorer identity"

    from ..models.weights import resolve_weights
    from .select import choose_backend, create_backend as instantiate
    weights = resolve_weights(config.weights)
    choice = choose_backend(requested=config.backend, device=config.device, precision=config.precision)
    batch = config.batch or default_batch(choice.device)
    backend = instantiate(choice, weights, max_batch=batch, threads=config.threads,
                          cache_dir=config.cache_dir, kernels=config.kernels)
    return backend, choice.reason
