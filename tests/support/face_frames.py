"""Plain-PyAV frame reading for the face-stage tests (independent of vidrestore.media)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np


def read_frames(path: Path, indices: tuple[int, ...] | None = None, *, limit: int | None = None,
                upright: bool = True) -> list[np.ndarray]:
    """RGB uint8 frames at the given decode indices (or the first ``limit``), rotated upright."""
    import av

    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices)
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if wanted is None or i in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                if upright and frame.rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=(frame.rotation // 90) % 4))
                out.append(rgb)
            if (last is not None and i >= last) or (limit is not None and len(out) >= limit):
                break
    return out


@lru_cache(maxsize=16)
def cached_frames(path: str, indices: tuple[int, ...] | None = None, limit: int | None = None
                  ) -> tuple[np.ndarray, ...]:
    frames = tuple(read_frames(Path(path), indices, limit=limit))
    for f in frames:
        f.setflags(write=False)
    return frames


def face_frame(photo: np.ndarray, detector, face_px: float, side: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """A side x side frame whose face box is about ``face_px``: the photo scaled (INTER_AREA when shrinking)
    around its largest face; returns (frame, the face's landmarks detected in that frame)."""
    import cv2

    f0 = max(detector.detect([photo])[0], key=lambda f: f.size)
    s = face_px / f0.size
    big = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    pad = side
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    c = (f0.box[:2] + f0.box[2:]) / 2 * s + pad
    x0, y0 = int(c[0] - side / 2), int(c[1] - side / 2)
    frame = np.ascontiguousarray(big[y0:y0 + side, x0:x0 + side])
    face = max(detector.detect([frame])[0], key=lambda f: f.size)
    return frame, np.asarray(face.landmarks)
