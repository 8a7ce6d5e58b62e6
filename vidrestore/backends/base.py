"""The contract every restore backend implements, independent of framework."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class RestoreBackend(Protocol):
    """Restores aligned face crops.

    ``restore(batch)``: float tensor (N, 3, S, S), RGB in [-1, 1] (S = 512 for GFP-GAN), on
    ``device`` -> tensor of the same shape and device, values not clamped. N may be anything from 1
    to ``max_batch``; callers split larger batches.
    """

    name: str          # "torch", "onnxruntime", "tensorrt", "torch-tensorrt", "identity"
    device: str        # "cpu" or "cuda[:i]"
    precision: str     # "fp32", "fp16", "bf16"
    max_batch: int

    def restore(self, batch: torch.Tensor) -> torch.Tensor: ...
