"""Loading and launching the CUDA kernels of engines/kernels/*.cu with CuPy (no kernel logic here).

:func:`load_module` returns a family's cupy.RawModule: the prebuilt fatbin engines/kernels/fatbin/<name>.fatbin
(CMakeLists.txt; SASS for sm_80/86/89/90 + compute_90 PTX) when it loads on this driver and GPU, else the .cu
source compiled by NVRTC at first use; cached per (family, device, source) per process. :class:`KernelFamily` is
the base of the wrappers in :mod:`engines.kernels`: it fetches a family's functions on its device and launches
them on torch's current CUDA stream; the ``check_*`` helpers validate tensors before their raw pointers are
passed. CuPy is imported lazily.
"""
from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from vidrestore.errors import BackendUnavailable

log = logging.getLogger(__name__)

KERNEL_DIR = Path(__file__).resolve().with_name("kernels")
FATBIN_DIR = KERNEL_DIR / "fatbin"
COMMON_HEADER = "common.cuh"
NVRTC_OPTIONS = ("--std=c++17",)
# Every extern "C" entry point per family (the first one is used to force the module load).
KERNEL_NAMES = MappingProxyType({
    "modconv": ("style_demod_f32", "style_demod_f16", "modulate_input_f32", "modulate_input_f16",
                "modulate_input_vec4_f32", "modulate_input_vec4_f16", "modconv_epilogue_f32",
                "modconv_epilogue_f16", "modconv_epilogue_vec4_f32", "modconv_epilogue_vec4_f16"),
    "sft": ("sft_half_f32", "sft_half_f16", "sft_half_vec4_f32", "sft_half_vec4_f16"),
    "warp": ("warp_rgb_f32", "warp_rgb_f16", "warp_nv12_f32", "warp_nv12_f16", "paste_f32", "paste_f16",
             "nv12_to_rgb", "rgb_to_nv12"),
})
Source = Literal["auto", "fatbin", "nvrtc"]
BLOCK_1D = 256
_MAX_GRID_1D = 65535
SUFFIX = MappingProxyType({torch.float32: "f32", torch.float16: "f16"})


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as err:
        major = (torch.version.cuda or "12").split(".")[0]     # CuPy's wheel must match torch's CUDA
        raise BackendUnavailable(f"CuPy not installed: pip install cupy-cuda{major}x") from err
    return cupy


def kernel_source(name: str) -> str:
    """The .cu source of a family with common.cuh pasted in place of its #include (what NVRTC compiles)."""
    if name not in KERNEL_NAMES:
        raise ValueError(f"unknown kernel family {name!r}; known: {sorted(KERNEL_NAMES)}")
    src = (KERNEL_DIR / f"{name}.cu").read_text()
    header = (KERNEL_DIR / COMMON_HEADER).read_text().replace("#pragma once", "")
    return src.replace(f'#include "{COMMON_HEADER}"', header)


def load_module(name: str, device: int | None = None, source: Source = "auto") -> Any:
    """The cupy.RawModule of kernel family ``name`` on CUDA ``device`` (default: torch's current).

    source "auto": the fatbin if present, not older than its .cu/.cuh and loadable by this driver,
    else NVRTC; "fatbin" / "nvrtc" force one (a "fatbin" that cannot load raises BackendUnavailable).
    """
    if device is None:
        device = torch.cuda.current_device()
    return _load_module(name, int(device), source)


@functools.lru_cache(maxsize=None)
def _load_module(name: str, device: int, source: Source) -> Any:
    cupy = _cupy()
    if name not in KERNEL_NAMES:
        raise ValueError(f"unknown kernel family {name!r}; known: {sorted(KERNEL_NAMES)}")
    first = KERNEL_NAMES[name][0]
    fatbin = FATBIN_DIR / f"{name}.fatbin"
    with cupy.cuda.Device(device):
        if source == "auto" and fatbin.is_file() and _is_stale(fatbin, name):
            log.warning("%s is older than its sources; compiling %s.cu with NVRTC instead", fatbin, name)
        elif source in ("auto", "fatbin"):
            if fatbin.is_file():
                try:
                    mod = cupy.RawModule(path=str(fatbin))
                    mod.get_function(first)  # cuModuleLoad happens here; fails on a too-old driver
                    return mod
                except Exception as err:  # CUDADriverError: no SASS/PTX usable on this GPU or driver
                    if source == "fatbin":
                        raise BackendUnavailable(f"cannot load the prebuilt kernels: {err}", path=fatbin) from err
                    log.warning("prebuilt %s does not load (%s); compiling %s.cu with NVRTC", fatbin, err, name)
            elif source == "fatbin":
                raise BackendUnavailable("prebuilt kernels missing: run `cmake -S . -B build && "
                                         "cmake --build build`", path=fatbin)
        mod = cupy.RawModule(code=kernel_source(name), options=NVRTC_OPTIONS)
        mod.get_function(first)  # compile now, so errors surface at load time
        return mod


def _is_stale(fatbin: Path, name: str) -> bool:
    built = fatbin.stat().st_mtime
    return any(p.stat().st_mtime > built for p in (KERNEL_DIR / f"{name}.cu", KERNEL_DIR / COMMON_HEADER))


# ----------------------------------------------------------------------------- launch helpers
def ptr(t: Tensor | None) -> np.uint64:
    return np.uint64(0 if t is None else t.data_ptr())


def check_cuda(name: str, t: Tensor, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, expected {device}")


def check(name: str, t: Tensor, device: torch.device, dtypes: Sequence[torch.dtype], shape: tuple[int, ...] | None,
           *, contiguous: bool = True) -> None:
    check_cuda(name, t, device)
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if shape is not None and tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def check_image(name: str, t: Tensor, device: torch.device, shape: tuple[int, ...]) -> int:
    """uint8 image whose rows are dense but may be padded (a decoder's pitch): returns the row pitch."""
    check(name, t, device, (torch.uint8,), shape, contiguous=False)
    inner = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(1, len(shape)))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64))
    if tuple(t.stride()[1:]) != inner or t.stride(0) < row_bytes:
        raise ValueError(f"{name} must have dense rows (strides (pitch >= {row_bytes}, *{inner})), "
                         f"got strides {tuple(t.stride())}")
    return int(t.stride(0))


def vec4_ok(row_len: int, *tensors: Tensor | None) -> bool:
    return row_len % 4 == 0 and all(t is None or t.data_ptr() % 16 == 0 for t in tensors)


def grid_1d(n: int) -> tuple[int, int, int]:
    return (max(1, min(math.ceil(n / BLOCK_1D), _MAX_GRID_1D)), 1, 1)


class KernelFamily:
    """Loads one family's module on one device; launches on torch's current stream."""

    family = ""

    def __init__(self, device: torch.device | str | int = "cuda", *, source: Source = "auto") -> None:
        self._cupy = _cupy()
        dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        if dev.type != "cuda":
            raise BackendUnavailable(f"CuPy kernels need a CUDA device, got {dev}")
        if not torch.cuda.is_available():
            raise BackendUnavailable("CUDA is not available to torch")
        self.device = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        self._module = load_module(self.family, self.device.index, source)
        with self._cupy.cuda.Device(self.device.index):  # RawKernels load per current device
            self._functions = {n: self._module.get_function(n) for n in KERNEL_NAMES[self.family]}

    def _launch(self, kernel: str, grid: tuple[int, int, int], block: tuple[int, int, int], args: tuple) -> None:
        cp = self._cupy
        ts = torch.cuda.current_stream(self.device)
        # Stream.from_external tags the stream with CuPy's *current* device, and entering a stream of
        # another device raises: wrap it only once self.device is current (not e.g. a worker
        # thread's default device 0).
        with cp.cuda.Device(self.device.index):
            stream = None
            from_external = getattr(cp.cuda.Stream, "from_external", None)  # CuPy >= 14
            if from_external is not None and hasattr(ts, "__cuda_stream__"):
                try:
                    stream = from_external(ts)
                except TypeError:
                    stream = None
            if stream is None:
                stream = cp.cuda.ExternalStream(ts.cuda_stream, self.device.index)
            with stream:
                self._functions[kernel](grid, block, args)
