"""Choosing a restore backend: explicit ``--backend``/``--device`` requests, or ``auto`` with a reason.

``auto`` order (first usable wins):

    tensorrt > torch-tensorrt > torch (CUDA) > onnxruntime (CUDA) > onnxruntime (CPU) > torch (CPU)

The two CPU entries follow measurement (see :data:`CPU_ORDER`): on the 2-core AVX2 development machine
onnxruntime's FP32 CPU session ran a 512x512 face 1.9-2.7x faster than torch's FP32 forward of the same
model (5.6 s vs 10.7 s, 5.5 s vs 14.8 s, 16.3 s vs 41.9 s per face; three runs, shared and loaded CPU). What is usable comes
from a frozen :class:`Capabilities` snapshot (:func:`detect_capabilities`), so the choice itself is a
pure function and tests pass explicit capabilities.

``int8`` (only when asked for with ``--precision int8``; never picked by ``auto`` otherwise) runs on
onnxruntime's CPU provider only: static INT8 calibrated on the first faces of the video (see
:mod:`vidrestore.backends.int8`). ``auto`` + int8 picks onnxruntime on the CPU and says why; any other
backend or ``--device cuda`` with int8 is refused with the reason. Requests that cannot be met raise
:class:`BackendUnavailable` with the reason; the returned ``reason`` goes into the pipeline report.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ..config import BackendName, Device, Precision
from ..errors import BackendUnavailable, ConfigError

# Measured (this module's docstring): onnxruntime CPU FP32 is faster than torch CPU FP32.
CPU_ORDER: tuple[str, ...] = ("onnxruntime", "torch")
TRT_PRECISIONS = ("fp16", "fp32")
ORT_PRECISIONS = ("fp32", "fp16", "int8")
INT8_REASON = ("int8 is onnxruntime's static INT8 on the CPU (calibrated on the first faces, cached); "
               "no other backend or device runs it")


@dataclass(frozen=True)
class Capabilities:
    """What this process can run. Build one by hand in tests; :func:`detect_capabilities` in real runs."""

    cuda: bool                               # torch.cuda.is_available()
    gpu_name: str | None = None              # name of cuda:0
    tensorrt: bool = False                   # `import tensorrt` works
    torch_tensorrt: bool = False             # `import torch_tensorrt` works
    ort_providers: tuple[str, ...] = ()      # onnxruntime.get_available_providers()
    onnx_export: bool = True                 # the `onnx` package is there (needed to export a .pth)

    @property
    def ort_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.ort_providers

    @property
    def ort_cpu(self) -> bool:
        return "CPUExecutionProvider" in self.ort_providers


@dataclass(frozen=True)
class BackendChoice:
    name: str          # "tensorrt", "torch-tensorrt", "torch", "onnxruntime"
    device: str        # "cpu" or "cuda"
    precision: str     # "fp32", "fp16", "bf16"
    reason: str        # one line for the log and the report


def _importable(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:  # a broken install (missing shared library, ABI mismatch) is not usable
        return False
    return True


def detect_capabilities() -> Capabilities:
    """Probe this process: CUDA through torch, TensorRT and torch-tensorrt by importing them (only when a
    GPU is visible: without one they are useless and slow to import), onnxruntime's providers."""
    import torch

    cuda = torch.cuda.is_available()
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    try:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    except ImportError:
        providers = ()
    return Capabilities(cuda=cuda, gpu_name=gpu_name,
                        tensorrt=cuda and _importable("tensorrt"),
                        torch_tensorrt=cuda and _importable("torch_tensorrt"),
                        ort_providers=providers,
                        onnx_export=importlib.util.find_spec("onnx") is not None)


def _why_not(name: str, device: str, precision: str, caps: Capabilities) -> str | None:
    """None when backend ``name`` can run on ``device`` at ``precision``, else the reason it cannot."""
    gpu = f" on {caps.gpu_name}" if caps.gpu_name else ""
    if device == "cuda" and not caps.cuda:
        return "no CUDA GPU is visible to torch"
    if precision == "int8" and (name != "onnxruntime" or device != "cpu"):
        return INT8_REASON + " (use --backend onnxruntime --device cpu, or fp16 on a GPU)"
    if name == "tensorrt":
        if device != "cuda":
            return "TensorRT runs on CUDA only"
        if not caps.tensorrt:
            return "TensorRT is not installed (pip install tensorrt)"
        if precision not in TRT_PRECISIONS:
            return f"TensorRT engines are built in fp16/fp32, not {precision}"
        return None
    if name == "torch-tensorrt":
        if device != "cuda":
            return "torch-tensorrt runs on CUDA only"
        if not caps.torch_tensorrt:
            return "torch-tensorrt is not installed (pip install torch-tensorrt)"
        return None
    if name == "onnxruntime":
        if precision not in ORT_PRECISIONS:
            return f"the onnxruntime backend runs fp32/fp16, not {precision}"
        if not caps.onnx_export:
            return "exporting the checkpoint to ONNX needs the onnx package (pip install onnx)"
        if device == "cuda" and not caps.ort_cuda:
            return f"onnxruntime has no CUDA execution provider{gpu} (pip install onnxruntime-gpu)"
        if device == "cpu" and not caps.ort_cpu:
            return "onnxruntime is not installed (pip install onnxruntime)"
        return None
    if name == "torch":
        return None
    raise ConfigError(f"unknown backend {name!r}")


def _auto_candidates(device: str, precision: str, caps: Capabilities) -> list[tuple[str, str]]:
    gpu = [("tensorrt", "cuda"), ("torch-tensorrt", "cuda"), ("torch", "cuda"), ("onnxruntime", "cuda")]
    cpu = [(name, "cpu") for name in CPU_ORDER]
    if precision == "fp16":  # fp16 convolutions on the CPU are emulated and slow in both frameworks
        cpu = [("onnxruntime", "cpu"), ("torch", "cpu")]
    if precision == "bf16":  # only torch has a bf16 CPU path
        cpu = [("torch", "cpu")]
    if precision == "int8":  # only onnxruntime's CPU provider has the int8 path
        return [("onnxruntime", "cpu")] if device in ("cpu", "auto") else []
    if device == "cuda":
        return gpu
    if device == "cpu":
        return cpu
    return (gpu if caps.cuda else []) + cpu


def choose_backend(*, requested: BackendName, device: Device, precision: Precision,
                   probe: Capabilities | None = None) -> BackendChoice:
    """The backend to run, with a one-line reason. Raises :class:`BackendUnavailable` when an explicit
    request (backend and/or device) cannot be met."""
    caps = probe if probe is not None else detect_capabilities()
    if precision == "int8" and device == "cuda":
        raise ConfigError("--precision int8 runs on the CPU only (onnxruntime static INT8); with "
                          "--device cuda use --precision fp16")
    if device == "cuda" and not caps.cuda:
        raise BackendUnavailable("--device cuda was requested but torch sees no CUDA GPU (no NVIDIA driver, "
                                 "a CPU-only torch build, or CUDA_VISIBLE_DEVICES hides it); use --device "
                                 "cpu or auto")
    if requested != "auto":
        if device == "auto" and precision == "int8":
            dev = "cpu"  # int8 has no GPU path; _why_not explains a backend that cannot run it
        elif device == "auto":
            wants_gpu = requested in ("tensorrt", "torch-tensorrt")
            dev = "cuda" if caps.cuda and (wants_gpu or requested == "torch" or
                                           (requested == "onnxruntime" and caps.ort_cuda)) else "cpu"
            if wants_gpu and not caps.cuda:
                dev = "cuda"  # let _why_not explain that there is no GPU
        else:
            dev = device
        why = _why_not(requested, dev, precision, caps)
        if why is not None:
            raise BackendUnavailable(f"--backend {requested} cannot run on {dev} at {precision}: {why}")
        where = f"{dev}" + (f" ({caps.gpu_name})" if dev == "cuda" and caps.gpu_name else "")
        return BackendChoice(requested, dev, precision, f"--backend {requested} requested; runs on {where}")

    skipped = [] if caps.cuda or device == "cpu" or precision == "int8" else [
        "GPU backends: no CUDA GPU is visible to torch"]
    for name, dev in _auto_candidates(device, precision, caps):
        why = _why_not(name, dev, precision, caps)
        if why is None:
            where = dev + (f" ({caps.gpu_name})" if dev == "cuda" and caps.gpu_name else "")
            reason = f"auto: {name} on {where}"
            if precision == "int8":
                reason += " (--precision int8: static INT8, calibrated on the first faces and cached)"
            if skipped:
                reason += "; skipped " + "; ".join(skipped)
            return BackendChoice(name, dev, precision, reason)
        skipped.append(f"{name}/{dev}: {why}")
    raise BackendUnavailable(f"no backend can run on {device} at {precision}: " + "; ".join(skipped))


def create_backend(choice: BackendChoice, weights_path, *, max_batch: int = 4, threads: int = 0,
                   cache_dir=None, log=None, kernels: str = "auto"):
    """Instantiate the chosen backend for a checkpoint (imports only that backend's dependencies).

    onnxruntime exports the checkpoint once into ``cache_dir``; tensorrt builds (or reuses) an engine
    whose batch profile covers 1..max_batch; torch-tensorrt compiles at start-up.
    """
    if choice.name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_weights(weights_path, device=choice.device, precision=choice.precision,
                                               max_batch=max_batch, threads=threads, cache_dir=cache_dir)
    if choice.name == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend.from_weights(weights_path, device=choice.device, precision=choice.precision,
                                            max_batch=max_batch, cache_dir=cache_dir, log=log)
    if choice.name == "torch-tensorrt":
        from .torch_tensorrt import TorchTensorRTBackend

        return TorchTensorRTBackend(weights_path, device=choice.device, precision=choice.precision,
                                    max_batch=max_batch)
    if choice.name == "torch":
        from .torch import TorchBackend

        return TorchBackend(weights_path, device=choice.device, precision=choice.precision,
                            max_batch=max_batch, threads=threads, kernels=kernels)
    raise ConfigError(f"unknown backend {choice.name!r}")
