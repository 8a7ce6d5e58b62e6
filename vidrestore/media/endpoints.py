"""What an input or output path means: a file, standard input/output (``-``), or an image sequence.

The pipeline opens its reader and writer here and never asks which kind it got: every reader has
``info``, ``stats``, iteration over :class:`~vidrestore.types.Frame` and ``close()``; every writer
``write(frame)``, ``commit()``, ``abort()``, ``stats`` and the context-manager protocol.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..config import DecodeConfig, EncodeConfig
from ..errors import ConfigError, OutputError
from ..types import VideoInfo
from .pipe import PIPE_FORMATS, PipeReader, PipeWriter, is_stdio
from .sequence import (SequenceReader, SequenceWriter, check_sequence_output, is_sequence_input,
                       is_sequence_output)


def takes_audio(output: str | Path, encode: EncodeConfig) -> bool:
    """Whether ``output`` will carry the input's audio."""
    if not encode.copy_audio:
        return False
    if is_stdio(output):
        return PIPE_FORMATS.get(encode.format or "", "") not in ("", "yuv4mpegpipe")
    return not is_sequence_output(output)


def is_file(path: str | Path) -> bool:
    """A plain file path (not ``-``, not a sequence): something that can be opened again."""
    return not is_stdio(path) and not is_sequence_input(path)


def open_reader(input: str | Path, *, config: DecodeConfig, output: str | Path | None = None,
                encode: EncodeConfig = EncodeConfig()):
    if is_stdio(input):
        return PipeReader(config=config, keep_audio=output is not None and takes_audio(output, encode))
    if is_sequence_input(input):
        return SequenceReader(input, config=config)
    from .decode import VideoReader
    return VideoReader(input, config=config)


def check_target(output: str | Path, *, source: str | Path, encode: EncodeConfig, overwrite: bool) -> None:
    """Validate the output before any work (raises OutputError / ConfigError)."""
    if encode.format is not None and not is_stdio(output):
        raise ConfigError("-f/--format is for '-o -' (standard output) only; files take their "
                          "container from the extension")
    if is_stdio(output):
        if encode.format is None:
            raise ConfigError("'-o -' needs -f y4m|nut|matroska|mpegts (the stream's format)")
        if encode.format not in PIPE_FORMATS:
            raise ConfigError(f"-f {encode.format}: use y4m, nut, matroska or mpegts")
        if os.isatty(1):
            raise OutputError("standard output is a terminal; pipe it into another program",
                              path="<stdout>")
        return
    if is_sequence_output(output):
        check_sequence_output(output, source=source, overwrite=overwrite)
        return
    from .output import check_output_path
    check_output_path(output, source=Path(source) if is_file(source) else None, overwrite=overwrite)


def open_writer(output: str | Path, *, info: VideoInfo, reader, source: str | Path,
                config: EncodeConfig, overwrite: bool, trim_audio: bool = False):
    """The writer for ``output``; ``trim_audio``: the frames are a range of the source, so is the audio."""
    audio_from = reader.audio_muxer if isinstance(reader, PipeReader) else None
    src = Path(source) if is_file(source) else None
    if is_stdio(output):
        return PipeWriter(info=info, format=config.format or "", config=config, source=src,
                          audio_from=audio_from, trim_audio=trim_audio)
    if is_sequence_output(output):
        return SequenceWriter(output, info=info, source=source, config=config, overwrite=overwrite)
    from .encode import VideoWriter
    return VideoWriter(output, info=info, source=src, config=config, overwrite=overwrite,
                       audio_from=audio_from, trim_audio=trim_audio)


def probe_output(output: str | Path) -> VideoInfo | None:
    """Describe what was written (None for a pipe or when it cannot be read back)."""
    try:
        if is_stdio(output):
            return None
        if is_sequence_output(output):
            from .sequence import sequence_target
            t = sequence_target(output, None)
            spec = t.folder / t.pattern if "%" in Path(str(output)).name else t.folder
            with SequenceReader(spec) as r:
                return r.info
        from .decode import probe
        return probe(output)
    except Exception:
        return None
