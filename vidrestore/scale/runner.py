"""Many inputs, many workers: ``restore_videos`` and the Ray driver behind ``--workers``/``--ray-address``.

With one worker and no cluster every input is restored in this process, one after the other (today's
single-process run). Otherwise each video is cut into chunks (:mod:`.plan`), chunks are restored by
Ray actors that keep their model loaded (:mod:`.worker`), finished chunks are recorded in the input's
job folder (:mod:`.jobdir`) and joined in order into the output (:mod:`.join`). This module knows chunks,
files and workers - never the pipeline's stages.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import RestoreConfig
from ..errors import BackendUnavailable, ConfigError, VidRestoreError
from .plan import Chunk
from .summary import BatchReport, InputResult

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                  ".mpeg", ".wmv", ".flv", ".3gp")
DEFAULT_CHUNK_SECONDS = 90.0


def output_pairs(inputs: Sequence[str | Path], out: str | Path) -> list[tuple[Path, Path]]:
    """Inputs (files and folders) -> (input, output) pairs. Several inputs or a folder: ``out`` is a
    folder (created), outputs named after their inputs."""
    from ..media.output import VIDEO_FORMATS
    from ..media.image import IMAGE_EXTS
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        else:
            files.append(p)
    if not files:
        raise ConfigError(f"no video files in {', '.join(map(str, inputs))}")
    out = Path(out)
    if len(files) == 1 and not any(Path(p).is_dir() for p in inputs):
        return [(files[0], out)]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: with several inputs or a folder, -o must be a folder")
    out.mkdir(parents=True, exist_ok=True)
    pairs, used = [], set()
    for f in files:
        ext = f.suffix.lower() if f.suffix.lower() in VIDEO_FORMATS or f.suffix.lower() in IMAGE_EXTS else ".mp4"
        name = f.stem + ext
        if name in used:
            name = f"{f.stem}_{f.suffix.lstrip('.')}{ext}"
        used.add(name)
        pairs.append((f, out / name))
    return pairs


def restore_videos(inputs: Sequence[str | Path], out: str | Path, config: RestoreConfig = RestoreConfig(),
                   *, workers: int = 1, ray_address: str | None = None,
                   chunk_seconds: float = DEFAULT_CHUNK_SECONDS, job_dir: str | Path | None = None,
                   resume: bool = False, progress: Callable[[Any], None] | None = None) -> BatchReport:
    """Restore every input into ``out`` (a file for one input, else a folder); never raises for one
    broken input: its failure is in the report (``BatchReport.exit_code`` non-zero)."""
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    if chunk_seconds <= 0:
        raise ConfigError("--chunk-seconds must be > 0")
    pairs = output_pairs(inputs, out)
    t0 = time.perf_counter()
    if workers == 1 and ray_address is None:
        results = [_single(i, o, config, progress) for i, o in pairs]
        return BatchReport(inputs=tuple(results), workers=1, chunks=0, chunks_resumed=0, retries=0,
                           stage_seconds={}, wall_seconds=time.perf_counter() - t0)
    from .driver import run_chunked
    return run_chunked(pairs, config, workers=workers, ray_address=ray_address,
                       chunk_seconds=chunk_seconds, job_dir=job_dir, resume=resume, progress=progress,
                       t0=t0)


def _single(input: Path, output: Path, config: RestoreConfig, progress) -> InputResult:
    from ..pipeline import restore_video
    try:
        rep = restore_video(input, output, config, progress=progress)
    except VidRestoreError as e:
        return InputResult(input=input, output=None, ok=False, error=str(e), exit_code=e.exit_code)
    return InputResult(input=input, output=output, ok=True, frames=rep.frames_written,
                       faces_restored=rep.faces_restored,
                       tracks=tuple(dataclasses.asdict(t) for t in rep.tracks), warnings=rep.warnings)


def import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("ray is not installed: pip install 'vidrestore[scale]' "
                                 "(needed for --workers > 1 and --ray-address)") from None
    return ray


@dataclass
class InputState:
    """Driver-side bookkeeping of one input while its chunks run."""
    input: Path
    output: Path
    chunks: list[Chunk] = field(default_factory=list)
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    resumed: int = 0
    error: VidRestoreError | None = None
    job: Any = None                 # JobDir
    index: Any = None               # FrameIndex
    info: Any = None                # VideoInfo
    direct: bool = False            # one task writes the output itself (still image, uncountable frames)
    result: InputResult | None = None
