"""Paste restored crops back: inverse warp into the crop's bounding box only, masked blend.

For each crop the frame box is the bounding box of the four transformed crop corners (plus one pixel for
bilinear support), clipped to the frame; the inverse matrix is shifted into that box and
``cv2.warpAffine`` fills only a box-sized buffer. Pixels outside the box are never read into float nor
written; inside the box, where the warped mask is zero the original value is kept bit-exactly.

Masks: this module only blends. The mask comes from :mod:`vidrestore.faces.masks` — one static mask per
crop size for ``box``/``face`` (:func:`~vidrestore.faces.masks.static_mask`), or one mask per crop passed
in ``masks`` (``parse``: built from the restored crops by :class:`vidrestore.faces.parse.FaceParser`).

Colour (``color_match="lab"``): the restored crop first gets the original crop's Lab mean and spread
inside its mask (:func:`vidrestore.faces.color.match_lab`); this needs ``originals``.

Resampling (``interpolation``, default "lanczos"): the crop's colour is warped back with Lanczos-4 (or cubic /
bilinear) into uint8, so overshoot is clipped to 0..255; outside the crop square the colour repeats the crop's
edge (its weight there is the mask's, which is zero), except with "linear", which keeps the constant-0 border
of the CUDA kernel. The mask itself is always warped bilinearly. With the identity restorer a Lanczos round trip
(warp out and back) of a 355 px face in a 512 px frame keeps >= 42 dB where bilinear gave 38-39 dB
(benchmarks/paste_quality.py).

Strength: with ``originals`` (the unrestored crops) the crop pasted is ``s * restored + (1 - s) * original``;
without them the blend is against the frame itself (``alpha = s * mask``), which avoids a second resampling.

Overlapping faces are pasted sequentially in the given order: a later face is blended over the result of the
earlier ones with its own mask.
"""
from __future__ import annotations

import cv2
import numpy as np

from vidrestore.config import PasteConfig
from vidrestore.faces.align import CV_INTERPOLATION, Interpolation
from vidrestore.faces.color import match_lab
from vidrestore.faces.masks import feather_mask, static_mask

__all__ = ["feather_mask", "paste_box", "paste_faces"]


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
                masks: np.ndarray | None = None, inplace: bool = False,
                interpolation: Interpolation = "lanczos") -> np.ndarray:
    """Blend (K, S, S, 3) uint8 crops into a copy of the (H, W, 3) uint8 frame (or into it when ``inplace``).

    ``matrices`` are the (K, 2, 3) frame->crop matrices used to cut the crops; ``masks`` optional (K, S, S)
    float32 per-crop masks in [0, 1] (required for ``mask="parse"``), else the configuration's static mask.
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
    if masks is None:
        mask = static_mask(size, config)
    else:
        masks = np.asarray(masks, dtype=np.float32)
        if masks.shape != (len(crops), size, size):
            raise ValueError(f"masks must be ({len(crops)}, {size}, {size}), got {masks.shape}")
    if config.color_match != "none" and originals is None:
        raise ValueError("color_match needs the original crops (originals=)")
    for k in range(len(crops)):
        if masks is not None:
            mask = masks[k]
        box = paste_box(matrices[k], size, w, h)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        inv = cv2.invertAffineTransform(matrices[k])
        inv[:, 2] -= (x0, y0)                               # crop -> box coordinates
        crop = crops[k]
        if config.color_match == "lab":
            crop = match_lab(crop, originals[k], mask)
        alpha_scale = config.strength
        if originals is not None and config.strength < 1.0:
            crop = cv2.addWeighted(crop, config.strength, originals[k], 1.0 - config.strength, 0.0)
            alpha_scale = 1.0
        bw, bh = x1 - x0, y1 - y0
        if interpolation == "linear":
            warped = cv2.warpAffine(crop, inv, (bw, bh), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        else:
            warped = cv2.warpAffine(crop, inv, (bw, bh), flags=CV_INTERPOLATION[interpolation],
                                    borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, inv, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if alpha_scale != 1.0:
            alpha *= alpha_scale
        region = out[y0:y1, x0:x1]
        base = region.astype(np.float32)
        blended = base + alpha[..., None] * (warped.astype(np.float32) - base)
        np.rint(blended, out=blended)
        region[...] = blended.astype(np.uint8)               # values stay in [0, 255]: convex combination
    return out
