"""PyTorch backend: the GFP-GAN module itself, on CPU or CUDA, in FP32, FP16 (CUDA) or BF16."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import check_kernels
from ..errors import BackendUnavailable, ConfigError
from ..models.numerics import use_product_numerics

log = logging.getLogger(__name__)
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_KERNEL_DTYPES = (torch.float32, torch.float16)   # what engines.kernels' model kernels take


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU -> BackendUnavailable."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "--device cuda was requested but no CUDA GPU is visible to PyTorch "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu")
    return dev


class TorchBackend:
    """Runs the GFP-GAN module in eager PyTorch.

    FP16 is refused on the CPU: torch's half-precision CPU convolutions are impractically slow (see
    the README); BF16 on the CPU runs through oneDNN (fast on AVX-512 BF16 / AMX machines).
    """

    name = "torch"

    def __init__(self, weights: str | Path, *, device: str = "cpu", precision: str = "fp32",
                 max_batch: int = 8, threads: int = 0, channels_last: bool | None = None,
                 kernels: str = "auto") -> None:
        from ..models import load_gfpgan

        if precision not in _DTYPES:
            raise ConfigError(f"--precision {precision!r} is not one of {sorted(_DTYPES)}")
        dev = resolve_device(device)
        if dev.type == "cpu" and precision == "fp16":
            raise ConfigError("--precision fp16 needs --device cuda (PyTorch's FP16 convolutions on "
                              "the CPU are far slower than FP32); use bf16 or fp32 on the CPU")
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = str(dev)
        self.precision = precision
        self.max_batch = max(1, int(max_batch))
        self._dtype = _DTYPES[precision]
        use_product_numerics(dev)
        model = load_gfpgan(Path(weights), device=str(dev), dtype=self._dtype)
        ops = model_kernels(dev, kernels, dtype=self._dtype)
        self.kernels = "torch" if ops is None else "cupy"
        if ops is not None:
            model.set_kernels(ops)
        # the CuPy kernels index NCHW-contiguous tensors: no channels_last with them
        self._channels_last = (dev.type == "cuda" and ops is None) if channels_last is None else channels_last
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @torch.inference_mode()
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected (N,3,S,S), got {tuple(batch.shape)}")
        out_dtype, out_device = batch.dtype, batch.device
        outs = []
        for chunk in batch.split(self.max_batch):
            x = chunk.to(device=self.device, dtype=self._dtype, non_blocking=True)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outs.append(self.model(x).to(dtype=out_dtype))
        return torch.cat(outs).to(out_device).contiguous()


def model_kernels(device: torch.device, kernels: str, *, dtype: torch.dtype = torch.float32) -> object | None:
    """The custom-kernel object for GFPGAN.set_kernels, or None for the plain torch path.

    "torch": None. "cupy": engines.kernels' ModConvKernels + SFTKernels (CUDA only, fp32/fp16 models;
    BackendUnavailable when CuPy or the kernels cannot load). "auto": the CuPy kernels on CUDA for
    fp32/fp16 when they load, else None (the kernels take float32/float16 tensors only, not bf16).
    """
    check_kernels(kernels)
    if kernels == "torch" or (kernels == "auto" and (device.type != "cuda" or dtype not in _KERNEL_DTYPES)):
        return None
    if device.type != "cuda":
        raise BackendUnavailable(f"--kernels cupy needs a CUDA device, got {device}")
    if dtype not in _KERNEL_DTYPES:
        raise ConfigError(f"--kernels cupy runs fp32 and fp16 models only, not {dtype}; "
                          "use --kernels torch or auto")
    try:
        from engines.kernels import ModConvKernels, SFTKernels   # lazy: engines depends on vidrestore
        return kernel_namespace(ModConvKernels(device), SFTKernels(device))
    except Exception as err:  # noqa: BLE001 - CuPy missing, NVRTC or driver failures
        if kernels == "cupy":
            if isinstance(err, BackendUnavailable):
                raise
            raise BackendUnavailable(f"cannot load the CuPy model kernels: {err}") from err
        log.info("CuPy model kernels unavailable (%s); plain torch", err)
        return None


def kernel_namespace(modconv: object, sft: object) -> object:
    """The object GFPGAN.set_kernels takes, from a ModConvKernels and an SFTKernels instance."""
    from types import SimpleNamespace

    return SimpleNamespace(style_demod=modconv.style_demod, modulate_input=modconv.modulate_input,
                           modconv_epilogue=modconv.modconv_epilogue, sft_half=sft.sft_half)


class IdentityBackend:
    """Returns the crops unchanged: runs everything but the network (alignment/paste inspection)."""

    name = "identity"
    precision = "fp32"

    def __init__(self, *, device: str = "cpu", max_batch: int = 64) -> None:
        self.device = device
        self.max_batch = max_batch

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.clone()


class CallableBackend:
    """Adapts any callable on (N,3,S,S) float tensors in [-1,1] (``restorer=`` in the Python API)."""

    name = "callable"
    precision = "fp32"

    def __init__(self, fn, *, device: str = "cpu", max_batch: int = 8) -> None:
        if not callable(fn):
            raise ConfigError(f"restorer must be callable, got {type(fn).__name__}")
        self._fn = fn
        self.device = device
        self.max_batch = max_batch

    @torch.inference_mode()
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in batch.split(self.max_batch):
            out = self._fn(chunk)
            if not isinstance(out, torch.Tensor) or out.shape != chunk.shape:
                raise ValueError("restorer must return a tensor of the input's shape "
                                 f"{tuple(chunk.shape)}, got {getattr(out, 'shape', type(out))}")
            outs.append(out.to(chunk.dtype))
        return torch.cat(outs)
