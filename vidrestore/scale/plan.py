"""Cutting a video into chunks (time ranges) and the settings hash that says which runs may share them.

Chunk boundaries are frame numbers of :class:`vidrestore.media.index.FrameIndex` at multiples of
``chunk_seconds`` of presentation time (VFR-exact), moved down to whole detector batches
(``detect.batch * detect.every``) so every chunk's detector sees the frames in the batches a
single-process run would. Files whose frames cannot be counted without decoding
(:attr:`FrameIndex.exact` False) and still images are one chunk.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import RestoreConfig
from ..media.index import FrameIndex

# Output codecs whose packets can be joined by stream copy (intra-only: any packet starts cleanly).
STREAM_COPY_CODECS = ("ffv1", "prores_ks")
INTERMEDIATE_CODEC = "ffv1"          # lossless chunks for every other codec, encoded once by the join


@dataclass(frozen=True)
class Chunk:
    number: int
    start: int                       # first frame (global number)
    end: int                         # one past the last frame
    first_pts: int
    last_pts: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def plan_chunks(index: FrameIndex, config: RestoreConfig, chunk_seconds: float) -> list[Chunk]:
    n = len(index)
    unit = config.detect.batch * config.detect.every
    cuts = [0]
    if index.exact and chunk_seconds > 0:
        t0 = index.time_s(0)
        k = 1
        while True:
            f = index.frame_at(t0 + k * chunk_seconds)
            if f >= n:
                break
            f = f // unit * unit
            if f > cuts[-1]:
                cuts.append(f)
            k += 1
    cuts.append(n)
    return [Chunk(number=i, start=a, end=b, first_pts=index.pts[a], last_pts=index.pts[b - 1])
            for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def chunk_codec(config: RestoreConfig) -> str:
    return config.encode.codec if config.encode.codec in STREAM_COPY_CODECS else INTERMEDIATE_CODEC


def chunk_suffix(config: RestoreConfig) -> str:
    return ".mov" if chunk_codec(config) == "prores_ks" else ".mkv"


def settings_hash(config: RestoreConfig, chunk_seconds: float) -> str:
    """Everything that changes a chunk's pixels: options, weights file, chunking, version."""
    cfg = dataclasses.replace(config, overwrite=False)
    data = dataclasses.asdict(cfg)
    for volatile in ("threads", "frame_threads"):     # speed only, never pixels
        for part in ("decode", "detect", "model", "encode"):
            data[part].pop(volatile, None)
    data["queue_size"] = None
    data["weights_file"] = _file_identity(Path(str(config.model.weights)).expanduser())
    data["chunk_seconds"] = chunk_seconds
    data["version"] = __version__
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def input_identity(path: Path, index: FrameIndex) -> dict[str, object]:
    return {"path": os.path.realpath(path), "size": path.stat().st_size, "frames": len(index),
            "timestamps_sha256": index.digest()}


def _file_identity(path: Path) -> str | None:
    if not path.is_file():
        return None                    # a release name: the registry pins its SHA-256
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"
