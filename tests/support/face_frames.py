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
