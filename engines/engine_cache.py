"""Engine cache: one file per (ONNX, precision, batch profile, GPU, TensorRT version), a JSON beside it.

A serialized TensorRT engine is only valid for the exact GPU model/compute capability and TensorRT
version that built it, and only for the batch profile it was built with. Every field that matters goes
into :class:`EngineKey`; the JSON file written beside the engine records that key (plus the engine's
size and SHA-256). :meth:`EngineCache.lookup` returns an engine only when the JSON exists, parses, holds
exactly the requested key and matches the engine file; anything else - stale, foreign, truncated or
half-written - is rebuilt, never loaded. Writes go to a temporary file that is renamed into place, the
JSON last, so a crash mid-build leaves nothing that looks valid.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vidrestore.errors import ConfigError

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``<weights home>/engines``: ``$VIDRESTORE_HOME/engines`` or ``~/.cache/vidrestore/engines``."""
    from vidrestore.models.weights import weights_home

    return weights_home() / "engines"


@dataclass(frozen=True)
class BatchProfile:
    """TensorRT optimisation profile for the batch dimension: min <= opt <= max."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                              f"min={self.min} opt={self.opt} max={self.max}")

    def contains(self, n: int) -> bool:
        return self.min <= n <= self.max

    def chunks(self, n: int) -> list[int]:
        """Split a batch of ``n`` into engine calls of at most ``max`` (full chunks first).

        A last chunk below ``min`` is padded up to ``min`` by the runtime (see :meth:`padded`).
        """
        if n < 0:
            raise ValueError(f"batch size must be >= 0, got {n}")
        return [self.max] * (n // self.max) + ([n % self.max] if n % self.max else [])

    def padded(self, n: int) -> int:
        """The batch the engine actually runs for a chunk of ``n`` (``n`` itself inside the profile)."""
        if not 1 <= n <= self.max:
            raise ValueError(f"chunk of {n} outside the profile's 1..{self.max}")
        return n if n >= self.min else self.min

    def tag(self) -> str:
        return f"b{self.min}-{self.opt}-{self.max}"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. Equal keys <=> interchangeable engines."""

    onnx_sha256: str
    precision: str           # "fp32" / "fp16"
    profile: BatchProfile
    image_size: int          # S of the (N, 3, S, S) input
    gpu_name: str            # torch.cuda.get_device_name, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "9.0"
    tensorrt_version: str    # tensorrt.__version__
    cache_format: int = CACHE_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EngineKey:
        fields = dict(data)
        fields["profile"] = BatchProfile(**fields["profile"])
        return cls(**fields)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def file_stem(self) -> str:
        return f"gfpgan-{self.precision}-{self.profile.tag()}-{self.digest()}"


Builder = Callable[[EngineKey, Path], None]   # writes the serialized engine for the key to the path


class EngineCache:
    """A folder of ``<stem>.engine`` + ``<stem>.json`` pairs."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.file_stem()}.engine"

    def record_path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.file_stem()}.json"

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine for ``key``, or None when missing, stale, foreign or damaged."""
        return self.engine_path(key) if self.why_invalid(key) is None else None

    def why_invalid(self, key: EngineKey) -> str | None:
        """None when the cached engine may be loaded, else the reason it will be rebuilt."""
        engine, record = self.engine_path(key), self.record_path(key)
        if not record.is_file():
            return "no cache record"
        try:
            data = json.loads(record.read_text())
            stored = type(key).from_dict(data["key"])   # EngineKey, or another key class
            size, digest = int(data["engine_bytes"]), str(data["engine_sha256"])
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
            return f"cache record unreadable ({type(err).__name__})"
        if stored != key:
            changed = [f for f, v in key.to_dict().items() if stored.to_dict().get(f) != v]
            return "cache record is for another " + ", ".join(changed)
        if not engine.is_file():
            return "engine file missing"
        if engine.stat().st_size != size:
            return "engine file size differs from its record"
        if _sha256(engine) != digest:
            return "engine file checksum differs from its record"
        return None

    def get_or_build(self, key: EngineKey, build: Builder, *, log: Callable[[str], None] | None = None) -> Path:
        """The engine for ``key``: the cached one when valid, else ``build(key, tmp_path)`` then
        atomically stored with its record."""
        reason = self.why_invalid(key)
        if reason is None:
            return self.engine_path(key)
        if log is not None:
            log(f"building TensorRT engine ({reason}): {self.engine_path(key).name}")
        return self.store(key, build)

    def store(self, key: EngineKey, build: Builder) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        engine, record = self.engine_path(key), self.record_path(key)
        record.unlink(missing_ok=True)  # the old record must not vouch for a new/partial engine
        fd, tmp_name = tempfile.mkstemp(dir=self.folder, prefix=f".{key.file_stem()}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        started = time.perf_counter()
        try:
            build(key, tmp)
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise RuntimeError("engine builder wrote no engine")
            os.replace(tmp, engine)
        finally:
            tmp.unlink(missing_ok=True)
        data = {"key": key.to_dict(), "engine_bytes": engine.stat().st_size, "engine_sha256": _sha256(engine),
                "build_seconds": round(time.perf_counter() - started, 3),
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp_record = record.with_name(record.name + ".tmp")
        tmp_record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_record, record)
        return engine

    def entries(self) -> list[tuple[Path, dict | None]]:
        """(engine, record or None) for every engine in the folder (for `vidrestore engines list`)."""
        out = []
        for engine in sorted(self.folder.glob("*.engine")):
            try:
                data = json.loads(engine.with_suffix(".json").read_text())
            except (OSError, ValueError):
                data = None
            out.append((engine, data))
        return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
