"""Seeded mutations of small real clips, and a worker process that restores many of them in a row.

Mutations (each a pure function of the seed): ``bitflip`` (1-20 random bits), ``zeros`` (a range of
16 B-4 KiB zeroed), ``truncate`` (cut at a random offset), ``header`` (a box/chunk/element size or the
first 512 bytes damaged), ``swap`` (two video packets exchanged, remuxed into a valid container).

The worker (``python -m tests.support.fuzz`` with one JSON case per stdin line) runs ``vidrestore.cli.run``
on each case and answers one JSON line: exit code and what the CLI printed. The parent enforces the
per-case timeout and restarts the worker after a hang.
"""
from __future__ import annotations

import io
import json
import os
import random
import resource
import struct
import sys
from contextlib import redirect_stderr
from pathlib import Path

MUTATIONS = ("bitflip", "zeros", "truncate", "header", "swap")


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[int]:
    """Offsets of ISO-BMFF box headers (top level and inside moov/trak/mdia/minf/stbl)."""
    end = len(data) if end is None else end
    out, i = [], start
    while i + 8 <= end and depth < 6:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        out.append(i)
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"):
            out += _mp4_boxes(data, i + 8, min(i + size, end), depth + 1)
        if size < 8:
            break
        i += size
    return out


def _header(data: bytearray, rng: random.Random, suffix: str) -> None:
    if suffix in (".mp4", ".mov") and (boxes := _mp4_boxes(bytes(data))):
        at = rng.choice(boxes)
        size = rng.choice([0, 1, 7, 8, rng.randrange(2 ** 32), len(data) * 2,
                           struct.unpack(">I", data[at:at + 4])[0] + rng.randint(-64, 64)])
        struct.pack_into(">I", data, at, size % 2 ** 32)
    elif suffix == ".png":
        at = 8 + rng.choice([0, 25, 37])          # IHDR length, or a later chunk's length
        struct.pack_into(">I", data, at, rng.randrange(2 ** 32))
    elif suffix == ".ts":
        at = 188 * rng.randrange(max(1, len(data) // 188))
        data[at:at + 4] = bytes(rng.randrange(256) for _ in range(4))
    else:                                          # EBML / RIFF headers live in the first bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(min(512, len(data)))] = rng.randrange(256)


def mutate(src: Path, dst: Path, kind: str, seed: int) -> Path:
    """Write a mutation of ``src`` to ``dst`` (same suffix)."""
    rng = random.Random(f"{src.name}:{kind}:{seed}")
    if kind == "swap" and src.suffix != ".png":
        from tests.support.clips import remux_head
        got: dict[int, bytes] = {}

        def collect(k: int, data: bytes) -> bytes:
            got[k] = data
            return data
        remux_head(src, dst, frames=10 ** 6, damage=collect)
        i, j = rng.sample(range(len(got)), 2)
        return remux_head(src, dst, frames=len(got), damage=lambda k, d: got[{i: j, j: i}.get(k, k)])
    data = bytearray(src.read_bytes())
    if kind == "bitflip":
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "zeros":
        n = rng.randint(16, 4096)
        at = rng.randrange(len(data))
        data[at:at + n] = bytes(len(data[at:at + n]))
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    else:
        _header(data, rng, src.suffix)
    dst.write_bytes(bytes(data))
    return dst


def _serve() -> None:
    """Worker loop: one JSON case per stdin line -> one JSON result per stdout line."""
    from vidrestore import cli, pipeline

    made = {}
    real = pipeline._detector_for

    def shared_detector(ops, config):  # one detector session for all cases (the cases differ in input only)
        return made.setdefault(ops.device, real(ops, config))
    pipeline._detector_for = shared_detector
    out = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        case = json.loads(line)
        err = io.StringIO()
        with redirect_stderr(err):
            code = cli.run(case["argv"])
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out.write(json.dumps({"rc": code, "stderr": err.getvalue(), "cpu_s": ru.ru_utime + ru.ru_stime}) + "\n")
        out.flush()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _serve()
