"""Join finished chunks into the output: in order, audio/subtitles muxed once over the whole timeline,
written to a temporary file renamed into place only when complete (:class:`VideoWriter`).

* Intra-only output codecs (:data:`vidrestore.scale.plan.STREAM_COPY_CODECS`): the chunks were encoded
  with the output's codec and settings; their packets are copied (no re-encode).
* Every other codec: the chunks are lossless FFV1; their frames are decoded and encoded once by the
  same writer a single-process run uses, so the output is the single-process output.

Each frame gets the source's timestamp from the frame index (frame ``start + i`` of a chunk), so frame
count and per-frame times are the single-process run's (VFR, odd start times, audio offsets).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import av

from ..config import RestoreConfig
from ..errors import EncodeError
from ..media.decode import VideoReader, probe
from ..media.encode import VideoWriter
from ..media.index import FrameIndex
from ..types import VideoInfo
from .plan import STREAM_COPY_CODECS, Chunk


def join_chunks(input: Path, output: Path, chunks: list[tuple[Chunk, Path]], *, index: FrameIndex,
                info: VideoInfo, config: RestoreConfig) -> dict[str, int]:
    copy = config.encode.codec in STREAM_COPY_CODECS
    first = probe(chunks[0][1])
    if (first.width, first.height) != (info.width, info.height):     # --upscale: the chunks' size
        w, h = first.width, first.height
        sw, sh = (h, w) if int(info.rotation) % 180 else (w, h)
        info = dataclasses.replace(info, width=w, height=h, stored_width=sw, stored_height=sh)
    with VideoWriter(output, info=info, source=input, config=config.encode,
                     overwrite=config.overwrite) as writer:
        for chunk, path in chunks:
            n = _copy(writer, chunk, path, index) if copy else _encode(writer, chunk, path, index)
            if n != chunk.frames:
                raise EncodeError(f"chunk {chunk.number} ({path.name}) has {n} frames, "
                                  f"expected {chunk.frames}", path=output)
    return dict(writer.stats.warnings)


def _copy(writer: VideoWriter, chunk: Chunk, path: Path, index: FrameIndex) -> int:
    n = 0
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if not p.size:
                continue
            if chunk.start + n >= chunk.end:
                return n + 1
            writer.copy_packet(p, pts=index.pts[chunk.start + n])
            n += 1
    return n


def _encode(writer: VideoWriter, chunk: Chunk, path: Path, index: FrameIndex) -> int:
    n = 0
    with VideoReader(path) as r:
        for f in r:
            i = chunk.start + n
            if i >= chunk.end:
                return n + 1
            writer.write(dataclasses.replace(f, index=i, pts=index.pts[i]))
            n += 1
    return n
