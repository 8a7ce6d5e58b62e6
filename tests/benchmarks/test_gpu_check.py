"""The GPU check scripts on a CPU machine: syntax, dry run end to end, media staging."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
PREPARE = REPO / "benchmarks" / "prepare_gpu_data.sh"


@pytest.mark.parametrize("script", [SCRIPT, PREPARE], ids=lambda p: p.name)
def test_bash_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_dry_run_writes_summary_and_skeleton(tmp_path, testdata):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_DRY_RUN": "1", "PYTHON": sys.executable,
           "VIDRESTORE_TESTDATA": str(testdata),
           "GPU_CHECK_PYTEST_ARGS": "tests/vidrestore/media/test_nvdec.py"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert summary["test_media"] == str(testdata)
    assert summary["steps"]["pytest-collect"]["rc"] == 0
    assert summary["steps"]["gpu_pipeline"]["rc"] == 0
    assert summary["needs_cuda"]["collected"] >= 3            # the NVDEC tests marked needs_cuda
    bench = json.loads((out / "gpu_pipeline.json").read_text())
    assert bench["environment"]["torch"]
    assert all(bench[s] == {"skipped": "dry run"} for s in ("pipeline", "model", "kernels"))
    assert summary["benchmark_sections"]["environment"] == "ok"
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and not any(p.is_dir() for p in out.iterdir())   # what the device returns
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)


def test_time_budget_skips_steps(tmp_path):
    """With no budget left every step is skipped, and the summary is still written."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_DRY_RUN": "1", "PYTHON": sys.executable,
           "GPU_CHECK_BUDGET_S": "0"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    steps = json.loads((out / "summary.json").read_text())["steps"]
    assert steps["pytest-collect"]["rc"] == "skipped-no-time"
    assert steps["gpu_pipeline"]["rc"] == "skipped-no-time"


def test_prepare_stages_every_listed_file(tmp_path, testdata):
    media = re.search(r"MEDIA=\((.*?)\)", PREPARE.read_text(), re.S).group(1).split()
    assert all((testdata / m).is_file() for m in media)
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(PREPARE, repo / "benchmarks")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {**os.environ, "VIDRESTORE_TESTDATA": str(testdata), "SKIP_WHEELS": "1",
           "VIDRESTORE_REFERENCE_DIR": str(tmp_path / "none")}
    subprocess.run(["bash", "benchmarks/prepare_gpu_data.sh"], cwd=repo, env=env, check=True,
                   capture_output=True)
    for m in media:
        assert (repo / ".gpudata" / m).read_bytes() == (testdata / m).read_bytes()
    assert "/.gpudata/" in (repo / ".git" / "info" / "exclude").read_text().split()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert ".gpudata" not in status


def test_benchmark_media_are_staged():
    """The benchmark's clip is among what prepare_gpu_data.sh copies."""
    from benchmarks.gpu_pipeline import CLIP
    assert CLIP in PREPARE.read_text()
