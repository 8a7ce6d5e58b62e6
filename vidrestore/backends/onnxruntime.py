"""onnxruntime backend: CPU or CUDA execution provider, I/O binding on CUDA.

The ONNX file comes from :func:`engines.export_onnx.export_onnx` (or :func:`ensure_onnx`, which exports
a checkpoint once into the engine cache). Inputs/outputs are FP32 in both the FP32 and the mixed
FP16 files, so ``restore`` always feeds float32.

CPU: session tuned for throughput (all graph optimisations, ``intra_op_num_threads = threads``,
sequential execution, denormals flushed to zero). INT8 (CPU only, ``precision="int8"``): given an FP32
file, the session is opened lazily - the first ``restore`` call calibrates a static INT8 copy on its
faces, or reuses the cached one (see :mod:`vidrestore.backends.int8`); given an already quantized file
it is opened as is. CUDA: the torch tensor's memory is bound as the
input and a torch tensor allocated by us as the output (``IOBinding.bind_input/bind_output`` with
``device_type="cuda"``), so no host round trip happens; the session runs on its own stream and we
synchronise torch's current stream before the run.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from ..errors import BackendUnavailable, ConfigError
from .int8 import DEFAULT_SETTINGS, Int8Settings, ensure_int8

_LOG = logging.getLogger(__name__)
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
                 max_batch: int = 8, threads: int = 0, int8: Int8Settings | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, calibration_source: str = "",
                 graph_cache: bool = True) -> None:
        """``int8``/``cache_dir``/``calibration_source`` apply to ``precision="int8"`` only: the
        quantization settings (default :data:`~vidrestore.backends.int8.DEFAULT_SETTINGS`), the folder
        of the cached INT8 file (default: beside the FP32 file) and a note for its sidecar (e.g. the
        input video's name). ``graph_cache``: on the CPU, keep ONNX Runtime's optimised graph beside
        the model and reuse it (see :mod:`vidrestore.backends.ort_graph`)."""
        if precision not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"onnxruntime backend supports fp32 and fp16 (and int8 on the CPU), "
                              f"not {precision!r}")
        if precision == "int8" and device != "cpu":
            raise ConfigError(f"onnxruntime int8 runs on the CPU only, not {device!r}: use --device cpu "
                              "(on a GPU use --precision fp16)")
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
        self.threads = threads
        self._providers_wanted = providers
        self.int8_settings = (int8 or DEFAULT_SETTINGS) if precision == "int8" else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.calibration_source = calibration_source
        self.calibrated_now = False        # int8: this instance ran the calibration
        self.first_call_s: float | None = None   # int8: seconds of the calibrating/loading first call
        self.session = None
        self.providers: tuple[str, ...] = ("CPUExecutionProvider",)
        self.graph_cache = graph_cache
        self.graph_cache_use = None        # ort_graph.GraphCacheUse of the open session (CPU)
        self.session_build_s: float | None = None
        if precision != "int8" or is_quantized(self.onnx_path):
            self._open(self.onnx_path)

    def _open(self, path: Path) -> None:
        ort = _import_ort()
        t0 = time.perf_counter()

        def options():
            return session_options(threads=self.threads, device="cpu" if self.device == "cpu" else "cuda")
        if self.device == "cpu" and self.graph_cache:   # the optimised graph, cached beside the model
            from .ort_graph import open_cached
            self.session, self.graph_cache_use = open_cached(path, options, self._providers_wanted,
                                                             log=_LOG.info)
        else:
            self.session = ort.InferenceSession(str(path), sess_options=options(),
                                                providers=self._providers_wanted)
        self.session_build_s = time.perf_counter() - t0
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise BackendUnavailable(f"ONNX file has inputs {inputs} and outputs {outputs}, expected "
                                     f"['{INPUT_NAME}'] and ['{OUTPUT_NAME}']: re-export it", path=path)
        self.providers = tuple(self.session.get_providers())
        self.session_path = path

    def _open_int8(self, first_batch: torch.Tensor) -> None:
        """Calibrate on (or reuse the cache for) the first faces, then open the INT8 session."""
        t0 = time.perf_counter()
        x = first_batch.detach().to("cpu", torch.float32).contiguous().numpy()
        path, self.calibrated_now = ensure_int8(self.onnx_path, x, self.int8_settings, cache_dir=self.cache_dir,
                                                source=self.calibration_source, log=_LOG.info)
        self._open(path)
        self.first_call_s = time.perf_counter() - t0
        _LOG.info("int8: %s %s in %.1f s", "calibrated and opened" if self.calibrated_now else "opened",
                  path.name, self.first_call_s)

    @classmethod
    def from_weights(cls, weights_path: str | os.PathLike[str], *, device: str = "cpu",
                     precision: str = "fp32", max_batch: int = 8, threads: int = 0,
                     cache_dir: str | os.PathLike[str] | None = None, int8: Int8Settings | None = None,
                     calibration_source: str = "", graph_cache: bool = True) -> OnnxRuntimeBackend:
        """Export the checkpoint once into the cache (see :func:`ensure_onnx`) and open it (int8: the
        INT8 copy is calibrated on the first ``restore`` call and cached beside the FP32 export)."""
        if precision == "int8" and device != "cpu":
            raise ConfigError(f"onnxruntime int8 runs on the CPU only, not {device!r}")
        onnx_path = ensure_onnx(weights_path, fp16=precision == "fp16", cache_dir=cache_dir)
        return cls(onnx_path, device=device, precision=precision, max_batch=max_batch, threads=threads,
                   int8=int8, calibration_source=calibration_source, graph_cache=graph_cache)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, S, S) batch, got {tuple(batch.shape)}")
        if self.session is None:
            self._open_int8(batch)
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


def is_quantized(path: str | os.PathLike[str]) -> bool:
    """Whether an ONNX file already holds quantized operators (QDQ pairs or QLinear* nodes)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type.startswith("QLinear")
               for n in proto.graph.node)


def ensure_onnx(weights_path: str | os.PathLike[str], *, fp16: bool = False,
                cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cached ONNX export of a checkpoint (exported on first use); see
    :func:`engines.export_onnx.ensure_onnx`."""
    from engines.export_onnx import ensure_onnx as _ensure

    return _ensure(weights_path, fp16=fp16, cache_dir=cache_dir)
