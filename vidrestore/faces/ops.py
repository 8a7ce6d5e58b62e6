"""Where the image work of a stage runs: one small protocol, a CPU implementation here and a GPU
one in :mod:`vidrestore.faces.gpu_ops`. The pipeline only talks to ``ImageOps``; it never checks
which device a frame lives on.

Crops are opaque to the pipeline: whatever ``warp`` returns is handed back to ``to_input`` and
``paste`` (CPU: (K,S,S,3) uint8 arrays; GPU: (K,3,S,S) float tensors already normalised).
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ..config import PasteConfig
from .align import Interpolation, crops_to_tensor, tensor_to_crops, warp_crops
from .paste import paste_faces


class ImageOps(Protocol):
    device: str

    def upload(self, frame_rgb: Any) -> Any:
        """A decoded (H,W,3) uint8 frame (numpy, or already a device tensor) -> this ops' frame type."""

    def warp(self, frame_rgb: Any, matrices: np.ndarray, *, crop_size: int) -> Any:
        """Aligned crops of one frame, one per (2,3) frame->crop matrix in (K,2,3)."""

    def to_input(self, crops: Any) -> torch.Tensor:
        """Crops -> (K,3,S,S) float32 in [-1,1] on ``device`` (what a RestoreBackend takes)."""

    def from_output(self, restored: torch.Tensor) -> Any:
        """Backend output (K,3,S,S), not clamped -> restored crops in this ops' crop format."""

    def paste(self, frame_rgb: Any, restored: Any, matrices: np.ndarray, *, config: PasteConfig,
              originals: Any | None, masks: Any | None = None) -> Any:
        """A new frame with the restored crops blended in (only inside each crop's box), each with
        its (S, S) mask from ``masks`` (K, S, S; numpy or tensor) or the configuration's static mask."""

    def to_host(self, frame_rgb: Any) -> np.ndarray:
        """(H,W,3) uint8 numpy for the encoder."""


class CpuImageOps:
    """OpenCV/numpy image work on host memory.

    ``paste_inplace``: blend into the decoded frame itself instead of a copy — only for callers that
    own their frames (the video pipeline does; :class:`~vidrestore.pipeline.Restorer` must not write
    into its caller's arrays).
    """

    device = "cpu"

    def __init__(self, *, paste_inplace: bool = False, interpolation: Interpolation = "lanczos") -> None:
        self.paste_inplace = paste_inplace
        self.interpolation = interpolation

    def upload(self, frame_rgb: np.ndarray) -> np.ndarray:
        return frame_rgb

    def warp(self, frame_rgb: np.ndarray, matrices: np.ndarray, *, crop_size: int) -> np.ndarray:
        return warp_crops(frame_rgb, matrices, crop_size=crop_size, interpolation=self.interpolation)

    def to_input(self, crops: np.ndarray) -> torch.Tensor:
        return crops_to_tensor(crops)

    def from_output(self, restored: torch.Tensor) -> np.ndarray:
        return tensor_to_crops(restored)

    def paste(self, frame_rgb: np.ndarray, restored: np.ndarray, matrices: np.ndarray, *,
              config: PasteConfig, originals: np.ndarray | None, masks: Any | None = None) -> np.ndarray:
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().float().cpu().numpy()
        return paste_faces(frame_rgb, restored, matrices, config=config, originals=originals,
                           masks=masks, inplace=self.paste_inplace, interpolation=self.interpolation)

    def to_host(self, frame_rgb: np.ndarray) -> np.ndarray:
        return frame_rgb
