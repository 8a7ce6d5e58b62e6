"""training/metrics/landmarks.py with the real RetinaFace (onnxruntime) on a real face: 0 for the same
image, about the shift for a translated copy, a clear error without a face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.metrics.landmarks import LandmarkDistance
from vidrestore.errors import InputError


def test_lmd_follows_a_shift(testdata):
    bgr = cv2.resize(cv2.imread(str(testdata / "images" / "gfpgan_cropped_Adele_512.png")), (256, 256))
    img = np.ascontiguousarray(bgr[..., ::-1])
    shifted = cv2.warpAffine(img, np.float32([[1, 0, 6], [0, 1, 8]]), (256, 256), borderMode=cv2.BORDER_REFLECT)
    lmd = LandmarkDistance()
    assert lmd(img, img) == 0.0
    assert 10 * 0.7 < lmd(shifted, img) < 10 * 1.3          # |(6, 8)| = 10 px
    with pytest.raises(InputError, match="no face"):
        lmd(np.full_like(img, 90), img)
