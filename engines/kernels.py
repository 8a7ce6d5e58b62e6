"""CuPy wrappers of the CUDA kernels in engines/kernels/*.cu (torch CUDA tensors in and out).

One class per kernel family (:class:`ModConvKernels`, :class:`SFTKernels`, :class:`WarpKernels`);
their methods have the signatures of the torch references in :mod:`engines.kernels_reference`.
Modules load through :mod:`engines.kernel_loader` (prebuilt fatbin, else NVRTC at first use).

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

import math
from types import MappingProxyType
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from engines import kernels_reference as ref
from engines.kernel_loader import (BLOCK_1D, KERNEL_DIR, KERNEL_NAMES, NVRTC_OPTIONS, SUFFIX, KernelFamily, check,
                                   check_cuda, check_image, grid_1d, kernel_source, load_module, ptr, vec4_ok)

__all__ = ["ModConvKernels", "SFTKernels", "WarpKernels", "load_module", "kernel_source", "KERNEL_DIR",
           "KERNEL_NAMES", "NVRTC_OPTIONS"]


# ----------------------------------------------------------------------------- families
class ModConvKernels(KernelFamily):
    """style_demod, modulate_input, modconv_epilogue (see modconv.cu and kernels_reference)."""

    family = "modconv"

    def style_demod(self, styles: Tensor, wsq: Tensor, *, eps: float = 1e-8) -> Tensor:
        check("styles", styles, self.device, (torch.float32, torch.float16), None)
        if styles.dim() != 2:
            raise ValueError(f"styles must be (B, Cin), got {tuple(styles.shape)}")
        b, cin = styles.shape
        check("wsq", wsq, self.device, (torch.float32,), None)
        if wsq.dim() != 2 or wsq.shape[1] != cin:
            raise ValueError(f"wsq must be (Cout, {cin}) float32, got {tuple(wsq.shape)}")
        cout = wsq.shape[0]
        demod = torch.empty(b, cout, dtype=torch.float32, device=self.device)
        if b and cout:
            self._launch(f"style_demod_{SUFFIX[styles.dtype]}", (math.ceil(cout / 8), b, 1), (256, 1, 1),
                         (ptr(styles), ptr(wsq), ptr(demod), np.int32(b), np.int32(cin), np.int32(cout),
                          np.float32(eps)))
        return demod

    def modulate_input(self, x: Tensor, styles: Tensor, *, out: Tensor | None = None) -> Tensor:
        check("x", x, self.device, (torch.float32, torch.float16), None)
        if x.dim() != 4:
            raise ValueError(f"x must be (B, Cin, H, W), got {tuple(x.shape)}")
        b, cin, h, w = x.shape
        check("styles", styles, self.device, (torch.float32, torch.float16), (b, cin), contiguous=False)
        s = styles.to(torch.float32).contiguous()
        if out is None:
            out = torch.empty_like(x)
        check("out", out, self.device, (x.dtype,), tuple(x.shape))
        n, hw = x.numel(), h * w
        if n:
            vec = vec4_ok(hw, x, out)
            name = f"modulate_input_{'vec4_' if vec else ''}{SUFFIX[x.dtype]}"
            self._launch(name, grid_1d(n // 4 if vec else n), (BLOCK_1D, 1, 1),
                         (ptr(x), ptr(s), ptr(out), np.int64(hw), np.int64(n)))
        return out

    def modconv_epilogue(self, y: Tensor, demod: Tensor | None, bias: Tensor | None, *,
                         noise: Tensor | None = None, noise_strength: float = 0.0, gain: float = ref.SQRT2,
                         negative_slope: float = 0.2, activate: bool = True) -> Tensor:
        check("y", y, self.device, (torch.float32, torch.float16), None)
        if y.dim() != 4:
            raise ValueError(f"y must be (B, C, H, W), got {tuple(y.shape)}")
        b, c, h, w = y.shape
        if demod is not None:
            check("demod", demod, self.device, (torch.float32,), (b, c))
        if bias is not None:
            check_cuda("bias", bias, self.device)
            if bias.numel() != c:
                raise ValueError(f"bias must hold {c} values, got shape {tuple(bias.shape)}")
            bias = bias.reshape(c).to(torch.float32).contiguous()
        if noise is not None:
            check_cuda("noise", noise, self.device)
            if noise.numel() != h * w or noise.shape[-2:] != (h, w):
                raise ValueError(f"noise must be (H, W) or (1, 1, H, W) = {h}x{w}, got {tuple(noise.shape)}")
            noise = noise.reshape(h, w).to(torch.float32).contiguous()
        n, hw = y.numel(), h * w
        if n:
            vec = vec4_ok(hw, y)
            name = f"modconv_epilogue_{'vec4_' if vec else ''}{SUFFIX[y.dtype]}"
            self._launch(name, grid_1d(n // 4 if vec else n), (BLOCK_1D, 1, 1),
                         (ptr(y), ptr(demod), ptr(bias), ptr(noise), np.float32(noise_strength),
                          np.float32(gain), np.float32(negative_slope), np.int32(bool(activate)), np.int32(c),
                          np.int64(hw), np.int64(n)))
        return y


class SFTKernels(KernelFamily):
    """sft_half: in-place CS-SFT on the second half of the channels (see sft.cu)."""

    family = "sft"

    def sft_half(self, x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        check("x", x, self.device, (torch.float32, torch.float16), None)
        if x.dim() != 4 or x.shape[1] % 2:
            raise ValueError(f"x must be (B, C, H, W) with C even, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        half = (b, c // 2, h, w)
        check("scale", scale, self.device, (x.dtype,), half)
        check("shift", shift, self.device, (x.dtype,), half)
        half_len = (c // 2) * h * w
        n = b * half_len
        if n:
            vec = vec4_ok(half_len, x, scale, shift)
            name = f"sft_half_{'vec4_' if vec else ''}{SUFFIX[x.dtype]}"
            self._launch(name, grid_1d(n // 4 if vec else n), (BLOCK_1D, 1, 1),
                         (ptr(x), ptr(scale), ptr(shift), np.int64(half_len), np.int64(n)))
        return x


_MATRIX = MappingProxyType({"bt601": 0, "bt709": 1})
_BORDER = MappingProxyType({"constant": 0, "replicate": 1})


class WarpKernels(KernelFamily):
    """Affine crop warps (RGB / NV12), paste-back, NV12 <-> RGB (see warp.cu)."""

    family = "warp"

    def _mats(self, crop_to_frame: np.ndarray | Tensor) -> Tensor:
        m = crop_to_frame.detach() if isinstance(crop_to_frame, Tensor) else torch.as_tensor(np.asarray(crop_to_frame))
        if m.shape[-2:] != (2, 3):
            raise ValueError(f"affine matrices must be (K, 2, 3), got {tuple(m.shape)}")
        return m.reshape(-1, 6).to(device=self.device, dtype=torch.float32).contiguous()

    def _crops_out(self, out: Tensor | None, k: int, size: int, dtype: torch.dtype) -> Tensor:
        if dtype not in SUFFIX:
            raise TypeError(f"crop dtype must be float32 or float16, got {dtype}")
        if out is None:
            return torch.empty(k, 3, size, size, dtype=dtype, device=self.device)
        check("out", out, self.device, (dtype,), (k, 3, size, size))
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
            self._launch(f"{name}_{SUFFIX[out.dtype]}", (math.ceil(size / 32), math.ceil(size / 8), k), (32, 8, 1),
                         head + (ptr(mats), ptr(out), np.int32(k), np.int32(size), np.int32(_BORDER[border]),
                                 *bv))
        return out

    def warp_crops_rgb(self, frame: Tensor, crop_to_frame: np.ndarray | Tensor, *, size: int = 512,
                       dtype: torch.dtype = torch.float32, border: ref.Border = "constant",
                       border_value: Sequence[float] = (0.0, 0.0, 0.0), out: Tensor | None = None) -> Tensor:
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        pitch = check_image("frame", frame, self.device, (h, w, 3))
        mats = self._mats(crop_to_frame)
        out = self._crops_out(out, mats.shape[0], size, dtype)
        head = (ptr(frame), np.int64(pitch), np.int32(h), np.int32(w))
        return self._warp("warp_rgb", head, mats, out, size, border, border_value)

    def _nv12_planes(self, y: Tensor, uv: Tensor) -> tuple[int, int, int, int]:
        if y.dim() != 2 or y.shape[0] % 2 or y.shape[1] % 2:
            raise ValueError(f"NV12 y plane must be (H, W) with H, W even, got {tuple(y.shape)}")
        h, w = y.shape
        y_pitch = check_image("y", y, self.device, (h, w))
        if uv.dim() == 2:
            uv_pitch = check_image("uv", uv, self.device, (h // 2, w))
        else:
            uv_pitch = check_image("uv", uv, self.device, (h // 2, w // 2, 2))
        return h, w, y_pitch, uv_pitch

    def warp_crops_nv12(self, y: Tensor, uv: Tensor, crop_to_frame: np.ndarray | Tensor, *,
                        matrix: ref.ColorMatrix = "bt709", size: int = 512, dtype: torch.dtype = torch.float32,
                        border: ref.Border = "constant", border_value: Sequence[float] = (0.0, 0.0, 0.0),
                        out: Tensor | None = None) -> Tensor:
        h, w, y_pitch, uv_pitch = self._nv12_planes(y, uv)
        mats = self._mats(crop_to_frame)
        out = self._crops_out(out, mats.shape[0], size, dtype)
        head = (ptr(y), np.int64(y_pitch), ptr(uv), np.int64(uv_pitch), np.int32(h), np.int32(w),
                np.int32(_MATRIX[matrix]))
        return self._warp("warp_nv12", head, mats, out, size, border, border_value)

    def paste_crops(self, frame: Tensor, crops: Tensor, frame_to_crop: np.ndarray | Tensor, mask: Tensor, *,
                    strength: float = 1.0, boxes: Sequence[tuple[int, int, int, int]] | None = None) -> Tensor:
        """One launch per crop, in order (later crops blend over earlier ones). Matrices are read on
        the host (pass numpy or CPU tensors to avoid a device sync)."""
        if frame.dim() != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        pitch = check_image("frame", frame, self.device, (h, w, 3))
        check("crops", crops, self.device, (torch.float32, torch.float16), None)
        if crops.dim() != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3]:
            raise ValueError(f"crops must be (K, 3, S, S), got {tuple(crops.shape)}")
        k, s = crops.shape[0], crops.shape[-1]
        check("mask", mask, self.device, (torch.float32,), (s, s))
        mats = np.asarray(frame_to_crop.detach().cpu() if isinstance(frame_to_crop, Tensor) else frame_to_crop,
                          dtype=np.float64).reshape(-1, 2, 3)
        if mats.shape[0] != k:
            raise ValueError(f"need {k} frame_to_crop matrices, got {mats.shape[0]}")
        if boxes is not None and len(boxes) != k:
            raise ValueError(f"need {k} boxes, got {len(boxes)}")
        name = f"paste_{SUFFIX[crops.dtype]}"
        for i in range(k):
            x0, y0, x1, y1 = (int(v) for v in (boxes[i] if boxes is not None else ref.paste_box(mats[i], s, h, w)))
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 <= x0 or y1 <= y0:
                continue
            a = [np.float32(v) for v in mats[i].reshape(6)]
            self._launch(name, (math.ceil((x1 - x0) / 16), math.ceil((y1 - y0) / 16), 1), (16, 16, 1),
                         (ptr(frame), np.int64(pitch), np.int32(h), np.int32(w), ptr(crops[i]), np.int32(s),
                          ptr(mask), *a, np.float32(strength), np.int32(x0), np.int32(y0), np.int32(x1),
                          np.int32(y1)))
        return frame

    def nv12_to_rgb(self, y: Tensor, uv: Tensor, *, matrix: ref.ColorMatrix = "bt709",
                    out: Tensor | None = None) -> Tensor:
        h, w, y_pitch, uv_pitch = self._nv12_planes(y, uv)
        if out is None:
            out = torch.empty(h, w, 3, dtype=torch.uint8, device=self.device)
        rgb_pitch = check_image("out", out, self.device, (h, w, 3))
        self._launch("nv12_to_rgb", (math.ceil(w / 32), math.ceil(h / 8), 1), (32, 8, 1),
                     (ptr(y), np.int64(y_pitch), ptr(uv), np.int64(uv_pitch), ptr(out), np.int64(rgb_pitch),
                      np.int32(h), np.int32(w), np.int32(_MATRIX[matrix])))
        return out

    def rgb_to_nv12(self, rgb: Tensor, *, matrix: ref.ColorMatrix = "bt709", y_out: Tensor | None = None,
                    uv_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if rgb.dim() != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
            raise ValueError(f"rgb must be (H, W, 3) uint8 with H, W even, got {tuple(rgb.shape)}")
        h, w = rgb.shape[:2]
        rgb_pitch = check_image("rgb", rgb, self.device, (h, w, 3))
        if y_out is None:
            y_out = torch.empty(h, w, dtype=torch.uint8, device=self.device)
        if uv_out is None:
            uv_out = torch.empty(h // 2, w // 2, 2, dtype=torch.uint8, device=self.device)
        y_pitch, uv_pitch = self._nv12_planes(y_out, uv_out)[2:]
        self._launch("rgb_to_nv12", (math.ceil(w / 2 / 32), math.ceil(h / 2 / 8), 1), (32, 8, 1),
                     (ptr(rgb), np.int64(rgb_pitch), ptr(y_out), np.int64(y_pitch), ptr(uv_out),
                      np.int64(uv_pitch), np.int32(h), np.int32(w), np.int32(_MATRIX[matrix])))
        return y_out, uv_out
