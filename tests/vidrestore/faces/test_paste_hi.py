"""Pasting into full-precision frames (uint16, float32): same warp and mask as the 8-bit paste,
untouched pixels kept exactly."""
from __future__ import annotations

import numpy as np
import pytest

from vidrestore.config import PasteConfig
from vidrestore.faces.paste import paste_box, paste_faces, paste_faces_hi

M = np.array([[[1.3, 0.4, -90], [-0.4, 1.3, -30]]], np.float32)   # rotated + scaled frame -> crop


def _frames():
    rng = np.random.default_rng(1)
    f16 = rng.integers(0, 65536, (241, 333, 3), dtype=np.uint16)   # values no 8-bit frame can hold
    return f16, (f16.astype(np.float32) / 65535.0)


@pytest.mark.parametrize("kind", ["uint16", "float32"])
def test_outside_the_faces_nothing_changes_and_inside_matches_the_8bit_paste(kind):
    f16, f32 = _frames()
    frame = f16 if kind == "uint16" else f32
    crops = np.random.default_rng(2).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    out = paste_faces_hi(frame, crops, M, config=PasteConfig(feather=0.05))
    assert out.dtype == frame.dtype and out is not frame
    x0, y0, x1, y1 = paste_box(M[0], 128, 333, 241)
    outside = np.ones((241, 333), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])          # bit-exact
    # inside: the blend of the 8-bit paste, computed at the frame's precision
    base8 = np.rint(f16.astype(np.float32) / 257.0).astype(np.uint8)
    ref8 = paste_faces(base8, crops, M, config=PasteConfig(feather=0.05)).astype(np.float32)
    scale = 257.0 if kind == "uint16" else 1.0 / 255.0
    inner = out[y0 + 20:y1 - 20, x0 + 20:x1 - 20].astype(np.float32) / scale
    full = np.zeros((241, 333), bool)
    full[y0 + 20:y1 - 20, x0 + 20:x1 - 20] = True
    # where the mask is 1 both are the warped crop: equal within rounding of the 8-bit result
    changed = np.abs(inner - f16[y0 + 20:y1 - 20, x0 + 20:x1 - 20] / 257.0) > 0.0
    assert changed.mean() > 0.5
    assert np.abs(inner - ref8[y0 + 20:y1 - 20, x0 + 20:x1 - 20]).max() <= 1.01


def test_float_values_above_one_survive_outside_faces():
    frame = np.full((100, 120, 3), 3.5, np.float32)                        # HDR-ish float
    crops = np.zeros((1, 64, 64, 3), np.uint8)
    m = np.array([[[1, 0, -20], [0, 1, -10]]], np.float32)
    out = paste_faces_hi(frame, crops, m)
    assert out[0, 0, 0] == 3.5 and out[50, 110, 1] == 3.5
    assert out[10 + 32, 20 + 32, 0] == 0.0                                  # the crop's centre


def test_rejects_other_dtypes():
    with pytest.raises(ValueError, match="uint16 or float32"):
        paste_faces_hi(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 8, 8, 3), np.uint8),
                       np.zeros((0, 2, 3)))
