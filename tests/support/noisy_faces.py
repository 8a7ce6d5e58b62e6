"""A moving real face through a lossy encode, detected by the real detector: landmark paths for smoother checks.

A real face photo is moved along :func:`talking_head_path` (up to 7 px/frame, scale +-10 %, angle +-0.15 rad),
rendered into 640x480 frames, given Gaussian sensor noise, encoded with libx264 CRF 28, decoded, and run
through the RetinaFace detector. The true landmarks are the photo's own detected landmarks moved by the same
transform, so what is left in ``detected - true`` is what the detector and the codec add (noise and a slowly
varying bias). The error spectrum metric is :func:`high_band_rms`: the RMS of the error minus a 15-frame
Savitzky-Golay fit of itself, i.e. the part above about 1.7 Hz at 25 fps.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.support.synthetic_faces import talking_head_path

FRAME_W, FRAME_H = 640, 480
FACE_PX = 170.0            # face box size in the frame at scale 1


def _source(image: Path, detector) -> tuple[np.ndarray, np.ndarray, float]:
    rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    face = max(detector.detect([rgb])[0], key=lambda f: f.size)
    return rgb, np.asarray(face.landmarks, np.float64), float(face.size)


def render(image: Path, detector, *, n: int = 150, noise: float = 3.0, seed: int = 0
           ) -> tuple[list[np.ndarray], np.ndarray]:
    """(frames (H, W, 3) uint8 before encoding, true landmarks (n, 5, 2))."""
    src, lm0, size0 = _source(image, detector)
    centres, path_lms, _ = talking_head_path(n, max_speed=7.0)
    # scale and angle of each frame, recovered from the synthetic path's landmarks
    rng = np.random.default_rng(seed)
    c0 = lm0.mean(0)
    frames, true = [], []
    ref = path_lms[0] - path_lms[0].mean(0)
    for t in range(n):
        cur = path_lms[t] - path_lms[t].mean(0)
        z = np.sum((cur[:, 0] + 1j * cur[:, 1]) * np.conj(ref[:, 0] + 1j * ref[:, 1])) / np.sum(np.abs(ref[:, 0] + 1j * ref[:, 1]) ** 2)
        k = FACE_PX / size0 * z
        a = np.array([[k.real, -k.imag], [k.imag, k.real]])
        centre = centres[t] + np.array([90.0, -60.0])
        m = np.concatenate([a, (centre - a @ c0)[:, None]], 1)
        img = cv2.warpAffine(src, m, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img + rng.normal(0.0, noise, img.shape), 0, 255).astype(np.uint8)
        frames.append(img)
        true.append(lm0 @ a.T + m[:, 2])
    return frames, np.stack(true)


def encode_decode(frames: list[np.ndarray], path: Path, *, crf: int = 28) -> list[np.ndarray]:
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        st.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            out.mux(st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(st.encode(None))
    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def detected_path(image: Path, workdir: Path, *, n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(detected landmarks (n, 5, 2), true landmarks (n, 5, 2)) through render -> CRF 28 -> RetinaFace."""
    from vidrestore.faces.detect import RetinaFaceDetector

    det = RetinaFaceDetector()
    frames, true = render(image, det, n=n, seed=seed)
    decoded = encode_decode(frames, workdir / f"noisy_face_{seed}.mp4")
    found = det.detect(decoded)
    lms = []
    for t, faces in enumerate(found):
        if not faces:
            raise AssertionError(f"frame {t}: the detector lost the face")
        lms.append(min(faces, key=lambda f: np.abs(f.landmarks - true[t]).sum()).landmarks)
    return np.stack(lms).astype(np.float64), true


def high_band_rms(err: np.ndarray, window: int = 15, order: int = 2) -> float:
    """RMS over frames and coordinates of ``err - savgol(err)`` along time: the error above ~1.7 Hz at 25 fps."""
    from scipy.signal import savgol_filter

    e = err.reshape(len(err), -1)
    hp = e - savgol_filter(e, window, order, axis=0)
    return float(np.sqrt((hp ** 2).mean()))


def best_lag(est: np.ndarray, true: np.ndarray, *, max_shift: int = 3, step: float = 0.1) -> float:
    """Shift s (frames, sub-frame) minimising |est(t) - true(t - s)|: positive = est behind the truth."""
    n = len(true)
    t = np.arange(n, dtype=np.float64)
    flat = true.reshape(n, -1)
    inner = slice(max_shift + 2, n - max_shift - 2)
    best, best_err = 0.0, np.inf
    for s in np.arange(-max_shift, max_shift + step / 2, step):
        shifted = np.stack([np.interp(t - s, t, flat[:, j]) for j in range(flat.shape[1])], 1)
        e = np.mean((est.reshape(n, -1)[inner] - shifted[inner]) ** 2)
        if e < best_err:
            best, best_err = float(s), e
    return best
