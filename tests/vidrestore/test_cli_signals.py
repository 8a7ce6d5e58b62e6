"""Interruption: real signals to a real ``python -m vidrestore`` mid-run, then the output folder is listed.

SIGINT -> exit 130, SIGTERM -> 143, SIGHUP -> 129 (128 + signal number); one line on stderr; the hidden
temporary output is gone; a second signal exits at once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIP = "clips/lp_d10_talking_512_audio.mp4"   # 150 frames: ~15 s with the identity restorer here


def start(testdata: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "vidrestore", str(testdata / CLIP), "-o", str(out),
                             "--restorer", "identity", "--preset", "ultrafast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def wait_for_temp(proc: subprocess.Popen, folder: Path, *, timeout: float = 120.0) -> Path:
    """The hidden temporary output exists and has frames in it: the run is mid-way."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        tmp = [p for p in folder.iterdir() if p.name.startswith(".o.vidrestore-")]
        if tmp and tmp[0].stat().st_size > 20_000:
            return tmp[0]
        if proc.poll() is not None:
            pytest.fail(f"vidrestore ended before the signal: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no temporary output appeared")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_mid_run_removes_temp_and_exits(sig, code, testdata, tmp_path):
    out = tmp_path / "o.mp4"
    proc = start(testdata, out)
    wait_for_temp(proc, tmp_path)
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{sig.name}: still running 30 s after the signal")
    took = time.monotonic() - t0
    assert proc.returncode == code, (proc.returncode, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines == [f"vidrestore: interrupted by {sig.name}; stopped, temporary output removed"], err
    assert list(tmp_path.iterdir()) == []
    assert took < 15.0, took          # ~2 s here; generous for a loaded 2-core CI machine
    print(f"{sig.name}: exit {code} after {took:.2f} s")


def test_second_ctrl_c_exits_at_once(testdata, tmp_path):
    out = tmp_path / "o.mp4"
    proc = start(testdata, out)
    wait_for_temp(proc, tmp_path)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)                   # separate deliveries (two pending SIGINTs would coalesce)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("two SIGINTs: still running after 20 s")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 10.0
