"""Resilient, streaming video/image decoding with PyAV into upright RGB frames.

What a :class:`VideoReader` guarantees:

* frames are ``(H, W, 3) uint8`` RGB, upright: the stream's display matrix (``VideoFrame.rotation``,
  counter-clockwise degrees) is applied with ``np.rot90(img, k=(rotation // 90) % 4)``;
* YUV is converted with the frame's own matrix and range (BT.709 HD, full-range ``yuvj*``/JPEG,
  BT.2020, 10/12-bit sources scaled to 8 bits). Unspecified matrices follow the usual player rule:
  BT.709 when the stored frame is at least 1280 wide or 720 high, BT.601 below; unspecified ranges
  are limited ("tv") except for ``yuvj*`` formats. No tone mapping: HDR (PQ/HLG) code values are kept
  and the transfer/primaries are recorded in :class:`VideoInfo`;
* every frame keeps its stored ``pts`` and the stream time base (VFR, non-zero or negative starts);
* packets are demuxed and decoded one by one: a packet the decoder rejects is skipped, counted in
  :attr:`VideoReader.stats` and the rest of the file is still delivered;
* sources with alpha (``yuva*``, ``rgba``, PNG) deliver ``Frame.alpha``;
* memory does not depend on the length of the input.

Still images (``image2`` and ``*_pipe`` demuxers: jpg, png, webp, ...) give ``VideoInfo.is_image``
and exactly one frame. The file type is decided by content, not by name: **a JPEG renamed to
``.mp4`` is treated as the still image it is** (FFmpeg probes it as ``jpeg_pipe``), so the caller
gets one frame and ``is_image=True``; writing it to a video extension gives a one-frame video.

Files that cannot be opened, have no video stream, or decode to zero frames raise
:class:`InputError` naming the file and the problem.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..config import DecodeConfig
from ..errors import InputError
from ..types import AudioStreamInfo, Frame, VideoInfo
from .pixels import (COLORSPACE_NAMES, PRIMARIES_NAMES, RANGE_NAMES, TRC_NAMES, conversion_matrix_name,
                     conversion_range, frame_to_rgb, frame_to_rgb48, has_alpha, to_8bit, upright)

IMAGE_FORMATS = ("image2",)  # plus every "*_pipe" demuxer (jpeg_pipe, png_pipe, webp_pipe, ...)
MAX_LOSS_ENTRIES = 20      # places of loss kept in DecodeStats.lost
_MAX_DEMUX_ERRORS = 8        # consecutive read errors before the rest of a damaged file is given up


@dataclass
class DecodeStats:
    """Live counters of one :class:`VideoReader` (mutated while iterating)."""
    frames: int = 0
    corrupt_packets: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    frames_lost: int = 0
    # where: (seconds or None if unknown, frames, cause), merged with the previous entry when adjacent;
    # at most MAX_LOSS_ENTRIES kept (frames_lost counts all)
    lost: list[tuple[float | None, int, str]] = field(default_factory=list)

    def warn(self, key: str, n: int = 1) -> None:
        self.warnings[key] = self.warnings.get(key, 0) + n

    def lose(self, t: float | None, n: int, cause: str) -> None:
        self.frames_lost += n
        if self.lost and self.lost[-1][2] == cause and t is not None and self.lost[-1][0] is not None \
                and cause == "corrupt packet" and t - self.lost[-1][0] < 1.0:
            self.lost[-1] = (self.lost[-1][0], self.lost[-1][1] + n, cause)
        elif len(self.lost) < MAX_LOSS_ENTRIES:
            self.lost.append((None if t is None else round(t, 3), n, cause))

    def loss_text(self) -> str:
        """e.g. "53 frames lost: 1 at 0.80 s (corrupt packet), 52 after 2.20 s (file ends early)"."""
        parts = []
        for t, n, cause in self.lost:
            where = "at unknown times" if t is None else \
                (f"after {t:.2f} s" if cause == "file ends early" else f"from {t:.2f} s")
            parts.append(f"{n} {where} ({cause})")
        more = ", ..." if sum(n for _, n, _ in self.lost) < self.frames_lost else ""
        return f"{self.frames_lost} frames lost: " + ", ".join(parts) + more


def _check_size(path: Path | str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise InputError(f"frame size {w}x{h} is over the limit of {max_pixels / 1e6:.0f} megapixels "
                         "(damaged header?)", path=path)


def _open(path: Path, threads: int, frame_threads: bool, max_pixels: int) -> tuple[av.container.InputContainer, av.video.VideoStream]:
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("is a folder, not a video or image file", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot be opened as video or image ({_short(e)})", path=path) from e
    return container, video_stream(container, path, threads=threads, frame_threads=frame_threads,
                                   max_pixels=max_pixels)


def video_stream(container: av.container.InputContainer, path: Path | str, *, threads: int,
                 frame_threads: bool, max_pixels: int) -> av.video.VideoStream:
    """The first real video stream of an open container (not a cover picture), checked - a decoder
    exists, the frame size is within ``max_pixels`` - and set to decode on ``threads`` threads; closes
    the container and raises InputError naming ``path`` otherwise. Files and pipes both open through it."""
    streams = [s for s in container.streams.video
               if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        container.close()
        raise InputError(f"has no video stream (streams: {kinds})", path=path)
    stream = streams[0]
    if stream.codec_context is None:   # e.g. a damaged sample description: FFmpeg found no decoder
        container.close()
        raise InputError("video stream cannot be decoded (unknown codec or damaged header)", path=path)
    try:
        _check_size(path, stream.codec_context.width or 0, stream.codec_context.height or 0, max_pixels)
    except InputError:
        container.close()
        raise
    stream.codec_context.thread_type = "AUTO" if frame_threads else "SLICE"
    stream.codec_context.thread_count = threads
    return stream


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


class VideoReader:
    """Streaming reader: ``with VideoReader(path) as r: for frame in r: ...``.

    The first frame is decoded at construction (to learn rotation, pixel format and colours), so a
    file that decodes to zero frames fails here with :class:`InputError`. Iterate once.
    """

    def __init__(self, path: str | Path, *, config: DecodeConfig = DecodeConfig()) -> None:
        self.path = Path(path)
        self.config = config
        self.stats = DecodeStats()
        self._container, self._stream = self._open_container()
        self._is_image = (self._container.format.name in IMAGE_FORMATS
                          or self._container.format.name.endswith("_pipe"))
        self._packets = 0
        self._raw = self._decode_raw()
        try:
            self._first = next(self._raw)
        except StopIteration:
            self.close()
            detail = f" ({self.stats.corrupt_packets} corrupt packets)" if self.stats.corrupt_packets else ""
            raise InputError(f"video stream decodes to zero frames{detail}", path=self.path) from None
        except InputError:
            self.close()
            raise
        self.info = self._make_info(self._first)
        self._iterated = False
        self._index0 = 0            # number of the first delivered frame (a range starts later)
        self._skip_before: int | None = None  # frames with a smaller pts are decoded and dropped

    def _open_container(self) -> tuple[av.container.InputContainer, av.video.VideoStream]:
        return _open(self.path, self.config.threads, self.config.frame_threads, self.config.max_pixels)

    def _on_other_packet(self, packet: av.Packet) -> None:
        """A demuxed packet of another stream (only streams named by :meth:`_other_streams`)."""

    def _other_streams(self) -> list[av.stream.Stream]:
        return []   # files: audio is read again from the file by the writer; pipes override this

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def seek(self, pts: int, *, index: int, keyframe_pts: int | None = None) -> None:
        """Start at the first frame whose pts is at or after ``pts``, numbered ``index`` (a range of
        the video, see :mod:`vidrestore.media.index`): seek to the keyframe at ``keyframe_pts`` (or
        before it) and decode forward, dropping the frames before ``pts``. Call before iterating."""
        if self._iterated or self._is_image:
            raise RuntimeError("seek() only before iterating a video")
        self._index0, self._skip_before = index, pts
        target = pts if keyframe_pts is None else min(keyframe_pts, pts)
        first = self._first.pts if self._first.pts is not None else self._first.dts
        if first is not None and first >= target:
            return                  # already there: the first decoded frame is not after the target
        for where in (target, None):
            if where is None:       # the keyframe index was wrong: decode from the very start
                self._container.seek(0, backward=True)
            else:
                self._container.seek(where, stream=self._stream, backward=True, any_frame=False)
            self._raw = self._decode_raw()
            self._first = next(self._raw, None)
            got = None if self._first is None else (self._first.pts if self._first.pts is not None
                                                     else self._first.dts)
            if got is not None and got <= pts:
                return
        if self._first is None:
            raise InputError(f"nothing decodes from pts {pts} on", path=self.path)

    # -- decoding ------------------------------------------------------------------------------
    def _decode_raw(self) -> Iterator[av.VideoFrame]:
        """Yield decoded frames, skipping packets the decoder rejects."""
        stream = self._stream
        demux = self._container.demux(stream, *self._other_streams())
        read_errors = 0
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as e:  # damaged container data: count, try to go on, then give up
                read_errors += 1
                self.stats.warn("read errors")
                if read_errors >= _MAX_DEMUX_ERRORS:
                    self.stats.warn(f"stopped reading after read error: {_short(e)}")
                    break
                continue
            read_errors = 0
            if packet.stream.index != stream.index:
                self._on_other_packet(packet)
                continue
            if packet.size:
                self._packets += 1
            try:
                frames = stream.decode(packet)
            except av.FFmpegError:
                self.stats.corrupt_packets += 1
                self.stats.warn("corrupt packets skipped")
                t = packet.pts if packet.pts is not None else packet.dts
                self.stats.lose(None if t is None else float(t * stream.time_base), 1, "corrupt packet")
                if self.config.strict:
                    raise InputError(f"{self.stats.loss_text()} (--strict)", path=self.path) from None
                if self.stats.corrupt_packets > self.config.max_corrupt_packets:
                    raise InputError(f"more than {self.config.max_corrupt_packets} corrupt packets, "
                                     "giving up", path=self.path) from None
                continue
            yield from frames
        try:  # flush the decoder (demux's final empty packet normally did it already)
            yield from stream.decode(None)
        except av.FFmpegError:
            pass

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("VideoReader can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        if self._container is None:
            return
        tb = self.info.time_base
        want_alpha = self.info.has_alpha
        frames: Iterator[av.VideoFrame] = iter([self._first]) if self._is_image else _chain(self._first, self._raw)
        high = self.config.full_depth and self.info.bit_depth > 8
        last_t = None
        for vf in frames:
            _check_size(self.path, vf.width, vf.height, self.config.max_pixels)
            pts = vf.pts if vf.pts is not None else vf.dts
            if self._skip_before is not None and pts is not None and pts < self._skip_before:
                continue            # before the range (decoded from its keyframe on)
            rot = vf.rotation or 0
            rgb_hi = None
            if high:   # 10/12/16-bit: keep a uint16 plane; the analysis gets its rounded 8-bit copy
                rgb_hi, alpha = frame_to_rgb48(vf, want_alpha=want_alpha)
                rgb_hi = upright(rgb_hi, rot)
                rgb = to_8bit(rgb_hi)
            else:
                rgb, alpha = frame_to_rgb(vf, want_alpha=want_alpha)
                rgb = upright(rgb, rot)
            yield Frame(index=self._index0 + self.stats.frames, pts=pts, time_base=tb, rgb=rgb,
                        alpha=upright(alpha, rot), rgb_hi=rgb_hi)
            self.stats.frames += 1
            last_t = None if pts is None else float(pts * tb)
        self._first = None
        if not self._is_image and self._skip_before is None:   # a range reads only part of the file
            self._count_missing(last_t)
            if self.config.strict and self.stats.frames_lost:
                raise InputError(f"{self.stats.loss_text()} (--strict)", path=self.path)

    def _count_missing(self, last_t: float | None) -> None:
        """Frames the file should have had but that never came out: the decoder dropped them
        (packets in, fewer frames out) or the file ends before its header says (truncation)."""
        s = self._stream
        dropped = self._packets - self.stats.corrupt_packets - self.stats.frames
        if dropped > 0:
            self.stats.lose(None, dropped, "dropped by the decoder")
        expected = s.frames or 0
        if not expected and s.duration and self.info.avg_rate and last_t is not None:
            start = float((s.start_time or 0) * s.time_base)
            gap = float(s.duration * s.time_base) + start - last_t - float(1 / self.info.avg_rate)
            if gap > 0.5:          # container durations are approximate: only a clear gap counts
                expected = self._packets + round(gap * float(self.info.avg_rate))
        ends_early = expected - max(self._packets, self.stats.frames)
        if ends_early > 0:
            self.stats.lose(last_t, ends_early, "file ends early")

    # -- info ------------------------------------------------------------------------------------
    def _make_info(self, vf: av.VideoFrame) -> VideoInfo:
        c, s = self._container, self._stream
        rotation = int(vf.rotation or 0)
        w, h = vf.width, vf.height
        if (rotation // 90) % 2:
            uw, uh = h, w
        else:
            uw, uh = w, h
        tb = Fraction(s.time_base) if s.time_base else Fraction(1, 25)
        rate = s.average_rate or s.guessed_rate or s.base_rate
        if c.duration is not None:
            duration = c.duration / av.time_base
        elif s.duration is not None:
            duration = float(s.duration * tb)
        else:
            duration = None
        fmt = vf.format
        audio = tuple(AudioStreamInfo(index=a.index, codec=a.codec_context.name,
                                      sample_rate=a.codec_context.sample_rate or None,
                                      channels=a.codec_context.channels or None,
                                      language=a.language)
                      for a in c.streams.audio)
        sar = s.sample_aspect_ratio or s.codec_context.sample_aspect_ratio
        matrix = None
        if not (fmt.is_rgb or fmt.name.startswith(("gray", "ya", "pal"))):
            matrix = conversion_matrix_name(vf.colorspace, w, h)
        return VideoInfo(
            path=self.path, container=c.format.name, codec=s.codec_context.name,
            width=uw, height=uh, stored_width=w, stored_height=h, rotation=rotation,
            time_base=tb, avg_rate=Fraction(rate) if rate else None,
            start_time_s=None if vf.pts is None else float(vf.pts * tb),
            duration_s=duration,
            frame_count_estimate=1 if self._is_image else (s.frames or None),
            pix_fmt=fmt.name, bit_depth=max(comp.bits for comp in fmt.components),
            color_range=RANGE_NAMES.get(vf.color_range), color_space=COLORSPACE_NAMES.get(vf.colorspace),
            color_primaries=PRIMARIES_NAMES.get(vf.color_primaries), color_trc=TRC_NAMES.get(vf.color_trc),
            has_alpha=has_alpha(fmt), sample_aspect_ratio=Fraction(sar) if sar else None,
            audio=audio, is_image=self._is_image, metadata=dict(c.metadata),
            decode_matrix=matrix,
            decode_range="pc" if conversion_range(vf.color_range, fmt.name) == 2 else "tv",
        )


def _chain(first: av.VideoFrame, rest: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    yield first
    yield from rest


def probe(path: str | Path, *, config: DecodeConfig = DecodeConfig()) -> VideoInfo:
    """Open ``path``, decode its first frame and describe it. Raises :class:`InputError`."""
    with VideoReader(path, config=config) as reader:
        return reader.info
