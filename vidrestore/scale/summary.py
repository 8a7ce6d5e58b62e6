"""The report of a run over several inputs and/or workers (JSON-serialisable)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..report import write_json_atomic


@dataclass(frozen=True)
class InputResult:
    input: Path
    output: Path | None
    ok: bool
    error: str | None = None         # the one-line message when not ok
    exit_code: int = 0               # of the error (vidrestore.errors), 0 when ok
    frames: int = 0                  # frames written
    chunks: int = 0
    chunks_resumed: int = 0
    retries: int = 0
    faces_restored: int = 0
    tracks: tuple[dict[str, Any], ...] = ()
    warnings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchReport:
    inputs: tuple[InputResult, ...]
    workers: int
    chunks: int
    chunks_resumed: int
    retries: int
    stage_seconds: dict[str, dict[str, float]]   # worker name -> stage -> busy seconds
    wall_seconds: float

    @property
    def failures(self) -> tuple[InputResult, ...]:
        return tuple(r for r in self.inputs if not r.ok)

    @property
    def exit_code(self) -> int:
        """0 when every input finished, else the first failure's code."""
        return next((r.exit_code or 1 for r in self.inputs if not r.ok), 0)

    def to_dict(self) -> dict[str, Any]:
        def res(r: InputResult) -> dict[str, Any]:
            d = dict(r.__dict__)
            d["input"], d["output"] = str(r.input), None if r.output is None else str(r.output)
            d["tracks"] = list(r.tracks)
            return d
        frames = sum(r.frames for r in self.inputs)
        return {"inputs": [res(r) for r in self.inputs], "workers": self.workers, "chunks": self.chunks,
                "chunks_resumed": self.chunks_resumed, "retries": self.retries,
                "failures": [str(r.input) for r in self.failures],
                "stage_seconds": self.stage_seconds, "wall_seconds": round(self.wall_seconds, 3),
                "frames_written": frames,
                "fps": round(frames / self.wall_seconds, 4) if self.wall_seconds > 0 else 0.0}

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(self.to_dict(), path)

    def summary_lines(self) -> list[str]:
        ok = len(self.inputs) - len(self.failures)
        s = [f"{ok}/{len(self.inputs)} inputs restored, {sum(r.frames for r in self.inputs)} frames in "
             f"{self.wall_seconds:.1f} s with {self.workers} worker(s); chunks {self.chunks} "
             f"({self.chunks_resumed} resumed), retries {self.retries}"]
        for w, st in sorted(self.stage_seconds.items()):
            s.append(f"  {w}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(st.items())))
        s += [f"FAILED {r.input}: {r.error}" for r in self.failures]
        return s
