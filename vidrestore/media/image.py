"""Still-image output: one upright RGB(A) frame to png/jpg/webp bytes.

Alpha is kept in PNG and WebP (lossless WebP when alpha is present so the edges stay exact) and
dropped for JPEG (counted as ``"alpha dropped"`` by the caller). Encoding goes through OpenCV, a core
dependency, so no extra package is needed.
"""
from __future__ import annotations

import numpy as np

from ..errors import EncodeError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
ALPHA_EXTS = (".png", ".webp")


def encode_image(ext: str, rgb: np.ndarray, alpha: np.ndarray | None, *, jpeg_quality: int = 95) -> bytes:
    """Encode ``rgb`` (H,W,3 uint8) plus optional ``alpha`` (H,W uint8) as an ``ext`` image file."""
    import cv2

    ext = ext.lower()
    if ext not in IMAGE_EXTS:
        raise EncodeError(f"not an image extension: {ext}")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    params: list[int] = []
    if alpha is not None and ext in ALPHA_EXTS:
        bgr = np.ascontiguousarray(np.dstack([bgr, alpha]))
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101 if alpha is not None else jpeg_quality]  # >100 = lossless
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise EncodeError(f"OpenCV could not encode a {bgr.shape[1]}x{bgr.shape[0]} {ext} image")
    return buf.tobytes()
