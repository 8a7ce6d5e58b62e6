"""Ray actors: a chunk worker that loads the model once and restores chunk after chunk, and a progress
counter every worker reports to (one progress bar across all workers).

Both are plain classes; :mod:`vidrestore.scale.runner` turns them into actors with ``ray.remote``
(``num_gpus=1`` per GPU worker, ``num_cpus=threads`` per CPU worker, ``max_restarts`` and
``max_task_retries`` so a chunk whose worker died is run again on the restarted worker).
A worker knows chunks and files, not stages: it calls :func:`vidrestore.pipeline.restore_video` with a
:class:`vidrestore.ranges.FrameRange`.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RestoreConfig
from ..ranges import FrameRange


@dataclass(frozen=True)
class ChunkJob:
    input: Path
    output: Path                     # the chunk file in the job folder (written atomically)
    attempts_dir: Path | None        # one empty file per attempt is made here (retries are counted)
    number: int
    frame_range: FrameRange | None   # None: the whole input, straight into the output
    config: RestoreConfig            # chunk settings: intermediate codec, no audio, overwrite


class ProgressCounter:
    """Frames written by all workers, for the driver's progress bar."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def get(self) -> int:
        return self.frames


class ChunkWorker:
    """Holds one backend and detector (loaded once) and restores chunks with them."""

    def __init__(self, config: RestoreConfig, *, threads: int = 0, progress: Any = None) -> None:
        import torch

        from ..pipeline import Restorer
        if threads:
            torch.set_num_threads(threads)
            config = dataclasses.replace(
                config, model=dataclasses.replace(config.model, threads=threads),
                detect=dataclasses.replace(config.detect, threads=threads),
                decode=dataclasses.replace(config.decode, threads=threads),
                encode=dataclasses.replace(config.encode, threads=threads))
        self.threads = threads
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.restorer = Restorer(config)          # the network (and engine/calibration cache) and detector
        self.progress = progress

    def ping(self) -> str:
        return self.name

    def run(self, job: ChunkJob) -> dict[str, Any]:
        from ..pipeline import restore_video
        if job.attempts_dir is not None:
            (job.attempts_dir / f"chunk_{job.number:04d}.{socket.gethostname()}.{os.getpid()}").touch()
        config = job.config
        if self.threads:
            config = dataclasses.replace(
                config, model=dataclasses.replace(config.model, threads=self.threads),
                detect=dataclasses.replace(config.detect, threads=self.threads),
                encode=dataclasses.replace(config.encode, threads=self.threads))
        sent = [0, time.monotonic()]

        def progress(p) -> None:
            now = time.monotonic()
            if self.progress is not None and now - sent[1] > 0.3:
                self.progress.add.remote(p.frames_done - sent[0])
                sent[:] = [p.frames_done, now]

        r = self.restorer
        rep = restore_video(job.input, job.output, config, backend=r.backend, detector=r.detector,
                            backend_reason=r.backend_reason, parser=r.parser, frame_range=job.frame_range,
                            progress=progress)
        if self.progress is not None and rep.frames_written > sent[0]:
            self.progress.add.remote(rep.frames_written - sent[0])
        return {"worker": self.name, "frames_written": rep.frames_written,
                "frames_decoded": rep.frames_decoded, "faces_per_frame": list(rep.faces_per_frame),
                "faces_detected": rep.faces_detected, "faces_restored": rep.faces_restored,
                "tracks": [dataclasses.asdict(t) for t in rep.tracks],
                "seam_faces": {str(k): [[tid, list(m)] for tid, m in v] for k, v in rep.seam_faces.items()},
                "stage_seconds": dict(rep.stage_seconds), "wall_seconds": rep.wall_seconds,
                "warnings": dict(rep.warnings),
                "backend": dataclasses.asdict(rep.backend)}
