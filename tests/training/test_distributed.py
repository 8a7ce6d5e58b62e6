"""training/distributed.py under real torchrun processes (gloo, 2 ranks, tiny config, images + a real
video read by decord): a 2-rank run equals a 1-process run accumulating 2 micro-batches (G, EMA, D and
the component discriminators after 4 iterations with 2 lazy-R1 steps), a 2-rank run resumed from the
1-process checkpoint equals it too, rank 0 is the only writer and the first line names the world size.

Tolerance: identical kernels on identical inputs (one thread per process) give the same sums in the
same order, so the runs agree to the last bit here; the test allows 1e-6 absolute (float32 rounding)
so that it states what is promised rather than what happens to hold on this CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from training.logs import read_log

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny_cpu.toml"
ITERS = 4
TOL = 1e-6


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    return env


def _run(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "training.train"]
    else:   # torchrun of this interpreter; a free port on the loopback interface
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--rdzv_backend", "c10d", "--rdzv_endpoint", "127.0.0.1:0", "-m", "training.train"]
    p = subprocess.run(cmd + args, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def data(testdata, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp_data")
    faces, videos = root / "faces", root / "videos"
    faces.mkdir()
    videos.mkdir()
    for name in ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png"):
        cv2.imwrite(str(faces / name), cv2.resize(cv2.imread(str(testdata / "images" / name)), (64, 64)))
    (videos / "talking.mp4").symlink_to(testdata / "clips" / "lp_d0_talking_512.mp4")
    return faces, videos


def _args(data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    faces, videos = data
    sets = [f"data.train_dir={faces}", f"data.video_dir={videos}", f"logging.out_dir={out}",
            f"schedule.total_iters={ITERS}", "logging.save_every=2", "logging.sample_every=2",
            "losses.d_reg_every=2", "data.batch_size=2", *extra]
    return ["--config", str(TINY)] + [x for s in sets for x in ("--set", s)]


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_runs")
    two = _run(_args(data, root / "two"), 2)
    one = _run(_args(data, root / "one", "train.accumulate=2"), 1)
    resumed = _run(_args(data, root / "resumed") + ["--resume", str(root / "one" / "checkpoints" / "state_00000002.pt")],
                   2)
    return root, two, one, resumed


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / f"state_{ITERS:08d}.pt", map_location="cpu", weights_only=False)


def _max_diff(a: dict, b: dict) -> dict[str, float]:
    out = {}
    for net in ("g", "g_ema", "d", "comps"):
        assert a[net].keys() == b[net].keys()
        out[net] = max(float((a[net][k].double() - b[net][k].double()).abs().max()) for k in a[net])
    return out


def _changed(a: dict, b: dict) -> dict[str, float]:
    return {net: max(float((a[net][k].double() - b[net][k].double()).abs().max()) for k in a[net])
            for net in ("g", "d", "comps")}


def test_two_ranks_equal_one_process_accumulating_two(runs):
    root, _, _, _ = runs
    two, one = _state(root / "two"), _state(root / "one")
    assert two["world_size"] == 2 and one["world_size"] == 1 and one["accumulate"] == 2
    assert two["samples_seen"] == one["samples_seen"] == ITERS * 4
    diff = _max_diff(two, one)
    assert all(v <= TOL for v in diff.values()), diff
    # the networks did move (a run that never stepped would also be "equal")
    start = torch.load(root / "one" / "checkpoints" / "state_00000002.pt", map_location="cpu", weights_only=False)
    assert all(v > 1e-4 for v in _changed(start, one).values()), _changed(start, one)
    # and so did the logged losses, averaged over ranks = over micro-batches
    la, lb = read_log(root / "two" / "log.csv"), read_log(root / "one" / "log.csv")
    for ra, rb in zip(la, lb, strict=True):
        for k in ("l_g_total", "l_d", "l_d_mouth"):
            assert abs(ra[k] - rb[k]) <= 1e-5 * max(1.0, abs(rb[k])), (k, ra[k], rb[k])
    assert all(("l_d_r1" in r) == (int(r["iter"]) % 2 == 0) for r in la)


def test_resume_with_another_world_size(runs):
    root, _, _, resumed = runs
    assert "checkpoint written with world size 1" in resumed.stdout
    diff = _max_diff(_state(root / "resumed"), _state(root / "one"))
    assert all(v <= TOL for v in diff.values()), diff


def test_rank_zero_is_the_only_writer(runs):
    root, two, _, _ = runs
    first = two.stdout.splitlines()[0]
    assert "world size 2" in first and "global batch 4 = 2 per rank x 2 rank(s) x 1" in first, two.stdout
    assert two.stdout.count("world size 2") == 1 and two.stdout.count("last:") == 1
    assert [int(r["iter"]) for r in read_log(root / "two" / "log.csv")] == list(range(1, ITERS + 1))
    assert sorted(p.name for p in (root / "two" / "checkpoints").iterdir()) == [
        "state_00000002.pt", "state_00000004.pt"]
    assert sorted(p.name for p in (root / "two" / "samples").iterdir()) == [
        "train_00000002.png", "train_00000004.png"]
