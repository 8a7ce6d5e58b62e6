"""Ranges of a video: which frames are decoded, analysed and written.

One mechanism serves ``--start/--end``, ``--keep-outside`` and the chunks of a scaled-out run
(:mod:`vidrestore.scale`). A :class:`FrameRange` says: decode from the keyframe before frame
``start - warmup``, run the ``warmup`` frames before ``start`` through detect/track/smooth without
writing them, write frames ``[start, end)``, and analyse ``lookahead`` frames after ``end`` for the
smoother. With enough warm-up (:func:`warmup_frames`) the tracker (gap filling over
``TrackConfig.max_misses``, velocity) and the smoother's window reach the state a run from frame 0
has, so a range's frames equal the same frames of a whole-video run.

``keep_outside``: every frame is written; only frames in ``[start, end)`` get restored faces, the others
are decoded and re-encoded as they are (identical to a plain re-encode with the same settings).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .config import RestoreConfig
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .media.index import FrameIndex
    from .types import Alignment

_CONVERGED = 1e-4        # velocity EMA weight left from before the warm-up


@dataclass(frozen=True, kw_only=True)
class FrameRange:
    start: int                   # first frame written (restored), global frame number
    end: int | None              # one past the last; None = to the end of the video
    warmup: int = 0              # frames before `start` analysed, not written
    lookahead: int = 0           # frames after `end` analysed, not written
    keep_outside: bool = False   # write every frame; restore only [start, end)
    seek_pts: int | None = None  # pts of the first analysed frame (decode from its keyframe)
    keyframe_pts: int | None = None
    seam: int = 0                # faces of this many frames at each edge go to Report.seam_faces

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ConfigError(f"empty range: frames [{self.start}, {self.end})")

    @property
    def first_analysed(self) -> int:
        return max(self.start - self.warmup, 0)

    @property
    def stop(self) -> int | None:
        """One past the last frame that must be decoded (None: all)."""
        return None if self.keep_outside or self.end is None else self.end + self.lookahead


@dataclass(frozen=True)
class TimeSpec:
    value: float                 # seconds, or a frame number when `frames`
    frames: bool = False


def parse_time(text: str, *, option: str = "--start") -> TimeSpec:
    """``12.5`` (seconds), ``00:01:02.250`` / ``1:02.25`` (H:M:S) or ``300f`` (frame number)."""
    t = text.strip()
    if re.fullmatch(r"\d+f", t):
        return TimeSpec(int(t[:-1]), frames=True)
    m = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)", t)
    if m:
        h, mi, s = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
        if mi >= 60 or s >= 60:
            raise ConfigError(f"{option} {text!r}: minutes and seconds must be below 60")
        return TimeSpec(h * 3600 + mi * 60 + s)
    try:
        v = float(t)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: use seconds (12.5), HH:MM:SS.mmm or a frame number "
                          "with an f suffix (300f)") from None
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{option} {text!r}: must be a time >= 0")
    return TimeSpec(v)


def warmup_frames(config: RestoreConfig) -> int:
    """Frames to analyse before a range so tracking and smoothing match a run from frame 0.

    The smoother says how much history it needs (``LandmarkSmoother.warmup``: the polynomial window, or
    the RTS filter's decaying memory); the landmarks there must already be in steady state, which needs
    the tracker to have seen a gap of ``max_misses`` detections end, the constant-velocity prediction
    window (``max_extrapolate``) and enough matches for the velocity EMA to forget where it started.
    Rounded up to whole detector batches so detection batches fall on the same frames as in a whole run."""
    from .faces.smooth import LandmarkSmoother
    t, d = config.track, config.detect
    smoother = LandmarkSmoother(config=config.smooth)
    back = getattr(smoother, "warmup", 2 * max(config.smooth.lookahead, 2) if smoother.enabled else 0)
    a = t.velocity_smoothing
    converge = 1 if a <= 0 else math.ceil(math.log(_CONVERGED) / math.log(a))
    n = back + (t.max_misses + 1 + converge) * d.every + t.max_extrapolate
    unit = d.batch * d.every
    return -(-n // unit) * unit


def lookahead_frames(config: RestoreConfig) -> int:
    """Frames after a range the smoother looks at (its output delay)."""
    from .faces.smooth import LandmarkSmoother
    return LandmarkSmoother(config=config.smooth).delay


def resolve(index: FrameIndex, config: RestoreConfig, *, start: TimeSpec | None = None,
            end: TimeSpec | None = None, keep_outside: bool = False) -> FrameRange:
    """A user's --start/--end on a scanned video -> frame numbers (by pts: VFR-exact)."""
    n = len(index)

    def frame(spec: TimeSpec | None, default: int) -> int:
        if spec is None:
            return default
        if spec.frames:
            return min(int(spec.value), n)
        return index.frame_at(index.time_s(0) + spec.value)   # times count from the first frame

    a, b = frame(start, 0), frame(end, n)
    if a >= n:
        raise ConfigError(f"--start is past the end of the video ({n} frames, "
                          f"{index.time_s(n - 1) - index.time_s(0):.3f} s)")
    if b <= a:
        raise ConfigError("--end must be after --start")
    return chunk_range(index, config, a, b, keep_outside=keep_outside)


def chunk_range(index: FrameIndex, config: RestoreConfig, start: int, end: int, *,
                keep_outside: bool = False, seam: int = 0) -> FrameRange:
    """Frames ``[start, end)`` of a scanned video with warm-up, look-ahead and seek position."""
    w = warmup_frames(config) if start > 0 else 0
    first = max(start - w, 0)
    return FrameRange(start=start, end=None if end >= len(index) else end, warmup=start - first,
                      lookahead=lookahead_frames(config), keep_outside=keep_outside,
                      seek_pts=None if keep_outside or first == 0 else index.pts[first],
                      keyframe_pts=None if keep_outside or first == 0 else index.keyframe_before(first),
                      seam=seam)


class RangeGate:
    """What the pipeline does with frame ``i`` of a run over ``frame_range`` (None: whole video)."""

    def __init__(self, frame_range: FrameRange | None, reader: Any = None) -> None:
        """``reader``: a VideoReader, sought to the range's first analysed frame."""
        self.r = frame_range
        self.seam = 0 if frame_range is None else frame_range.seam
        if reader is not None and frame_range is not None and frame_range.seek_pts is not None:
            reader.seek(frame_range.seek_pts, index=frame_range.first_analysed,
                        keyframe_pts=frame_range.keyframe_pts)
        self.seam_faces: dict[int, tuple[tuple[int, tuple[float, ...]], ...]] = {}
        self.analysed = 0

    def analyse(self, i: int) -> bool:
        r = self.r
        if r is None:
            return True
        last = None if r.end is None else r.end + r.lookahead
        return i >= r.first_analysed and (last is None or i < last)

    def write(self, i: int) -> bool:
        return self.r is None or self.r.keep_outside or self.restore(i)

    def restore(self, i: int) -> bool:
        r = self.r
        return r is None or (i >= r.start and (r.end is None or i < r.end))

    def done(self, i: int) -> bool:
        """Nothing at or after frame ``i`` is needed."""
        stop = None if self.r is None else self.r.stop
        return stop is not None and i >= stop

    def feed(self, analyser: Any, frame: Any, work: Callable) -> Iterator:
        """Push ``frame`` into the analyser when it is in the analysed span, else flush the analyser
        and pass the frame on unrestored; yields what is to be written (see :meth:`filter`)."""
        if self.analyse(frame.index):
            yield from self.filter(analyser.push(frame), work)
        else:
            yield from self.filter(analyser.flush() + [work(frame=frame, alignments=(), crops=None)], work)

    def filter(self, items: list, work: Callable) -> Iterator:
        """Analysed frames (items with ``.frame`` and ``.alignments``) -> those written: warm-up and
        look-ahead dropped, frames outside the range passed on unrestored (``work(frame=..., ...)``)."""
        for w in items:
            self.record(w.frame.index, w.alignments)
            if not self.restore(w.frame.index):
                if not self.write(w.frame.index):
                    continue
                w = work(frame=w.frame, alignments=(), crops=None)
            yield w

    def record(self, i: int, alignments: Sequence[Alignment]) -> None:
        """Keep the faces of frames near the edges so chunks can match their track IDs."""
        self.analysed += 1
        r = self.r
        if r is None or not self.seam:
            return
        near_start = r.start - self.seam <= i < r.start + self.seam
        near_end = r.end is not None and r.end - self.seam <= i < r.end
        if near_start or near_end:
            self.seam_faces[i] = tuple((a.track_id, tuple(round(float(v), 3) for v in a.matrix.ravel()))
                                       for a in alignments)
