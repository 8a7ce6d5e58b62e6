"""Paste restored crops back: inverse warp into the crop's bounding box only, feathered blend.

For each crop the frame box is the bounding box of the four transformed crop corners (plus one pixel for
bilinear support), clipped to the frame; the inverse matrix is shifted into that box and
``cv2.warpAffine`` fills only a box-sized buffer. Pixels outside the box are never read into float nor
written; inside the box, where the mask is zero the original value is kept bit-exactly.

Mask: a separable smooth ramp over the crop square (zero at the crop edge, one from ``2 * feather * S``
inwards; smoothstep profile) — the erode + blur of GFP-GAN's face helper in closed form. It is a pure function
of (crop size, feather), cached with lru_cache and returned read-only.

Strength: with ``originals`` (the unrestored crops) the crop pasted is ``s * restored + (1 - s) * original``;
without them the blend is against the frame itself (``alpha = s * mask``), which avoids a second resampling.

Overlapping faces are pasted sequentially in the given order: a later face is blended over the result of the
earlier ones with its own feathered mask.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from vidrestore.config import PasteConfig


@lru_cache(maxsize=8)
def feather_mask(crop_size: int, feather: float) -> np.ndarray:
    """(S, S) float32 in [0, 1], read-only: 0 at the crop border rising smoothly to 1 at 2*feather*S."""
    width = 2.0 * feather * crop_size
    d = np.minimum(np.arange(crop_size) + 0.5, crop_size - 0.5 - np.arange(crop_size))   # distance to edge
    if width <= 0:
        r = np.ones(crop_size)
    else:
        t = np.clip(d / width, 0.0, 1.0)
        r = t * t * (3.0 - 2.0 * t)
    m = np.ascontiguousarray(np.outer(r, r), dtype=np.float32)
    m.setflags(write=False)
    return m


def paste_box(matrix: np.ndarray, crop_size: int, frame_w: int, frame_h: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) frame box (half-open) touched by pasting a crop with this frame->crop matrix."""
    inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    s = float(crop_size)
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]]) @ inv.T
    x0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + 2, frame_w)
    y1 = min(int(np.ceil(corners[:, 1].max())) + 2, frame_h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def paste_faces(frame_rgb: np.ndarray, crops: np.ndarray, matrices: np.ndarray, *,
                config: PasteConfig = PasteConfig(), originals: np.ndarray | None = None,
                inplace: bool = False) -> np.ndarray:
    """Blend (K, S, S, 3) uint8 crops into a copy of the (H, W, 3) uint8 frame (or into it when ``inplace``).
    uint16 / float32 frames: see :func:`paste_faces_hi`.

    ``matrices`` are the (K, 2, 3) frame->crop matrices used to cut the crops.
    """
    out = frame_rgb if inplace else frame_rgb.copy()
    crops = np.asarray(crops)
    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    if len(crops) != len(matrices):
        raise ValueError(f"{len(crops)} crops but {len(matrices)} matrices")
    if config.strength == 0.0 or len(crops) == 0:
        return out
    h, w = out.shape[:2]
    size = crops.shape[1]
    mask = feather_mask(size, float(config.feather))
    for k in range(len(crops)):
        box = paste_box(matrices[k], size, w, h)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        inv = cv2.invertAffineTransform(matrices[k])
        inv[:, 2] -= (x0, y0)                               # crop -> box coordinates
        crop = crops[k]
        alpha_scale = config.strength
        if originals is not None and config.strength < 1.0:
            crop = cv2.addWeighted(crop, config.strength, originals[k], 1.0 - config.strength, 0.0)
            alpha_scale = 1.0
        bw, bh = x1 - x0, y1 - y0
        if out.dtype != np.uint8:                           # high-precision frame: crop at its scale
            crop = crop.astype(np.float32) * _CROP_SCALE[out.dtype.type]
        warped = cv2.warpAffine(crop, inv, (bw, bh), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = cv2.warpAffine(mask, inv, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if alpha_scale != 1.0:
            alpha *= alpha_scale
        region = out[y0:y1, x0:x1]
        base = region.astype(np.float32)
        blended = base + alpha[..., None] * (warped.astype(np.float32) - base)
        if out.dtype != np.float32:
            np.rint(blended, out=blended)
        region[...] = blended.astype(out.dtype)              # stays in range: convex combination
    return out


_CROP_SCALE = {np.uint16: 65535.0 / 255.0, np.float32: 1.0 / 255.0}


def paste_faces_hi(frame_hi: np.ndarray, crops: np.ndarray, matrices: np.ndarray, *,
                   config: PasteConfig = PasteConfig(), originals: np.ndarray | None = None,
                   inplace: bool = False) -> np.ndarray:
    """:func:`paste_faces` into a full-precision frame: (H, W, 3) uint16 (0..65535) or float32 (0..1).

    The (K, S, S, 3) uint8 crops are scaled to the frame's range (x257 for uint16) and blended with
    the same warp and mask as the 8-bit paste at float32 precision, then rounded once to the frame's
    type; where the mask is zero the frame keeps its values exactly.
    """
    if frame_hi.dtype.type not in _CROP_SCALE:
        raise ValueError(f"high-precision frames are uint16 or float32, got {frame_hi.dtype}")
    return paste_faces(frame_hi, crops, matrices, config=config, originals=originals, inplace=inplace)
