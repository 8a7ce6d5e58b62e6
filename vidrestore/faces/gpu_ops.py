"""Image work on torch tensors (CUDA, or CPU for tests): the GPU twin of :class:`CpuImageOps`.

Frames are (H, W, 3) uint8 tensors on ``device``; crops are (K, 3, S, S) float tensors already in
[-1, 1] (what the restore backend takes), so nothing goes back to the host between decode and
encode. The arithmetic is that of :mod:`engines.kernels_reference`: bilinear warps with OpenCV's
pixel-centre convention, the crop border filled with GFP-GAN's grey (135, 133, 132) as in
:mod:`vidrestore.faces.align`, paste-back into each crop's box only with the masks of
:mod:`vidrestore.faces.masks` (static ``box``/``face`` masks built once on the host and uploaded; per-crop
``parse`` masks arrive as tensors), the Lab colour match of :func:`vidrestore.faces.color.match_lab_torch`
and the same strength rule as :func:`paste_faces`.

Kernels: ``"cupy"`` runs engines/kernels/warp.cu through :class:`engines.kernels.WarpKernels`;
``"torch"`` the plain-torch references (any device); ``"auto"`` the CuPy kernels on CUDA when CuPy
and a compiler/fatbin work, else the references. ``engines`` is imported lazily (it depends on
vidrestore, not the other way round).

    ops = GpuImageOps("cuda")
    frame = ops.upload(rgb_numpy)                      # pinned host copy -> device, non-blocking
    crops = ops.warp(frame, matrices, crop_size=512)   # (K, 3, 512, 512) float32 in [-1, 1]
    out = ops.paste(frame, restored, matrices, config=PasteConfig(), originals=crops)
    rgb = ops.to_host(out)                             # synchronises
"""
from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch

from ..config import PasteConfig
from ..errors import BackendUnavailable
from .align import BORDER_VALUE, CV_INTERPOLATION, Interpolation
from .color import match_lab_torch
from .masks import feather_mask, static_mask

log = logging.getLogger(__name__)

KernelChoice = Literal["auto", "cupy", "torch"]
# Higher-order warps ("cubic", "lanczos", the default) run the plain-torch reference on any device: the
# CUDA kernels in engines/kernels/warp.cu are bilinear only ("linear" uses them).


def warp_kernels(device: torch.device, kernels: KernelChoice) -> tuple[Any, str]:
    """(object with warp_crops_rgb/paste_crops, "cupy" | "torch") for ``device`` and the choice."""
    if kernels not in ("auto", "cupy", "torch"):
        raise ValueError(f"kernels must be 'auto', 'cupy' or 'torch', got {kernels!r}")
    from engines import kernels_reference as ref

    if kernels == "torch" or (kernels == "auto" and device.type != "cuda"):
        return ref, "torch"
    if device.type != "cuda":
        raise BackendUnavailable(f"--kernels cupy needs a CUDA device, got {device}")
    try:
        from engines.kernels import WarpKernels
        return WarpKernels(device), "cupy"
    except BackendUnavailable:
        if kernels == "cupy":
            raise
        log.info("CuPy warp kernels unavailable; using the torch reference implementation")
    except Exception as err:  # noqa: BLE001 - NVRTC/driver failures: fall back under "auto"
        if kernels == "cupy":
            raise BackendUnavailable(f"cannot load the CuPy warp kernels: {err}") from err
        log.warning("CuPy warp kernels failed to load (%s); using the torch reference", err)
    return ref, "torch"


class GpuImageOps:
    """ImageOps on torch tensors. ``dtype``: the crops' float type (float32 or float16)."""

    def __init__(self, device: str | torch.device = "cuda", *, kernels: KernelChoice = "auto",
                 dtype: torch.dtype = torch.float32, interpolation: Interpolation = "lanczos") -> None:
        dev = torch.device(device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailable(f"GPU image ops need CUDA, but torch sees no GPU (device {dev})")
            if dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
        if dtype not in (torch.float32, torch.float16):
            raise ValueError(f"crop dtype must be float32 or float16, got {dtype}")
        self._dev = dev
        self.device = "cpu" if dev.type == "cpu" else str(dev)
        self.dtype = dtype
        self._k, self.kernels = warp_kernels(dev, kernels)
        self._masks: dict[tuple, torch.Tensor] = {}
        self._border = tuple(float(v) for v in BORDER_VALUE)
        if interpolation not in CV_INTERPOLATION:
            raise ValueError(f"interpolation must be 'linear', 'cubic' or 'lanczos', got {interpolation!r}")
        self.interpolation = interpolation

    def __repr__(self) -> str:
        return f"GpuImageOps(device={self.device!r}, kernels={self.kernels!r}, dtype={self.dtype})"

    # -- transfers -------------------------------------------------------------------------------
    def upload(self, frame_rgb: Any) -> torch.Tensor:
        """(H, W, 3) uint8 numpy or tensor -> contiguous uint8 tensor on ``device`` (non-blocking
        from pinned memory on CUDA)."""
        if isinstance(frame_rgb, torch.Tensor):
            t = frame_rgb
        else:
            a = np.asarray(frame_rgb)
            if a.dtype != np.uint8:
                raise ValueError(f"frames must be uint8, got {a.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(a))
            if self._dev.type == "cuda":
                t = t.pin_memory()
        if t.dim() != 3 or t.shape[2] != 3 or t.dtype != torch.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {tuple(t.shape)} {t.dtype}")
        return t.to(self._dev, non_blocking=True).contiguous()

    def to_host(self, frame_rgb: Any) -> np.ndarray:
        if isinstance(frame_rgb, torch.Tensor):
            return np.ascontiguousarray(frame_rgb.cpu().numpy())
        return np.ascontiguousarray(frame_rgb)

    # -- crops -------------------------------------------------------------------------------------
    def warp(self, frame_rgb: Any, matrices: np.ndarray, *, crop_size: int) -> torch.Tensor:
        """(K, 3, S, S) crops in [-1, 1] for (K, 2, 3) frame->crop matrices; grey outside the frame."""
        from engines.kernels_reference import invert_affine

        frame = self.upload(frame_rgb)
        mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
        if len(mats) == 0:
            return torch.empty(0, 3, crop_size, crop_size, dtype=self.dtype, device=self._dev)
        inv = invert_affine(mats.astype(np.float32))   # the CPU path warps with float32 matrices
        if self.interpolation != "linear":
            from engines import kernels_reference as ref
            return ref.warp_crops_rgb(frame, inv, size=crop_size, dtype=self.dtype, border="constant",
                                      border_value=self._border, interpolation=self.interpolation)
        return self._k.warp_crops_rgb(frame, inv, size=crop_size, dtype=self.dtype, border="constant",
                                      border_value=self._border)

    def to_input(self, crops: torch.Tensor) -> torch.Tensor:
        return crops.to(self._dev)

    def from_output(self, restored: torch.Tensor) -> torch.Tensor:
        return restored.to(self._dev)

    # -- paste-back ----------------------------------------------------------------------------------
    def mask(self, crop_size: int, feather: float) -> torch.Tensor:
        """The feather mask of :func:`feather_mask` as an (S, S) float32 tensor on ``device`` (cached)."""
        key = (int(crop_size), float(feather))
        m = self._masks.get(key)
        if m is None:
            m = torch.from_numpy(np.array(feather_mask(*key), dtype=np.float32)).to(self._dev)
            self._masks[key] = m
        return m

    def paste_mask(self, crop_size: int, config: PasteConfig) -> torch.Tensor:
        """The static ``box``/``face`` mask of :func:`static_mask` as an (S, S) float32 tensor (cached)."""
        key = (int(crop_size), config.mask, float(config.feather), float(config.mask_blur),
               float(config.mask_erode))
        m = self._masks.get(key)
        if m is None:
            m = torch.from_numpy(np.array(static_mask(int(crop_size), config), dtype=np.float32)).to(self._dev)
            self._masks[key] = m
        return m

    def paste(self, frame_rgb: Any, restored: torch.Tensor, matrices: np.ndarray, *,
              config: PasteConfig, originals: torch.Tensor | None,
              masks: torch.Tensor | None = None) -> torch.Tensor:
        """A new (H, W, 3) uint8 frame with the restored crops blended in, crop by crop, in order.

        With ``originals`` and strength < 1 the crop pasted is ``s * restored + (1 - s) * original``
        at full mask; without them the mask is scaled by the strength (as :func:`paste_faces`).
        """
        frame = self.upload(frame_rgb)
        fresh = not isinstance(frame_rgb, torch.Tensor) and self._dev.type == "cuda"  # upload copied it
        out = frame if fresh else frame.clone()
        mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
        if len(mats) != restored.shape[0]:
            raise ValueError(f"{restored.shape[0]} crops but {len(mats)} matrices")
        if config.strength == 0.0 or len(mats) == 0:
            return out
        crops = restored.to(self._dev)
        if crops.dtype not in (torch.float32, torch.float16):
            crops = crops.float()
        size = crops.shape[-1]
        if masks is None:
            mask = self.paste_mask(size, config)
        else:
            mask = torch.as_tensor(masks).to(self._dev, torch.float32)
            if tuple(mask.shape) != (len(mats), size, size):
                raise ValueError(f"masks must be ({len(mats)}, {size}, {size}), got {tuple(mask.shape)}")
        if config.color_match == "lab":
            if originals is None:
                raise ValueError("color_match needs the original crops (originals=)")
            crops = match_lab_torch(crops, originals.to(self._dev), mask)
        strength = float(config.strength)
        if originals is not None and strength < 1.0:
            crops = (crops.float().clamp(-1.0, 1.0) * strength
                     + originals.to(self._dev).float() * (1.0 - strength))
            strength = 1.0
        crops = crops.contiguous()
        if self.interpolation == "linear":
            paste_crops = self._k.paste_crops
        else:                                            # the CUDA kernels are bilinear only
            from engines import kernels_reference as ref

            def paste_crops(*args, **kw):
                return ref.paste_crops(*args, **kw, interpolation=self.interpolation)
        if mask.dim() == 2:
            return paste_crops(out, crops, mats, mask, strength=strength)
        for i in range(len(mats)):                       # one (S, S) mask per crop, pasted in order
            out = paste_crops(out, crops[i:i + 1], mats[i:i + 1], mask[i].contiguous(), strength=strength)
        return out
