"""Damaged input, fuzzed: seeded mutations of small real clips through the real CLI (identity
restorer, one worker process for all cases). Each case must end within CASE_TIMEOUT_S in either a
restored, decodable output (exit 0) or exit 2 with one line naming the input, and leave nothing but
that output behind. Never a traceback, a hang, another exit code or a stray file."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.clips import remux_head
from tests.support.fuzz import MUTATIONS, mutate
from vidrestore.media.decode import VideoReader

CASES = 200                   # seeded: the same cases on every run
CASE_TIMEOUT_S = 60.0         # generous for 2 busy cores; a case normally takes ~0.3 s
SEEDS = {                     # source -> (suffix, frames kept); small clips, few frames
    "clips/lp_d0_talking_512.mp4": (".mp4", 6),
    "clips/lp_d10_talking_512_audio.mp4": (".mp4", 6),
    "edge/vp9_opus_face.webm": (".webm", 6),
    "edge/start_offset_v1.0_a0.5_face.ts": (".ts", 6),
    "edge/mpeg4_part2_mp3_face.mkv": (".mkv", 6),
    "edge/hevc_main10_yuv420p10le_face.mp4": (".mp4", 6),
    "edge/upstream/decord_unordered.mov": (".mov", 4),
    "images/gfpgan_cropped_Adele_512.png": (".png", 1),
}
# cases that once failed (kept as regression cases; re-made from their seeds on every run)
# (found by this test: a damaged sample description left the stream without a decoder -> AttributeError)
REGRESSIONS: list[tuple[str, str, int]] = [("seed0", "header", 24), ("seed6", "header", 30),
                                           ("seed6", "truncate", 62), ("seed6", "bitflip", 86)]


@pytest.fixture(scope="module")
def seeds(testdata, tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("seeds")
    out = []
    for i, (rel, (suffix, frames)) in enumerate(SEEDS.items()):
        dst = d / f"seed{i}{suffix}"
        if suffix == ".png":
            shutil.copyfile(testdata / rel, dst)
        else:
            remux_head(testdata / rel, dst, frames=frames)
        out.append(dst)
    return out


class Worker:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None

    def run(self, argv: list[str]) -> dict | None:
        """The case's result, or None after CASE_TIMEOUT_S (the worker is then killed)."""
        if self.proc is None or self.proc.poll() is not None:
            env = dict(os.environ, PYTHONPATH=str(REPO))
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.fuzz"], cwd=REPO, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.log.open("ab"), text=True)
        self.proc.stdin.write(json.dumps({"argv": argv}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], CASE_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            return None
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def check_case(worker: Worker, src: Path, work: Path, label: str) -> str:
    """'restored' or 'clean error'; raises AssertionError describing what went wrong otherwise."""
    out_dir = work / "out"
    out_dir.mkdir()
    out = out_dir / ("o.png" if src.suffix == ".png" else "o.mp4")
    res = worker.run([str(src), "-o", str(out), "--restorer", "identity", "--preset", "ultrafast",
                      "--detect-every", "3", "-q"])
    assert res is not None, f"{label}: no answer within {CASE_TIMEOUT_S} s (hang or crash)"
    lines = [l for l in res["stderr"].splitlines() if l.strip()]
    listing = sorted(p.name for p in out_dir.iterdir())
    if res["rc"] == 0:
        assert listing == [out.name], f"{label}: exit 0 but folder holds {listing}"
        with VideoReader(out) as r:
            assert sum(1 for _ in r) >= 1, f"{label}: output has no frames"
        assert lines == [], f"{label}: exit 0 with output {lines}"
        return "restored"
    assert res["rc"] == 2, f"{label}: exit {res['rc']}: {res['stderr'][-400:]}"
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error: ") and src.name in lines[0], \
        f"{label}: not one line naming the input: {res['stderr'][-400:]}"
    assert listing == [], f"{label}: exit 2 but folder holds {listing}"
    return "clean error"


def _cases(seeds: list[Path]) -> list[tuple[Path, str, int]]:
    cases = [(next(s for s in seeds if s.name.startswith(name)), kind, seed)
             for name, kind, seed in REGRESSIONS]
    for n in range(CASES):
        cases.append((seeds[n % len(seeds)], MUTATIONS[(n // len(seeds)) % len(MUTATIONS)], n))
    return cases


def test_fuzzed_inputs_end_cleanly(seeds, tmp_path):
    worker = Worker(tmp_path / "worker.log")
    counts: Counter[str] = Counter()
    failures: list[str] = []
    try:
        for i, (src, kind, seed) in enumerate(_cases(seeds)):
            work = tmp_path / f"c{i}"
            work.mkdir()
            case = mutate(src, work / f"in-{src.stem}-{kind}-{seed}{src.suffix}", kind, seed)
            label = f"({src.stem!r}, {kind!r}, {seed})"
            try:
                counts[check_case(worker, case, work, label)] += 1
                counts[f"{kind}"] += 1
            except AssertionError as e:
                failures.append(str(e).splitlines()[0][:300])
            shutil.rmtree(work)
    finally:
        worker.close()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    print(f"fuzz: {counts['restored']} restored, {counts['clean error']} clean errors, "
          f"{len(failures)} failures; by mutation " +
          ", ".join(f"{k} {counts[k]}" for k in MUTATIONS))
    assert not failures, "\n".join(failures[:30])
    assert "Traceback" not in log, log[-2000:]
    assert counts["restored"] > 0 and counts["clean error"] > 0
