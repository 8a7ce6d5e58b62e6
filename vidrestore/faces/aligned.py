"""Already-aligned input (the authors' ``--aligned``): every frame is one face crop, restored whole.

No detection, tracking or smoothing: each frame becomes one crop through the scale matrix
diag(S / W, S / H) (the identity for S x S frames, so a 512 x 512 frame is passed bit-exactly; other sizes are
resized to S x S with the warp's interpolation, non-uniformly when the frame is not square, and the restored
crop is resized back to W x H), and the restored crop replaces the whole frame (blended with the original crop
by ``PasteConfig.strength``) instead of being pasted through a mask.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from vidrestore.config import PasteConfig
from vidrestore.types import Alignment

ALIGNED_TRACK_ID = 0


def aligned_alignment(width: int, height: int, crop_size: int) -> Alignment:
    """The one Alignment of an aligned frame: a pure scale onto the S x S crop."""
    m = np.array([[crop_size / width, 0.0, 0.0], [0.0, crop_size / height, 0.0]], np.float32)
    return Alignment(track_id=ALIGNED_TRACK_ID, matrix=m, crop_size=crop_size, face_size=float(max(width, height)))


def whole_frame(frame_rgb: Any, restored: Any, originals: Any, *, config: PasteConfig) -> Any:
    """The output frame (H, W, 3) uint8 (numpy, or a tensor on the crops' device) from one restored crop.

    CPU crops are (1, S, S, 3) uint8 arrays; GPU crops (1, 3, S, S) float tensors in [-1, 1]. Strength 0
    returns ``frame_rgb`` itself.
    """
    s = float(config.strength)
    height, width = frame_rgb.shape[:2]
    if s == 0.0:
        return frame_rgb
    if isinstance(restored, torch.Tensor):
        t = (restored[0].float().clamp(-1.0, 1.0) + 1.0) * 127.5
        if s < 1.0:
            t = s * t + (1.0 - s) * (originals[0].float().clamp(-1.0, 1.0) + 1.0) * 127.5
        if t.shape[-2:] != (height, width):
            t = torch.nn.functional.interpolate(t[None], size=(height, width), mode="bicubic",
                                                align_corners=False)[0]
        return t.clamp(0.0, 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    crop = np.asarray(restored[0])
    if s < 1.0:
        crop = cv2.addWeighted(crop, s, np.asarray(originals[0]), 1.0 - s, 0.0)
    if crop.shape[:2] != (height, width):
        shrink = width < crop.shape[1] and height < crop.shape[0]
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    return np.ascontiguousarray(crop)
