"""Synthetic talking-head landmark paths for tracker/smoother tests."""
from __future__ import annotations

import numpy as np

from vidrestore.types import Face, TrackedFace

# FFHQ template landmarks relative to the face centre, for a face of about 200 px
_SHAPE = (np.array([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]])
          - np.array([256.0, 300.0])) * (200 / 512) * 1.6


def talking_head_path(n: int = 150, *, max_speed: float = 7.0, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, slice]:
    """True centres (n, 2) px: 30 frames at constant max_speed (the lag-check segment), then sinusoidal sway
    peaking at max_speed px/frame; plus per-frame scale and angle. Returns (centres, (n, 5, 2) true
    landmarks, the constant-velocity slice)."""
    t = np.arange(n, dtype=np.float64)
    cv = slice(0, 30)
    x = np.empty(n)
    y = np.empty(n)
    x[:30] = 100 + max_speed * t[:30]
    y[:30] = 300 + 0.0 * t[:30]
    period = 50.0
    tt = t[30:] - 30
    amp = max_speed * period / (2 * np.pi)
    x[30:] = x[29] + max_speed + amp * np.sin(2 * np.pi * tt / period)     # starts at max speed, continuous
    y[30:] = 300 + 0.4 * amp * (1 - np.cos(2 * np.pi * tt / 80.0))
    scale = 1.0 + 0.1 * np.sin(2 * np.pi * t / 90.0)
    angle = 0.15 * np.sin(2 * np.pi * t / 70.0)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)             # (n, 2, 2)
    lms = np.einsum("nij,kj->nki", rot, _SHAPE) * scale[:, None, None] + np.stack([x, y], -1)[:, None, :]
    return np.stack([x, y], -1), lms, cv


def noisy(lms: np.ndarray, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return lms + rng.normal(0.0, sigma, lms.shape)


def face_from_landmarks(lm: np.ndarray, score: float = 0.99) -> Face:
    lm = np.asarray(lm, np.float32)
    c = lm.mean(0)
    half = 1.1 * float(np.ptp(lm[:, 0])) + 10
    box = np.array([c[0] - half, c[1] - 1.3 * half, c[0] + half, c[1] + 1.0 * half], np.float32)
    return Face(box=box, landmarks=lm, score=score)


def tracked(track_id: int, frame: int, lm: np.ndarray, detected: bool = True) -> TrackedFace:
    f = face_from_landmarks(lm)
    return TrackedFace(track_id=track_id, frame_index=frame, face=f, landmarks=f.landmarks, detected=detected)
