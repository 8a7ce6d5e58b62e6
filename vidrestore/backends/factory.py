"""Turns a ModelConfig into a ready RestoreBackend plus the sentence that explains the choice.

Two steps, so that a pipeline can start decoding and detecting while the network is prepared:
:func:`plan_backend` decides (backend, device, reason; cheap, raises option errors at once) and
:attr:`BackendPlan.build` does the slow part (weights download/load, ONNX export, session build).
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class BackendPlan:
    """What will run and why, known before anything slow happens; ``build()`` makes the backend."""
    device: str                              # "cpu" or "cuda[:i]": where frames and image work go
    reason: str
    build: Callable[[], RestoreBackend]      # may take long (download, export); raises VidRestoreError


def plan_backend(config: ModelConfig, *,
                 restorer: Callable[[torch.Tensor], torch.Tensor] | None = None) -> BackendPlan:
    """Choose the backend (option and device errors are raised here); defer loading to ``build``."""
    if restorer is not None:
        return BackendPlan("cpu", "restorer callable passed by the caller",
                           lambda: CallableBackend(restorer, max_batch=config.batch or 4))
    if config.restorer == "identity":
        dev = "cpu" if config.device == "auto" else str(resolve_device(config.device))
        return BackendPlan(dev, "--restorer identity",
                           lambda: IdentityBackend(device=dev, max_batch=config.batch or 4))

    from .select import choose_backend
    choice = choose_backend(requested=config.backend, device=config.device, precision=config.precision)

    def build() -> RestoreBackend:
        from ..models.weights import resolve_weights
        from .select import create_backend as instantiate
        weights = resolve_weights(config.weights)
        return instantiate(choice, weights, max_batch=config.batch or default_batch(choice.device),
                           threads=config.threads, cache_dir=config.cache_dir, kernels=config.kernels)
    return BackendPlan("cpu" if choice.device == "cpu" else str(resolve_device(choice.device)),
                       choice.reason, build)


def create_backend(config: ModelConfig, *,
                   restorer: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[RestoreBackend, str]:
    plan = plan_backend(config, restorer=restorer)
    return plan.build(), plan.reason
