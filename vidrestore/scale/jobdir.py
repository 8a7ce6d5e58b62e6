"""The job folder of one input: chunk files plus ``manifest.json``, so a run can be resumed.

Layout: ``<job root>/<input stem>-<hash of its path>/`` holding ``manifest.json``,
``chunk_NNNN.mkv`` (or ``.mov``) and ``attempts/chunk_NNNN.<host>.<pid>`` (one empty file per attempt
of a chunk, named after the worker process that made it: retries are counted from these).

The manifest is written by the driver only, atomically (temporary file + rename). Each finished chunk
has an entry with its range, frame count, first/last pts, settings hash, SHA-256 of its file and the
worker's summary. A folder whose manifest names another input, other settings or other weights is
refused (:class:`ConfigError`), never mixed in; ``resume`` reuses every finished chunk whose file still
has its recorded checksum.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .plan import Chunk

MANIFEST = "manifest.json"


def job_folder(root: Path, input: Path) -> Path:
    key = hashlib.sha256(os.path.realpath(input).encode()).hexdigest()[:10]
    return root / f"{input.stem}-{key}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class JobDir:
    def __init__(self, path: Path, *, identity: dict[str, Any], settings: str, suffix: str) -> None:
        self.path = path
        self.identity = identity
        self.settings = settings
        self.suffix = suffix
        self.chunks: dict[int, dict[str, Any]] = {}

    def open(self, *, resume: bool) -> None:
        """Create, or check and load the existing manifest. Refuses a folder made for something else."""
        m = self.path / MANIFEST
        if m.is_file():
            try:
                old = json.loads(m.read_text())
            except (OSError, ValueError) as e:
                raise ConfigError(f"job folder {self.path}: unreadable {MANIFEST} ({e}); "
                                  "delete the folder or choose another --job-dir") from e
            what = [k for k, v in (("input", old.get("input") != self.identity),
                                   ("settings or weights", old.get("settings_hash") != self.settings)) if v]
            if what:
                raise ConfigError(f"job folder {self.path} was made for another {' and '.join(what)}; "
                                  "it is not mixed in: choose another --job-dir or delete that folder")
            if resume:
                self.chunks = {int(c["number"]): c for c in old.get("chunks", [])}
        elif self.path.exists() and any(self.path.iterdir()):
            raise ConfigError(f"job folder {self.path} exists and is not a vidrestore job folder "
                              "(no manifest.json); choose another --job-dir")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "attempts").mkdir(exist_ok=True)
        if not resume:
            for f in self.path.glob("chunk_*"):
                f.unlink()
            for f in (self.path / "attempts").iterdir():
                f.unlink()
        self.save()

    def chunk_file(self, chunk: Chunk) -> Path:
        return self.path / f"chunk_{chunk.number:04d}{self.suffix}"

    def finished(self, chunk: Chunk) -> dict[str, Any] | None:
        """The manifest entry of ``chunk`` when its file is there with the recorded checksum."""
        e = self.chunks.get(chunk.number)
        if not e or (e["start"], e["end"]) != (chunk.start, chunk.end) or e.get("settings_hash") != self.settings:
            return None
        f = self.chunk_file(chunk)
        if not f.is_file() or sha256_file(f) != e.get("sha256"):
            return None
        return e

    def record(self, chunk: Chunk, *, sha256: str, result: dict[str, Any]) -> None:
        self.chunks[chunk.number] = {
            "number": chunk.number, "start": chunk.start, "end": chunk.end, "frames": chunk.frames,
            "first_pts": chunk.first_pts, "last_pts": chunk.last_pts, "file": self.chunk_file(chunk).name,
            "settings_hash": self.settings, "sha256": sha256, "result": result}
        self.save()

    def attempts(self, chunk: Chunk) -> int:
        return len(list((self.path / "attempts").glob(f"chunk_{chunk.number:04d}.*")))

    def save(self) -> None:
        data = {"version": 1, "input": self.identity, "settings_hash": self.settings,
                "chunks": [self.chunks[k] for k in sorted(self.chunks)]}
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / MANIFEST)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
