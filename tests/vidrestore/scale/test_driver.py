"""Chunked runs on a real local Ray cluster (2 CPU workers) equal single-process runs; faults."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import REPO
from tests.vidrestore.scale.conftest import CHUNK_S, CONFIG
from vidrestore.media.decode import VideoReader
from vidrestore.pipeline import restore_video
from vidrestore.scale import restore_videos


def frames(path: Path) -> list:
    with VideoReader(path) as r:
        return [(f.pts, f.rgb) for f in r]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def audio_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size][:5]


def assert_same(single: Path, chunked: Path) -> None:
    a, b = frames(single), frames(chunked)
    assert len(a) == len(b)
    assert [p for p, _ in a] == [p for p, _ in b], "per-frame timestamps differ"
    worst = min(psnr(x, y) for (_, x), (_, y) in zip(a, b))
    assert worst >= 55.0, f"a frame differs: {worst:.1f} dB"
    assert audio_times(single) == audio_times(chunked)


@pytest.mark.parametrize("key", ["vfr", "offset", "rotate", "faces"])
def test_chunked_equals_single(key, clips, ray_cluster, tmp_path):
    src = clips[key]
    single = restore_video(src, tmp_path / "single.mkv", CONFIG)
    rep = restore_videos([src], tmp_path / "chunked.mkv", CONFIG, workers=2, chunk_seconds=CHUNK_S)
    assert rep.exit_code == 0, rep.to_dict()
    r = rep.inputs[0]
    assert r.chunks >= 2 and r.frames == single.frames_written
    assert_same(tmp_path / "single.mkv", tmp_path / "chunked.mkv")
    assert len(rep.stage_seconds) == 2, "both workers ran chunks"
    assert not list(tmp_path.glob(".*")), "job folder and temporary files removed"
    if key == "faces":   # several faces, tracks crossing chunk boundaries keep their ID
        assert len(r.tracks) == len(single.tracks), (r.tracks, single.tracks)
        assert any(len(t["chunks"]) >= 2 for t in r.tracks)


def _wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_chunk_is_retried_and_exact(clips, ray_cluster, tmp_path):
    src = clips["vfr"]
    restore_video(src, tmp_path / "single.mkv", CONFIG)
    job = tmp_path / "job"
    box = {}
    t = threading.Thread(target=lambda: box.update(rep=restore_videos(
        [src], tmp_path / "chunked.mkv", CONFIG, workers=2, chunk_seconds=CHUNK_S, job_dir=job)))
    t.start()
    marker = _wait_for(lambda: sorted(job.glob("*/attempts/chunk_0001.*")), 300, "chunk 1 to start")[0]
    os.kill(int(marker.name.rsplit(".", 1)[1]), signal.SIGKILL)
    t.join(600)
    rep = box["rep"]
    assert rep.exit_code == 0, rep.to_dict()
    assert rep.retries >= 1
    assert_same(tmp_path / "single.mkv", tmp_path / "chunked.mkv")


DRIVER = """
import sys
from tests.vidrestore.scale.conftest import CHUNK_S, CONFIG
from vidrestore.scale import restore_videos
rep = restore_videos([sys.argv[1]], sys.argv[2], CONFIG, workers=2, chunk_seconds=CHUNK_S,
                     job_dir=sys.argv[3], resume=True)
sys.exit(rep.exit_code)
"""


def test_driver_killed_then_resume_reuses_finished_chunks(clips, ray_cluster, tmp_path):
    src, out, job = clips["vfr"], tmp_path / "chunked.mkv", tmp_path / "job"
    restore_video(src, tmp_path / "single.mkv", CONFIG)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(out), str(job)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def finished():
            m = list(job.glob("*/manifest.json"))
            return m and json.loads(m[0].read_text())["chunks"]
        done = _wait_for(finished, 400, "a finished chunk")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    folder = next(job.glob("*/manifest.json")).parent
    before = {c["number"]: len(list(folder.glob(f"attempts/chunk_{c['number']:04d}.*"))) for c in done}
    seen: dict[int, int] = {}     # attempts of the finished chunks while the resumed run works
    rep = restore_videos([src], out, CONFIG, workers=2, chunk_seconds=CHUNK_S, job_dir=job, resume=True,
                         progress=lambda p: seen.update({n: len(list(folder.glob(f"attempts/chunk_{n:04d}.*")))
                                                         for n in before} if folder.exists() else {}))
    assert rep.exit_code == 0, rep.to_dict()
    assert rep.chunks_resumed >= len(done)
    assert all(seen.get(n, k) == k for n, k in before.items()), "a finished chunk was run again"
    assert_same(tmp_path / "single.mkv", out)


def test_many_inputs_one_broken_others_finish(clips, testdata, ray_cluster, tmp_path):
    from vidrestore.config import EncodeConfig
    import dataclasses
    cfg = dataclasses.replace(CONFIG, encode=EncodeConfig(codec="libx264", crf=0, preset="ultrafast"))
    broken = tmp_path / "in" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"not a video at all" * 100)
    rep = restore_videos([clips["offset"], broken, clips["rotate"]], tmp_path / "out", cfg, workers=2,
                         chunk_seconds=CHUNK_S)
    assert rep.exit_code == 2
    assert [str(r.input) for r in rep.failures] == [str(broken)]
    assert "broken.mp4" in rep.failures[0].error
    for key in ("offset", "rotate"):   # one final encode of lossless chunks: the single-process output
        single = restore_video(clips[key], tmp_path / f"{key}_single.mp4", cfg)
        assert_same(tmp_path / f"{key}_single.mp4", tmp_path / "out" / f"{key}.mp4")
        assert single.frames_written == len(frames(tmp_path / "out" / f"{key}.mp4"))


def test_foreign_job_folder_is_refused(clips, ray_cluster, tmp_path):
    from vidrestore.scale.jobdir import job_folder
    job = tmp_path / "job"
    folder = job_folder(job, clips["offset"])
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "input": {"path": "x"},
                                                      "settings_hash": "other", "chunks": []}))
    rep = restore_videos([clips["offset"]], tmp_path / "o.mkv", CONFIG, workers=2, job_dir=job,
                         chunk_seconds=CHUNK_S, resume=True)
    assert rep.exit_code == 7
    assert "was made for another input and settings or weights" in rep.failures[0].error
    assert (folder / "manifest.json").is_file() and not (tmp_path / "o.mkv").exists()
