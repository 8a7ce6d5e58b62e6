"""Decoded frames to RGB arrays: FFmpeg's colour enums by name, the YUV -> RGB matrix and range a frame
is converted with (swscale), 8/16-bit RGB(A) conversion, and the display rotation.

Shared by the file and pipe readers (:mod:`vidrestore.media.decode`), the image-sequence reader and the
writers (which rotate back).
"""
from __future__ import annotations

import av
import numpy as np

# FFmpeg enum values (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic) -> names.
COLORSPACE_NAMES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                    8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
PRIMARIES_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
                   9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRC_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084",
             17: "smpte428", 18: "arib-std-b67"}
RANGE_NAMES = {1: "tv", 2: "pc"}
# AVColorSpace -> swscale matrix (PyAV ``Colorspace`` value) used for YUV -> RGB.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_SWS_MATRIX_NAMES = {1: "bt709", 4: "fcc", 5: "bt601", 7: "smpte240m", 9: "bt2020"}

def conversion_matrix(colorspace: int, stored_width: int, stored_height: int) -> int:
    """swscale matrix for a frame's AVColorSpace; unspecified -> BT.709 for HD, else BT.601."""
    if colorspace in _SWS_MATRIX:
        return _SWS_MATRIX[colorspace]
    return 1 if (stored_width >= 1280 or stored_height >= 720) else 5


def conversion_matrix_name(colorspace: int, stored_width: int, stored_height: int) -> str:
    """The name of :func:`conversion_matrix`'s choice ("bt709", "bt601", ...), for the run report."""
    return _SWS_MATRIX_NAMES[conversion_matrix(colorspace, stored_width, stored_height)]


def conversion_range(color_range: int, pix_fmt: str) -> int:
    """Source range for swscale: the frame's, else full range for yuvj*/gray/RGB, else limited."""
    if color_range in (1, 2):
        return color_range
    if pix_fmt.startswith("yuvj") or pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "pal")):
        return 2
    return 1


def has_alpha(fmt: av.VideoFormat) -> bool:
    return any(c.is_alpha for c in fmt.components) or fmt.name in ("pal8",)


def frame_to_rgb(vf: av.VideoFrame, *, want_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert one decoded frame to (rgb (H,W,3) uint8, alpha (H,W) uint8 | None), as stored."""
    return _frame_to(vf, "rgba" if want_alpha else "rgb24", want_alpha)


def frame_to_rgb48(vf: av.VideoFrame, *, want_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Like :func:`frame_to_rgb` at 16 bits: (rgb (H,W,3) uint16 0..65535, alpha (H,W) uint8 | None)."""
    rgb, alpha = _frame_to(vf, "rgba64le" if want_alpha else "rgb48le", want_alpha)
    return rgb, None if alpha is None else to_8bit(alpha)


def to_8bit(img16: np.ndarray) -> np.ndarray:
    """uint16 (0..65535) -> uint8 (0..255), rounded: what the analysis stages see."""
    import cv2

    return cv2.convertScaleAbs(img16, alpha=255.0 / 65535.0)


def _frame_to(vf: av.VideoFrame, target: str, want_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    fmt = vf.format
    if fmt.is_rgb or fmt.name in ("pal8",) or fmt.name.startswith(("gray", "ya")):
        out = vf.reformat(format=target, src_color_range=conversion_range(vf.color_range, fmt.name),
                          dst_color_range=2)
    else:
        out = vf.reformat(format=target,
                          src_colorspace=conversion_matrix(vf.colorspace, vf.width, vf.height),
                          src_color_range=conversion_range(vf.color_range, fmt.name),
                          dst_color_range=2)
    arr = out.to_ndarray()
    if want_alpha:
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return arr, None


def rot90(img: np.ndarray, k: int) -> np.ndarray:
    """``np.rot90(img, k)`` (counter-clockwise quarter turns) as a contiguous array.

    Uses OpenCV's rotate, ~10x faster than copying numpy's strided view of an HD frame."""
    k %= 4
    if not k:
        return img
    import cv2

    code = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}[k]
    return cv2.rotate(np.ascontiguousarray(img), code)


def upright(img: np.ndarray | None, rotation: int) -> np.ndarray | None:
    """Apply a display-matrix rotation (counter-clockwise degrees) to a stored image:
    ``np.rot90(img, k=(rotation // 90) % 4)``."""
    if img is None:
        return None
    return rot90(img, (int(rotation) // 90) % 4)
