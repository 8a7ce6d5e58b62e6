"""Where every frame of a video is, without decoding it: the presentation timestamps of all video
packets (demuxed only) and those of the keyframes, so a range can start at any frame.

Frame ``i`` of a :class:`FrameIndex` is the ``i``-th frame in presentation order, the same number the
full decode gives it (:attr:`vidrestore.types.Frame.index`) as long as every packet decodes to one
frame. Files whose packets do not (damaged packets the decoder skips, packets without timestamps) are
reported by :attr:`FrameIndex.exact` ``False``; callers then run them as one piece.
"""
from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError


@dataclass(frozen=True)
class FrameIndex:
    pts: tuple[int, ...]            # presentation timestamps of all frames, increasing
    keyframes: tuple[int, ...]      # presentation timestamps of the keyframes, increasing
    time_base: Fraction             # of the video stream
    exact: bool                     # every packet had a timestamp and the timestamps are distinct

    def __len__(self) -> int:
        return len(self.pts)

    def time_s(self, i: int) -> float:
        return float(self.pts[i] * self.time_base)

    def frame_at(self, seconds: float) -> int:
        """First frame whose time is at or after ``seconds`` (len(self) when past the end)."""
        return bisect.bisect_left(self.pts, seconds / self.time_base - Fraction(1, 10 ** 6))

    def keyframe_before(self, i: int) -> int:
        """pts of the last keyframe at or before frame ``i`` (the first frame when none is)."""
        k = bisect.bisect_right(self.keyframes, self.pts[i]) - 1
        return self.keyframes[k] if k >= 0 else self.pts[0]

    def digest(self) -> str:
        """SHA-256 over the timestamps: two files with another frame layout never share it."""
        h = hashlib.sha256(f"{self.time_base}:".encode())
        h.update(",".join(map(str, self.pts)).encode())
        return h.hexdigest()


def scan_frames(path: str | Path) -> FrameIndex:
    """Demux (no decoding) the first video stream of ``path``. Raises :class:`InputError`."""
    path = Path(path)
    try:
        container = av.open(str(path), "r", metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot be opened as video ({' '.join(str(e).split())[:200]})", path=path) from e
    try:
        streams = [s for s in container.streams.video
                   if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            raise InputError("has no video stream", path=path)
        stream = streams[0]
        pts: list[int] = []
        keys: list[int] = []
        exact = True
        try:
            for p in container.demux(stream):
                if not p.size:
                    continue
                t = p.pts if p.pts is not None else p.dts
                if t is None:
                    exact = False
                    continue
                pts.append(t)
                if p.is_keyframe:
                    keys.append(t)
        except av.FFmpegError:
            exact = False
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 25)
    finally:
        container.close()
    pts.sort()
    keys.sort()
    if len(set(pts)) != len(pts):
        exact = False
    return FrameIndex(pts=tuple(pts), keyframes=tuple(keys), time_base=tb, exact=exact and bool(pts))
