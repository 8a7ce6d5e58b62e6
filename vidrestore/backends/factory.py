"""Turns a ModelConfig into a ready RestoreBackend plus the sentence that explains the choice."""
from __future__ import annotations

from typing import Callable

import torch

from ..config import ModelConfig
from .base import RestoreBackend
from .torch import CallableBackend, IdentityBackend, resolve_device


def create_backend(config: ModelConfig, *,
                   restorer: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[RestoreBackend, str]:
    if restorer is not None:
        return CallableBackend(restorer, max_batch=config.batch), "restorer callable passed by the caller"
    if config.restorer == "identity":
        dev = "cpu" if config.device == "auto" else str(resolve_device(config.device))
        return IdentityBackend(device=dev, max_batch=max(config.batch, 1)), "--restorer identity"

    from ..models.weights import resolve_weights
    from .select import choose_backend, create_backend as instantiate
    weights = resolve_weights(config.weights)
    choice = choose_backend(requested=config.backend, device=config.device, precision=config.precision)
    backend = instantiate(choice, weights, max_batch=config.batch, threads=config.threads,
                          cache_dir=config.cache_dir, kernels=config.kernels)
    return backend, choice.reason
