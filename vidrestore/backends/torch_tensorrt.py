"""torch-tensorrt backend: the torch model compiled into TensorRT subgraphs (dynamic batch).

torch-tensorrt is imported lazily by :mod:`engines.torch_trt`; without it creating the backend raises
:class:`BackendUnavailable` with install advice.
"""
from __future__ import annotations

import os

import torch

from ..errors import BackendUnavailable, ConfigError


class TorchTensorRTBackend:
    """:class:`~vidrestore.backends.base.RestoreBackend` over a torch-tensorrt compiled GFP-GAN."""

    name = "torch-tensorrt"

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cuda", precision: str = "fp16",
                 max_batch: int = 8, min_batch: int = 1, opt_batch: int | None = None,
                 image_size: int = 512) -> None:
        if device == "cpu":
            raise BackendUnavailable("the torch-tensorrt backend needs --device cuda")
        if precision not in ("fp16", "fp32", "bf16"):
            raise ConfigError(f"unknown precision {precision!r}")
        from engines.engine_cache import BatchProfile
        from engines.torch_trt import compile_model, import_torch_tensorrt

        import_torch_tensorrt()  # fail fast, before loading 350 MB of weights
        from vidrestore.models import load_gfpgan

        self.device = "cuda:0" if device == "cuda" else device
        self.precision = precision
        self.max_batch = max_batch
        self.profile = BatchProfile(min_batch, min(opt_batch or max_batch, max_batch), max_batch)
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        model = load_gfpgan(model_path, device=self.device, dtype=self._dtype)
        self.module = compile_model(model, precision=precision, profile=self.profile, image_size=image_size,
                                    device=self.device)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, batch.shape[0], self.max_batch):
            x = batch[start:start + self.max_batch].to(self.device, self._dtype).contiguous()
            n = x.shape[0]
            if n < self.profile.min:
                x = torch.cat([x, x.new_zeros((self.profile.min - n, *x.shape[1:]))])
            with torch.no_grad():
                y = self.module(x)
            outs.append(y[:n])
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return out.to(batch.dtype)
