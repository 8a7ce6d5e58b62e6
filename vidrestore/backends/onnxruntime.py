"""onnxruntime backend: CPU or CUDA execution provider, I/O binding on CUDA.

The ONNX file comes from :func:`engines.export_onnx.export_onnx` (or :func:`ensure_onnx`, which exports
a checkpoint once into the engine cache). Inputs/outputs are FP32 in both the FP32 and the mixed
FP16 files, so ``restore`` always feeds float32.

CPU: session tuned for throughput (all graph optimisations, ``intra_op_num_threads = threads``,
sequential execution, denormals flushed to zero). CUDA: the torch tensor's memory is bound as the
input and a torch tensor allocated by us as the output (``IOBinding.bind_input/bind_output`` with
``device_type="cuda"``), so no host round trip happens; the session runs on its own stream and we
synchronise torch's current stream before the run.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import BackendUnavailable, ConfigError

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def _import_ort():
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - a hard dependency of vidrestore
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime "
                                 "(or onnxruntime-gpu for CUDA)") from err
    return onnxruntime


def available_providers() -> tuple[str, ...]:
    """onnxruntime's execution providers in this environment (empty when onnxruntime is missing)."""
    try:
        return tuple(_import_ort().get_available_providers())
    except BackendUnavailable:
        return ()


def session_options(*, threads: int = 0, device: str = "cpu"):
    ort = _import_ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if device == "cpu":
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.log_severity_level = 3
    return opts


class OnnxRuntimeBackend:
    """:class:`~vidrestore.backends.base.RestoreBackend` running an exported GFP-GAN ONNX file."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike[str], *, device: str = "cpu", precision: str = "fp32",
                 max_batch: int = 8, threads: int = 0) -> None:
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"onnxruntime backend supports fp32 and fp16, not {precision!r}")
        if max_batch < 1:
            raise ConfigError("--batch must be >= 1")
        ort = _import_ort()
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise BackendUnavailable("ONNX file not found", path=self.onnx_path)
        self.device = "cpu" if device == "cpu" else (device if ":" in device else "cuda:0")
        self.precision = precision
        self.max_batch = max_batch
        if self.device == "cpu":
            providers: list = ["CPUExecutionProvider"]
        else:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    "onnxruntime has no CUDA execution provider here: pip install onnxruntime-gpu "
                    "(instead of onnxruntime), or use --device cpu")
            index = int(self.device.split(":")[1])
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=session_options(
            threads=threads, device="cpu" if self.device == "cpu" else "cuda"), providers=providers)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise BackendUnavailable(f"ONNX file has inputs {inputs} and outputs {outputs}, expected "
                                     f"['{INPUT_NAME}'] and ['{OUTPUT_NAME}']: re-export it",
                                     path=self.onnx_path)
        self.providers = tuple(self.session.get_providers())

    @classmethod
    def from_weights(cls, weights_path: str | os.PathLike[str], *, device: str = "cpu",
                     precision: str = "fp32", max_batch: int = 8, threads: int = 0,
                     cache_dir: str | os.PathLike[str] | None = None) -> OnnxRuntimeBackend:
        """Export the checkpoint once into the cache (see :func:`ensure_onnx`) and open it."""
        onnx_path = ensure_onnx(weights_path, fp16=precision == "fp16", cache_dir=cache_dir)
        return cls(onnx_path, device=device, precision=precision, max_batch=max_batch, threads=threads)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, S, S) batch, got {tuple(batch.shape)}")
        outputs = [self._run(batch[i:i + self.max_batch]) for i in range(0, batch.shape[0], self.max_batch)]
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return out.to(batch.dtype) if out.dtype != batch.dtype else out

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device == "cpu":
            x = batch.detach().to("cpu", torch.float32).contiguous().numpy()
            (y,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
            return torch.from_numpy(y)
        return self._run_cuda(batch)

    def _run_cuda(self, batch: torch.Tensor) -> torch.Tensor:
        import numpy as np

        index = int(self.device.split(":")[1])
        x = batch.detach().to(self.device, torch.float32).contiguous()
        y = torch.empty_like(x)
        binding = self.session.io_binding()
        binding.bind_input(name=INPUT_NAME, device_type="cuda", device_id=index, element_type=np.float32,
                           shape=tuple(x.shape), buffer_ptr=x.data_ptr())
        binding.bind_output(name=OUTPUT_NAME, device_type="cuda", device_id=index, element_type=np.float32,
                            shape=tuple(y.shape), buffer_ptr=y.data_ptr())
        torch.cuda.current_stream(x.device).synchronize()  # x is written on torch's stream
        self.session.run_with_iobinding(binding)  # returns after the run completed on ORT's stream
        return y

    def __repr__(self) -> str:
        return (f"OnnxRuntimeBackend({str(self.onnx_path)!r}, device={self.device!r}, "
                f"precision={self.precision!r}, max_batch={self.max_batch}, providers={self.providers})")


def ensure_onnx(weights_path: str | os.PathLike[str], *, fp16: bool = False,
                cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cached ONNX export of a checkpoint (exported on first use); see
    :func:`engines.export_onnx.ensure_onnx`."""
    from engines.export_onnx import ensure_onnx as _ensure

    return _ensure(weights_path, fp16=fp16, cache_dir=cache_dir)
