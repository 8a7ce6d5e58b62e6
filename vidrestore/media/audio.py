"""Carry the source's audio and subtitle streams into the output container, lazily and in time order.

Every audio stream is copied packet by packet (no re-encoding) when the output container can hold its
codec; otherwise it is decoded and re-encoded (AAC, or Opus for WebM) and ``"audio re-encoded"`` is
counted. Subtitle streams are copied when the container takes their codec, else dropped with
``"subtitles dropped"``. Cover-art pictures (``"cover art dropped"``) and data streams are not carried
over: re-muxing must not turn a picture into a second video stream.

Packets are read from a second handle on the source file only as far as the video has progressed
(:meth:`AudioMuxer.mux_until`), so memory does not grow with the length of the audio; the muxer's own
interleaving queue keeps the file ordered.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av

# Audio codecs each output format takes as-is (without relying on unusual muxer extensions).
_PCM = {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_s8"}
AUDIO_COPY_OK: dict[str, set[str] | None] = {
    "mp4": {"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3"} | _PCM,
    "matroska": None,   # None = whatever the muxer reports as supported
    "webm": {"opus", "vorbis"},
    "mpegts": {"aac", "mp3", "mp2", "ac3", "eac3", "opus"},
    "avi": {"mp3", "mp2", "ac3", "aac"} | _PCM,
}
SUBTITLE_COPY_OK: dict[str, set[str]] = {
    "mp4": {"mov_text"}, "mov": {"mov_text"}, "matroska": {"subrip", "srt", "ass", "ssa", "webvtt",
                                                           "hdmv_pgs_subtitle", "dvd_subtitle"},
    "webm": {"webvtt"}, "mpegts": {"dvb_subtitle"}, "avi": set(),
}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_DROP_STREAM_META = {"handler_name", "vendor_id", "encoder", "duration", "_statistics_tags",
                     "_statistics_writing_app", "_statistics_writing_date_utc", "bps", "number_of_frames",
                     "number_of_bytes"}


def _copy_ok(fmt: str, codec: str, container: av.container.OutputContainer) -> bool:
    allowed = AUDIO_COPY_OK.get(fmt)
    if allowed is None:
        return codec in container.supported_codecs
    return codec in allowed


def stream_metadata(src: av.stream.Stream) -> dict[str, str]:
    return {k: v for k, v in src.metadata.items()
            if k.lower() not in _DROP_STREAM_META and not k.lower().startswith("_statistics")}


class _Reencoder:
    """Decode one source audio stream and encode it to ``codec`` in the output."""

    def __init__(self, src: av.audio.AudioStream, out: av.container.OutputContainer, codec: str) -> None:
        self.src = src
        rate = src.codec_context.sample_rate or 48000
        if codec == "libopus":
            rate = 48000
        layout = src.codec_context.layout.name if src.codec_context.layout else ""
        if not layout or "channels" in layout:  # unordered layout ("2 channels"): use the default order
            layout = _DEFAULT_LAYOUTS.get(src.codec_context.channels or 2, "stereo")
        self.stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = self.stream.codec_context.codec.audio_formats[0].name
        self.stream.codec_context.format = fmt
        self.stream.codec_context.time_base = Fraction(1, rate)
        self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self.out = out
        self.rate = rate
        self.next_pts: int | None = None  # in 1/rate units, starting at the source's first audio time

    def feed(self, packet: av.Packet | None) -> int:
        try:
            frames = self.src.decode(packet)
        except av.FFmpegError:
            return 0
        n = 0
        for f in frames:
            if self.next_pts is None:
                start = f.pts * f.time_base if (f.pts is not None and f.time_base) else 0
                self.next_pts = round(start * self.rate)
            f.pts = None
            for rf in self.resampler.resample(f):
                n += self._encode(rf)
        return n

    def _encode(self, frame: av.AudioFrame | None) -> int:
        if frame is not None:
            frame.pts = self.next_pts or 0
            frame.time_base = Fraction(1, self.rate)
            self.next_pts = frame.pts + frame.samples
        packets = self.stream.encode(frame)
        for p in packets:
            self.out.mux(p)
        return len(packets)

    def finish(self) -> int:
        n = self.feed(None)
        for rf in self.resampler.resample(None):
            n += self._encode(rf)
        return n + self._encode(None)


class AudioMuxer:
    """Set up output streams for ``source``'s audio/subtitles and feed their packets in time order."""

    def __init__(self, source: Path, out: av.container.OutputContainer, out_format: str,
                 warn: Callable[[str], None]) -> None:
        self._out = out
        self._warn = warn
        self.packets = 0
        self._src = (source if isinstance(source, av.container.InputContainer)   # a pipe reader's own
                     else av.open(str(source), "r", metadata_errors="replace"))
        videos = [v for v in self._src.streams.video
                  if not (v.disposition & av.stream.Disposition.attached_pic)]
        self.video_metadata = stream_metadata(videos[0]) if videos else {}
        if len(videos) < len(self._src.streams.video):
            warn("cover art dropped")
        self._copy: dict[int, av.stream.Stream] = {}
        self._encode: dict[int, _Reencoder] = {}
        keep: list[av.stream.Stream] = []
        for s in self._src.streams.audio:
            codec = s.codec_context.name
            if _copy_ok(out_format, codec, out):
                o = out.add_stream_from_template(s)
                self._copy[s.index] = o
            else:
                target = "libopus" if out_format == "webm" else "aac"
                self._encode[s.index] = _Reencoder(s, out, target)
                o = self._encode[s.index].stream
                warn("audio re-encoded")
            o.metadata.update(stream_metadata(s))
            _copy_disposition(s, o)
            keep.append(s)
        for s in self._src.streams.subtitles:
            if s.codec_context.name in SUBTITLE_COPY_OK.get(out_format, set()):
                o = out.add_stream_from_template(s)
                o.metadata.update(stream_metadata(s))
                _copy_disposition(s, o)
                self._copy[s.index] = o
                keep.append(s)
            else:
                warn("subtitles dropped")
        self.stream_count = len(keep)
        self._packets: Iterator[av.Packet] | None = self._src.demux(*keep) if keep else None
        self._pending: av.Packet | None = None

    def _next(self) -> av.Packet | None:
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        while self._packets is not None:
            try:
                p = next(self._packets)
            except StopIteration:
                self._packets = None
                return None
            except av.FFmpegError:
                self._warn("audio read errors")
                continue
            if p.size == 0 and p.stream.index in self._copy:
                continue  # demux's final flush packet: nothing to copy
            return p
        return None

    def _mux(self, p: av.Packet) -> None:
        idx = p.stream.index
        if idx in self._encode:
            self.packets += self._encode[idx].feed(p if p.size else None)
            return
        if p.dts is None and p.pts is None:
            self._warn("audio packets without timestamps dropped")
            return
        p.stream = self._copy[idx]
        self._out.mux(p)
        self.packets += 1

    def mux_until(self, t: float, *, before: bool = False) -> None:
        """Mux every packet whose time is at or before ``t`` seconds (source time; strictly before it
        with ``before``)."""
        self._advance(t, before=before, mux=True)

    def drop_until(self, t: float) -> None:
        """Skip (not mux) every packet that starts before ``t``: the output begins at a range's start."""
        self._advance(t, before=True, mux=False)

    def _advance(self, t: float, *, before: bool, mux: bool) -> None:
        while True:
            p = self._next()
            if p is None:
                return
            ts = p.dts if p.dts is not None else p.pts
            if ts is not None and p.time_base is not None and (
                    float(ts * p.time_base) >= t if before else float(ts * p.time_base) > t):
                self._pending = p
                return
            if mux:
                self._mux(p)

    def finish(self, *, until: float | None = None) -> None:
        """Mux everything left (audio longer than the video is kept) - or, with ``until``, what starts
        before that time (a range: the audio under its frames) - and flush re-encoders."""
        if until is None:
            self.mux_until(float("inf"))
        else:
            self.mux_until(until, before=True)
        for enc in self._encode.values():
            self.packets += enc.finish()
        self.close()

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


def _copy_disposition(src: av.stream.Stream, dst: av.stream.Stream) -> None:
    try:
        dst.disposition = src.disposition
    except (AttributeError, TypeError, ValueError):
        pass
