"""Alignment: 5-point similarity transform to the FFHQ template, and batched warping into square crops.

Matrices are (2, 3) float32 affine maps from upright frame pixels to crop pixels (OpenCV convention:
``crop = M @ [x, y, 1]``). Crops are sampled with Lanczos-4 interpolation by default (``interpolation``:
"lanczos" = INTER_LANCZOS4, "cubic" = INTER_CUBIC, "linear" = INTER_LINEAR; uint8 output, so the kernels'
overshoot is clipped to 0..255); where the crop reaches outside the frame it is filled with a constant grey (135, 133, 132) as GFP-GAN's face helper does,
so the restorer sees a neutral border; paste-back never writes those pixels back (they map outside the frame).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from vidrestore.config import AlignConfig
from vidrestore.types import Alignment, TrackedFace

if TYPE_CHECKING:
    import torch

FFHQ_TEMPLATE_512 = np.array([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02],
                              [201.26, 371.41], [313.09, 371.15]], dtype=np.float32)
FFHQ_TEMPLATE_512.setflags(write=False)
BORDER_VALUE = (135, 133, 132)
Interpolation = Literal["linear", "cubic", "lanczos"]
CV_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation; no reflection) mapping src (N,2) onto dst (N,2);
    (2, 3) float64. Umeyama 1991."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0                                   # forbid reflections
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def similarity_from_landmarks(landmarks: np.ndarray, *, crop_size: int = 512) -> np.ndarray:
    """(5, 2) landmarks in frame pixels -> (2, 3) float32 frame->crop matrix for a crop_size x crop_size crop."""
    template = FFHQ_TEMPLATE_512 * (crop_size / 512.0)
    return umeyama_similarity(landmarks, template).astype(np.float32)


def alignments_for(faces: list[TrackedFace], *, config: AlignConfig) -> list[Alignment]:
    """One Alignment per face whose box long side is at least ``config.min_face`` pixels (others skipped)."""
    out = []
    for tf in faces:
        size = tf.face.size
        if size < config.min_face:
            continue
        m = similarity_from_landmarks(tf.landmarks, crop_size=config.crop_size)
        out.append(Alignment(track_id=tf.track_id, matrix=m, crop_size=config.crop_size, face_size=size))
    return out


def warp_crops(frame_rgb: np.ndarray, matrices: np.ndarray, *, crop_size: int = 512,
               interpolation: Interpolation = "lanczos") -> np.ndarray:
    """(K, S, S, 3) uint8 crops of an (H, W, 3) uint8 frame, one per (2, 3) matrix in (K, 2, 3)."""
    matrices = np.asarray(matrices, dtype=np.float32).reshape(-1, 2, 3)
    out = np.empty((len(matrices), crop_size, crop_size, 3), dtype=np.uint8)
    flags = CV_INTERPOLATION[interpolation]
    for k, m in enumerate(matrices):
        cv2.warpAffine(frame_rgb, m, (crop_size, crop_size), dst=out[k], flags=flags,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_VALUE)
    return out


def crops_to_tensor(crops: np.ndarray) -> "torch.Tensor":
    """(K, S, S, 3) uint8 RGB -> (K, 3, S, S) float32 in [-1, 1] (x / 127.5 - 1).

    In numpy on purpose: these element-wise passes are memory-bound, and torch's intra-op pool
    would compete with the detector's and the encoder's threads for the same cores.
    """
    import torch

    x = np.ascontiguousarray(np.asarray(crops, dtype=np.float32).transpose(0, 3, 1, 2))
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return torch.from_numpy(x)


def tensor_to_crops(t: "torch.Tensor") -> np.ndarray:
    """(K, 3, S, S) float in [-1, 1] (any device/dtype) -> (K, S, S, 3) uint8, clamped and rounded."""
    import torch

    a = np.clip(t.detach().to(torch.float32).cpu().numpy().transpose(0, 2, 3, 1), -1.0, 1.0)
    a += np.float32(1.0)
    a *= np.float32(127.5)
    np.rint(a, out=a)
    return np.ascontiguousarray(a.astype(np.uint8))
