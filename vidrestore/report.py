"""The run report: what came in, what went out, what happened on the way (JSON-serialisable)."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .types import TrackSummary, VideoInfo


@dataclass(frozen=True)
class Progress:
    """Handed to the ``progress`` callback of :func:`vidrestore.pipeline.restore_video` after each frame."""

    frames_done: int
    frames_total: int | None      # an estimate from the container; None if unknown
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.frames_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.frames_total or self.fps <= 0:
            return None
        return max(self.frames_total - self.frames_done, 0) / self.fps


@dataclass(frozen=True)
class BackendInfo:
    name: str
    device: str
    precision: str
    max_batch: int
    reason: str                # why this backend was chosen (auto selection or explicit request)


@dataclass(frozen=True)
class Report:
    input: VideoInfo
    output: Path
    output_info: VideoInfo | None
    backend: BackendInfo
    frames_decoded: int
    frames_written: int
    faces_per_frame: tuple[int, ...]      # restored faces in each written frame, in decode order
    faces_detected: int                   # detections before the min-face filter
    faces_restored: int
    faces_skipped_small: int
    tracks: tuple[TrackSummary, ...]
    stage_seconds: dict[str, float]       # busy time per stage (threads overlap, so these can sum past wall)
    wall_seconds: float
    warnings: dict[str, int] = field(default_factory=dict)
    paste_mask: str = "face"              # --mask used for paste-back (face, parse, box)
    color_match: str = "none"             # --color-match used (none, lab)
    upscale: dict[str, Any] | None = None   # --upscale: sizes, method, upsampler backend and why (UpscalePlan)
    # a range's edge frames -> ((track id, alignment matrix), ...): chunks match track IDs with these
    seam_faces: dict[int, tuple] = field(default_factory=dict)
    frames_lost: int = 0                  # damaged or missing in the input (corrupt packets, truncation)
    lost: tuple[tuple[float | None, int, str], ...] = ()   # (seconds or None, frames, cause)
    loss_text: str = ""                   # the one-line account of frames_lost

    @property
    def fps(self) -> float:
        return self.frames_written / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(dataclasses.asdict(self))
        d["fps"] = round(self.fps, 4)
        return d

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file + rename) so a report is never half-written."""
        return write_json_atomic(self.to_dict(), path)

    def summary_lines(self) -> list[str]:
        s = [f"{self.frames_written} frames written ({self.frames_decoded} decoded) in "
             f"{self.wall_seconds:.1f} s, {self.fps:.2f} fps",
             f"faces: {self.faces_restored} restored, {self.faces_skipped_small} too small, "
             f"{len(self.tracks)} tracks; backend {self.backend.name} on {self.backend.device} "
             f"({self.backend.precision}); paste mask {self.paste_mask}"
             + (f", colour match {self.color_match}" if self.color_match != "none" else "")]
        if self.frames_lost:
            s.append(f"input damaged: {self.loss_text}")
        if self.stage_seconds:
            s.append("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.stage_seconds.items()))
        if self.upscale:
            u = self.upscale
            s.append(f"upscale x{u['scale']:g}: {u['input_size'][0]}x{u['input_size'][1]} -> "
                     f"{u['output_size'][0]}x{u['output_size'][1]} ({u['size_rule']}), {u['method']}"
                     + (f" on {u['backend']}/{u['device']} ({u['reason']})" if u.get("backend") else ""))
        if self.warnings:
            s.append("warnings: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.warnings.items())))
        return s


def merge_warnings(*counters: dict[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(total)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Fraction):
        return f"{x.numerator}/{x.denominator}"
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float):
        return round(x, 6)
    if hasattr(x, "item") and callable(x.item):      # numpy scalars
        return x.item()
    return x


def write_json_atomic(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``data`` as indented JSON at ``path``, through a temp file beside it and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
