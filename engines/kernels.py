"""CuPy wrappers of the CUDA kernels in engines/kernels/*.cu (torch CUDA tensors in and out).

One class per kernel family (:class:`ModConvKernels`, :class:`SFTKernels`, :class:`WarpKernels`);
their methods have the signatures of the torch references in :mod:`engines.kernels_reference`.
Modules load with :func:`load_module`: the prebuilt fatbin engines/kernels/fatbin/<name>.fatbin
(CMakeLists.txt; SASS for sm_80/86/89/90 + compute_90 PTX) when it loads on this driver and GPU,
else the .cu source compiled by NVRTC at first use; cached per (family, device, source) per process.

Tensors are passed to kernels as raw device pointers of validated, contiguous torch tensors (zero
copy, no DLPack round trip) and every launch runs on torch's current CUDA stream of the tensor's
device, so it orders with surrounding torch work. CuPy is imported lazily. No autograd: inference only.

    ops = ModConvKernels("cuda")                      # or kernels_reference for the torch version
    xm = ops.modulate_input(x, s)                     # x * s[b, i]
    y = F.conv2d(xm, weight[0], padding=1)            # the shared convolution (cuDNN)
    ops.modconv_epilogue(y, ops.style_demod(s, wsq), bias, noise=noise, noise_strength=strength)

GPU check: `cmake -S . -B build && cmake --build build -j` (optional), then
`VIDRESTORE_REQUIRE_CUDA=1 python -m pytest tests/engines/test_kernels.py -q`, and
`engines.kernels_bench.benchmark_kernels("cuda")` for timings.
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

from engines import kernels_reference as ref
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
_BLOCK_1D = 256
_MAX_GRID_1D = 65535
_SUFFIX = MappingProxyType({torch.float32: "f32", torch.float16: "f16"})


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
def _ptr(t: Tensor | None) -> np.uint64:
    return np.uint64(0 if t is None else t.data_ptr())


def _check_cuda(name: str, t: Tensor, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, expected {device}")


def _check(name: str, t: Tensor, device: torch.device, dtypes: Sequence[torch.dtype], shape: tuple[int, ...] | None,
           *, contiguous: bool = True) -> None:
    _check_cuda(name, t, device)
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if shape is not None and tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _check_image(name: str, t: Tensor, device: torch.device, shape: tuple[int, ...]) -> int:
    """uint8 image whose rows are dense but may be padded (a decoder's pitch): returns the row pitch."""
    _check(name, t, device, (torch.uint8,), shape, contiguous=False)
    inner = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(1, len(shape)))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64))
    if tuple(t.stride()[1:]) != inner or t.stride(0) < row_bytes:
        raise ValueError(f"{name} must have dense rows (strides (pitch >= {row_bytes}, *{inner})), "
                         f"got strides {tuple(t.stride())}")
    return int(t.stride(0))


def _vec4_ok(row_len: int, *tensors: Tensor | None) -> bool:
    return row_len % 4 == 0 and all(t is None or t.data_ptr() % 16 == 0 for t in tensors)


def _grid_1d(n: int) -> tuple[int, int, int]:
    return (max(1, min(math.ceil(n / _BLOCK_1D), _MAX_GRID_1D)), 1, 1)


class _Family:
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


# ----------------------------------------------------------------------------- families
class ModConvKernels(_Family):
    """style_demod, modulate_input, modconv_epilogue (see modconv.cu and kernels_reference)."""

    family = "modconv"

    def style_demod(self, styles: Tensor, wsq: Tensor, *, eps: float = 1e-8) -> Tensor:
        _check("styles", styles, self.device, (torch.float32, torch.float16), None)
        if styles.dim() != 2:
            raise ValueError(f"styles must be (B, Cin), got {tuple(styles.shape)}")
        b, cin = styles.shape
        _check("wsq", wsq, self.device, (torch.float32,), None)
        if wsq.dim() != 2 or wsq.shape[1] != cin:
            raise ValueError(f"wsq must be (Cout, {cin}) float32, got {tuple(wsq.shape)}")
        cout = wsq.shape[0]
        demod = torch.empty(b, cout, dtype=torch.float32, device=self.device)
        if b and cout:
            self._launch(f"style_demod_{_SUFFIX[styles.dtype]}", (math.ceil(cout / 8), b, 1), (256, 1, 1),
                         (_ptr(styles), _ptr(wsq), _ptr(demod), np.int32(b), np.int32(cin), np.int32(cout),
                          np.float32(eps)))
        return demod

    def modulate_input(self, x: Tensor, styles: Tensor, *, out: Tensor | None = None) -> Tensor:
        _check("x", x, self.device, (torch.float32, torch.float16), None)
        if x.dim() != 4:
            raise ValueError(f"x must be (B, Cin, H, W), got {tuple(x.shape)}")
        b, cin, h, w = x.shape
        _check("styles", styles, self.device, (torch.float32, torch.float16), (b, cin), contiguous=False)
        s = styles.to(torch.float32).contiguous()
        if out is None:
            out = torch.empty_like(x)
        _check("out", out, self.device, (x.dtype,), tuple(x.shape))
        n, hw = x.numel(), h * w
        if n:
            vec = _vec4_ok(hw, x, out)
            name = f"modulate_input_{'vec4_' if vec else ''}{_SUFFIX[x.dtype]}"
            self._launch(name, _grid_1d(n // 4 if vec else n), (_BLOCK_1D, 1, 1),
                         (_ptr(x), _ptr(s), _ptr(out), np.int64(hw), np.int64(n)))
        return out

    def modconv_epilogue(self, y: Tensor, demod: Tensor | None, bias: Tensor | None, *,
                         noise: Tensor | None = None, noise_strength: float = 0.0, gain: float = ref.SQRT2,
                         negative_slope: float = 0.2, activate: bool = True) -> Tensor:
        _check("y", y, self.device, (torch.float32, torch.float16), None)
        if y.dim() != 4:
            raise ValueError(f"y must be (B, C, H, W), got {tuple(y.shape)}")
        b, c, h, w = y.shape
        if demod is not None:
            _check("demod", demod, self.device, (torch.float32,), (b, c))
        if bias is not None:
            _check_cuda("bias", bias, self.device)
            if bias.numel() != c:
                raise ValueError(f"bias must hold {c} values, got shape {tuple(bias.shape)}")
            bias = bias.reshape(c).to(torch.float32).contiguous()
        if noise is not None:
            _check_cuda("noise", noise, self.device)
            if noise.numel() != h * w or noise.shape[-2:] != (h, w):
                raise ValueError(f"noise must be (H, W) or (1, 1, H, W) = {h}x{w}, got {tuple(noise.shape)}")
            noise = noise.reshape(h, w).to(torch.float32).contiguous()
        n, hw = y.numel(), h * w
        if n:
            vec = _vec4_ok(hw, y)
            name = f"modconv_epilogue_{'vec4_' if vec else ''}{_SUFFIX[y.dtype]}"
            self._launch(name, _grid_1d(n // 4 if vec else n), (_BLOCK_1D, 1, 1),
                         (_ptr(y), _ptr(demod), _ptr(bias), _ptr(noise), np.float32(noise_strength),
                          np.float32(gain), np.float32(negative_slope), np.int32(bool(activate)), np.int32(c),
                          np.int64(hw), np.int64(n)))
        return y


class SFTKernels(_Family):
    """sft_half: in-place CS-SFT on the second half of the channels (see sft.cu)."""

    family = "sft"

    def sft_half(self, x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        _check("x", x, self.device, (torch.float32, torch.float16), None)
        if x.dim() != 4 or x.shape[1] % 2:
            raise ValueError(f"x must be (B, C, H, W) with C even, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        half = (b, c // 2, h, w)
        _check("scale", scale, self.device, (x.dtype,), half)
        _check("shift", shift, self.device, (x.dtype,), half)
        half_len = (c // 2) * h * w
        n = b * half_len
        if n:
            vec = _vec4_ok(half_len, x, scale, shift)
            name = f"sft_half_{'vec4_' if vec else ''}{_SUFFIX[x.dtype]}"
            self._launch(name, _grid_1d(n // 4 if vec else n), (_BLOCK_1D, 1, 1),
                         (_ptr(x), _ptr(scale), _ptr(shift), np.int64(half_len), np.int64(n)))
        return x


_MATRIX = MappingProxyType({"bt601": 0, "bt709": 1})
_BORDER = MappingProxyType({"constant": 0, "replicate": 1})


class WarpKernels(_Family):
    """Affine crop warps (RGB / NV12), paste-back, NV12 <-> RGB (see warp.cu)."""

    family = "warp"

    def _mats(self, crop_to_frame: np.ndarray | Tensor) -> Tensor:
        m = crop_to_frame.detach() if isinstance(crop_to_frame, Tensor) else torch.as_tensor(np.asarray(crop_to_frame))
        if m.shape[-2:] != (2, 3):
            raise ValueError(f"affine matrices must be (K, 2, 3), got {tuple(m.shape)}")
        return m.reshape(-1, 6).to(device=self.device, dtype=torch.float32).contiguous()

    def _crops_out(self, out: Tensor | None, k: int, size: int, dtype: torch.dtype) -> Tensor:
        if dtype not in _SUFFIX:
            raise TypeError(f"crop dtype must be float32 or float16, got {dtype}")
        if out is None:
            return torch.empty(k, 3, size, size, dtype=dtype, device=self.device)
        _check("out", out, self.device, (dtype,), (k, 3, size, size))
        return out

    def _warp(self, name: str, head: tuple, mats: Tensor, out: Tensor, size: int, border: str,
              border_value: Sequence[float]) -> Tensor:
        if border not in _BORDER:
            raise ValueError(f"border must be 'constant' or 'replicate', got {border!r}")
        k = mats.shape[0]
        bv = [np.float32(v) for v in border_value]
        if len(bv) != 3:
            raise ValueError(f"border_value must hold 3 values, got {border_value!r}")
        if k and size:
            self._launch(f"{name}_{_SUFFIX[out.dtype]}", (math.ceil(size / 32), math.ceil(size / 8), k), (32, 8, 1),
                         head + (_ptr(mats), _ptr(out), np.int32(k), np.int32(size), np.int32(_BORDER[border]),
                                 *bv))
        return out

    def warp_crops_rgb(self, frame: Tensor, crop_to_frame: np.ndarray | Tensor, *, size: int = 512,
                       dtype: torch.dtype = torch.float32, border: ref.Border = "constant",
                       border_value: Sequence[float] = (0.0, 0.0, 0.0), out: Tensor | None = None) -> Tensor:
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        pitch = _check_image("frame", frame, self.device, (h, w, 3))
        mats = self._mats(crop_to_frame)
        out = self._crops_out(out, mats.shape[0], size, dtype)
        head = (_ptr(frame), np.int64(pitch), np.int32(h), np.int32(w))
        return self._warp("warp_rgb", head, mats, out, size, border, border_value)

    def _nv12_planes(self, y: Tensor, uv: Tensor) -> tuple[int, int, int, int]:
        if y.dim() != 2 or y.shape[0] % 2 or y.shape[1] % 2:
            raise ValueError(f"NV12 y plane must be (H, W) with H, W even, got {tuple(y.shape)}")
        h, w = y.shape
        y_pitch = _check_image("y", y, self.device, (h, w))
        if uv.dim() == 2:
            uv_pitch = _check_image("uv", uv, self.device, (h // 2, w))
        else:
            uv_pitch = _check_image("uv", uv, self.device, (h // 2, w // 2, 2))
        return h, w, y_pitch, uv_pitch

    def warp_crops_nv12(self, y: Tensor, uv: Tensor, crop_to_frame: np.ndarray | Tensor, *,
                        matrix: ref.ColorMatrix = "bt709", size: int = 512, dtype: torch.dtype = torch.float32,
                        border: ref.Border = "constant", border_value: Sequence[float] = (0.0, 0.0, 0.0),
                        out: Tensor | None = None) -> Tensor:
        h, w, y_pitch, uv_pitch = self._nv12_planes(y, uv)
        mats = self._mats(crop_to_frame)
        out = self._crops_out(out, mats.shape[0], size, dtype)
        head = (_ptr(y), np.int64(y_pitch), _ptr(uv), np.int64(uv_pitch), np.int32(h), np.int32(w),
                np.int32(_MATRIX[matrix]))
        return self._warp("warp_nv12", head, mats, out, size, border, border_value)

    def paste_crops(self, frame: Tensor, crops: Tensor, frame_to_crop: np.ndarray | Tensor, mask: Tensor, *,
                    strength: float = 1.0, boxes: Sequence[tuple[int, int, int, int]] | None = None) -> Tensor:
        """One launch per crop, in order (later crops blend over earlier ones). Matrices are read on
        the host (pass numpy or CPU tensors to avoid a device sync)."""
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        pitch = _check_image("frame", frame, self.device, (h, w, 3))
        _check("crops", crops, self.device, (torch.float32, torch.float16), None)
        if crops.dim() != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3]:
            raise ValueError(f"crops must be (K, 3, S, S), got {tuple(crops.shape)}")
        k, s = crops.shape[0], crops.shape[-1]
        _check("mask", mask, self.device, (torch.float32,), (s, s))
        mats = np.asarray(frame_to_crop.detach().cpu() if isinstance(frame_to_crop, Tensor) else frame_to_crop,
                          dtype=np.float64).reshape(-1, 2, 3)
        if mats.shape[0] != k:
            raise ValueError(f"need {k} frame_to_crop matrices, got {mats.shape[0]}")
        if boxes is not None and len(boxes) != k:
            raise ValueError(f"need {k} boxes, got {len(boxes)}")
        name = f"paste_{_SUFFIX[crops.dtype]}"
        for i in range(k):
            x0, y0, x1, y1 = (int(v) for v in (boxes[i] if boxes is not None else ref.paste_box(mats[i], s, h, w)))
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 <= x0 or y1 <= y0:
                continue
            a = [np.float32(v) for v in mats[i].reshape(6)]
            self._launch(name, (math.ceil((x1 - x0) / 16), math.ceil((y1 - y0) / 16), 1), (16, 16, 1),
                         (_ptr(frame), np.int64(pitch), np.int32(h), np.int32(w), _ptr(crops[i]), np.int32(s),
                          _ptr(mask), *a, np.float32(strength), np.int32(x0), np.int32(y0), np.int32(x1),
                          np.int32(y1)))
        return frame

    def nv12_to_rgb(self, y: Tensor, uv: Tensor, *, matrix: ref.ColorMatrix = "bt709",
                    out: Tensor | None = None) -> Tensor:
        h, w, y_pitch, uv_pitch = self._nv12_planes(y, uv)
        if out is None:
            out = torch.empty(h, w, 3, dtype=torch.uint8, device=self.device)
        rgb_pitch = _check_image("out", out, self.device, (h, w, 3))
        self._launch("nv12_to_rgb", (math.ceil(w / 32), math.ceil(h / 8), 1), (32, 8, 1),
                     (_ptr(y), np.int64(y_pitch), _ptr(uv), np.int64(uv_pitch), _ptr(out), np.int64(rgb_pitch),
                      np.int32(h), np.int32(w), np.int32(_MATRIX[matrix])))
        return out

    def rgb_to_nv12(self, rgb: Tensor, *, matrix: ref.ColorMatrix = "bt709", y_out: Tensor | None = None,
                    uv_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if rgb.dim() != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
            raise ValueError(f"rgb must be (H, W, 3) uint8 with H, W even, got {tuple(rgb.shape)}")
        h, w = rgb.shape[:2]
        rgb_pitch = _check_image("rgb", rgb, self.device, (h, w, 3))
        if y_out is None:
            y_out = torch.empty(h, w, dtype=torch.uint8, device=self.device)
        if uv_out is None:
            uv_out = torch.empty(h // 2, w // 2, 2, dtype=torch.uint8, device=self.device)
        y_pitch, uv_pitch = self._nv12_planes(y_out, uv_out)[2:]
        self._launch("rgb_to_nv12", (math.ceil(w / 2 / 32), math.ceil(h / 2 / 8), 1), (32, 8, 1),
                     (_ptr(rgb), np.int64(rgb_pitch), _ptr(y_out), np.int64(y_pitch), _ptr(uv_out),
                      np.int64(uv_pitch), np.int32(h), np.int32(w), np.int32(_MATRIX[matrix])))
        return y_out, uv_out
