"""TensorRT backend: a prebuilt or cached engine run on torch's current CUDA stream.

TensorRT and :mod:`engines.runtime` are imported only when a backend is created, so importing this
module costs nothing and works without TensorRT. Engines are built by :func:`engines.build_trt.build_engine`
(``vidrestore engines build``) or on first use by :meth:`TensorRTBackend.from_weights`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import BackendUnavailable, ConfigError


class TensorRTBackend:
    """:class:`~vidrestore.backends.base.RestoreBackend` over one engine file."""

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike[str], *, device: str = "cuda",
                 precision: str = "fp16", max_batch: int | None = None) -> None:
        if precision not in ("fp16", "fp32"):
            raise ConfigError(f"TensorRT engines run in fp16 or fp32, not {precision!r}")
        if device == "cpu":
            raise BackendUnavailable("the TensorRT backend needs --device cuda")
        from engines.runtime import EngineRunner

        self.runner = EngineRunner(engine_path, device=device)
        self.device = str(self.runner.device)
        self.precision = precision
        limit = self.runner.profile.max
        if max_batch is not None and max_batch < 1:
            raise ConfigError("--batch must be >= 1")
        self.max_batch = limit if max_batch is None else min(max_batch, limit)
        self.engine_path = Path(engine_path)

    @classmethod
    def from_weights(cls, weights: str | os.PathLike[str], *, device: str = "cuda", precision: str = "fp16",
                     max_batch: int = 8, min_batch: int = 1, opt_batch: int | None = None,
                     cache_dir: str | os.PathLike[str] | None = None, workspace_gib: float = 4.0,
                     log=None) -> TensorRTBackend:
        """Build (or reuse from the cache) an engine whose profile covers 1..max_batch, then load it."""
        from engines.build_trt import build_engine

        index = torch.device(device if device != "cuda" else "cuda:0").index or 0
        engine = build_engine(str(weights), precision=precision, min_batch=min_batch,
                              opt_batch=opt_batch or max_batch, max_batch=max_batch, cache_dir=cache_dir,
                              workspace_gib=workspace_gib, device=index, log=log)
        return cls(engine, device=device, precision=precision, max_batch=max_batch)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.runner.run(batch)
        return out if out.dtype == batch.dtype else out.to(batch.dtype)

    def __repr__(self) -> str:
        p = self.runner.profile
        return (f"TensorRTBackend({str(self.engine_path)!r}, device={self.device!r}, precision={self.precision!r}, "
                f"profile={p.min}/{p.opt}/{p.max})")
