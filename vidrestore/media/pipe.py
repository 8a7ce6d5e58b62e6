"""Standard input and output as video: ``vidrestore - -o - -f y4m`` between two other programs.

:class:`PipeReader` and :class:`PipeWriter` have the interface of
:class:`~vidrestore.media.decode.VideoReader` / :class:`~vidrestore.media.encode.VideoWriter`, so the
pipeline does not know whether it reads a file or a pipe. What differs:

* **Input** ``-``: FFmpeg probes the stream (YUV4MPEG, NUT, Matroska, MPEG-TS, ...; anything FFmpeg can
  read without seeking). No frame count, no duration. Audio and subtitles cannot be read a second time
  from a pipe, so when the output takes audio the reader keeps the audio packets it demuxes beside the
  video in a queue the writer drains as the video reaches their time: memory is bounded by how far
  decoding runs ahead of encoding (the pipeline's queues), not by the length of the stream.
* **Output** ``-`` with ``-f y4m|nut|matroska|mpegts`` (see :data:`PIPE_FORMATS`): frames are written
  upright (a pipe format has no rotation tag). ``y4m`` carries raw video only (``yuv420p`` for 8-bit
  sources, ``yuv444p10le/12le/16le`` for deeper ones, or ``--pix-fmt``; its audio is dropped with a
  warning); ``nut``/``matroska``/``mpegts`` encode with ``--codec`` and carry audio.
* **Not atomic**: a pipe cannot be taken back. On an error the stream simply ends where it got to,
  the process prints one line on stderr and exits non-zero; the next program sees a short (for y4m
  still well-formed up to the last whole frame) stream. Nothing but the stream is written to stdout.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av

from ..config import DecodeConfig, EncodeConfig
from ..errors import InputError, OutputError
from ..types import Frame, VideoInfo
from .audio import AudioMuxer
from .decode import VideoReader, _short, video_stream
from .encode import VideoWriter

STDIO = "-"
PIPE_FORMATS = {"y4m": "yuv4mpegpipe", "yuv4mpegpipe": "yuv4mpegpipe", "nut": "nut",
                "matroska": "matroska", "mkv": "matroska", "mpegts": "mpegts"}
_STDIN_NAME = "<stdin>"
_STDOUT_NAME = "<stdout>"


def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


class PipeReader(VideoReader):
    """Read video from a file descriptor (standard input by default).

    ``keep_audio``: demux the audio streams too and keep their packets for :meth:`audio_muxer` (only
    when a writer will drain them; otherwise they would pile up).
    """

    def __init__(self, *, config: DecodeConfig = DecodeConfig(), fd: int = 0,
                 keep_audio: bool = False) -> None:
        self._fd = fd
        self._keep_audio = keep_audio
        self._audio_streams: list[av.stream.Stream] = []
        self._audio_packets: deque[av.Packet] = deque()
        super().__init__(_STDIN_NAME if fd == 0 else f"<fd {fd}>", config=config)
        self.path = Path(STDIO)
        self.info = replace(self.info, path=Path(STDIO), duration_s=None, frame_count_estimate=None)

    def _open_container(self):
        try:
            container = av.open(f"pipe:{self._fd}", mode="r", metadata_errors="replace")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot be read as video ({_short(e)})", path=_STDIN_NAME) from e
        stream = video_stream(container, _STDIN_NAME, threads=self.config.threads,
                              frame_threads=self.config.frame_threads, max_pixels=self.config.max_pixels)
        if self._keep_audio:
            self._audio_streams = list(container.streams.audio)
        return container, stream

    def _other_streams(self) -> list[av.stream.Stream]:
        return self._audio_streams

    def _on_other_packet(self, packet: av.Packet) -> None:
        if packet.size:
            self._audio_packets.append(packet)

    def audio_muxer(self, out: av.container.OutputContainer, out_format: str, warn) -> AudioMuxer | None:
        """An :class:`AudioMuxer` fed from this reader's queued audio packets (None without audio)."""
        if not self._audio_streams:
            return None
        return _QueuedAudio(self, out, out_format, warn)


class _QueuedAudio(AudioMuxer):
    """:class:`AudioMuxer` whose packets come from a :class:`PipeReader`'s queue, not a second handle."""

    def __init__(self, reader: PipeReader, out, out_format: str, warn) -> None:
        self._reader = reader
        super().__init__(reader._container, out, out_format, warn)
        self._wanted = set(self._copy) | set(self._encode)
        self._packets = None

    def _next(self) -> av.Packet | None:
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        queue = self._reader._audio_packets
        while queue:
            p = queue.popleft()
            if p.stream.index in self._wanted:
                return p
        return None

    def close(self) -> None:
        self._src = None          # the reader's container: the reader closes it


class PipeWriter(VideoWriter):
    """Write a stream to a file descriptor (standard output by default) in ``format``."""

    def __init__(self, *, info: VideoInfo, format: str, config: EncodeConfig = EncodeConfig(),
                 source: Path | None = None, audio_from=None, fd: int = 1, trim_audio: bool = False) -> None:
        if format not in PIPE_FORMATS:
            raise OutputError(f"cannot stream format '{format}' to a pipe (use -f "
                              f"{'|'.join(('y4m', 'nut', 'matroska', 'mpegts'))})", path=_STDOUT_NAME)
        self.path = Path(_STDOUT_NAME)   # what error messages name
        self._ext = ""
        self._tmp = None
        # a pipe format has no rotation tag: frames go out upright
        info = replace(info, rotation=0, stored_width=info.width, stored_height=info.height)
        fmt = PIPE_FORMATS[format]
        self._source_tb = info.time_base
        if fmt == "yuv4mpegpipe":
            # raw frames; YUV4MPEG's header rate is the stream time base: one tick per frame
            config = replace(config, codec="wrapped_avframe", pix_fmt=config.pix_fmt or _y4m_pix(info))
            rate = info.avg_rate or Fraction(25)
            info = replace(info, time_base=1 / Fraction(rate))
        y4m_audio = fmt == "yuv4mpegpipe" and bool(info.audio) and config.copy_audio
        if fmt == "yuv4mpegpipe":
            config = replace(config, copy_audio=False)
        self._init_state(info, config, audio_from, trim_audio)
        self._format = fmt
        if y4m_audio:
            self.stats.warn("audio dropped (y4m carries video only)")
        if source is not None and is_stdio(source):
            source = None
        self._start(f"pipe:{fd}", source)

    def write(self, frame: Frame) -> None:
        if frame.pts is not None and frame.time_base != self.info.time_base:
            pts = round(frame.pts * frame.time_base / self.info.time_base)
            frame = replace(frame, pts=pts, time_base=self.info.time_base)
        super().write(frame)


def _y4m_pix(info: VideoInfo) -> str:
    if info.bit_depth <= 8:
        return "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
    depth = 10 if info.bit_depth <= 10 else (12 if info.bit_depth <= 12 else 16)
    return f"yuv444p{depth}le"
