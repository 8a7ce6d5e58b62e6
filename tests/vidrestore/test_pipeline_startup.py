"""The backend is built while the other stages already run: decode/detect/align before the build ends,
and a failing build still ends the run with its one-line error, its exit code, no output and no
thread left behind."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO
from vidrestore.backends import factory
from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig
from vidrestore.errors import CheckpointError
from vidrestore.faces.detect import RetinaFaceDetector
from vidrestore.pipeline import restore_video

CLIP = "clips/lp_d0_talking_512.mp4"
FAST = EncodeConfig(codec="libx264", crf=23, preset="ultrafast")
STAGE_THREADS = {"decode", "analyse", "restore"}


class _RecordingDetector(RetinaFaceDetector):
    """The real detector, noting when it first ran."""
    first_call: float | None = None

    def detect(self, images):
        if self.first_call is None:
            self.first_call = time.perf_counter()
        return super().detect(images)


def _stage_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in STAGE_THREADS and t.is_alive()}


def test_frames_are_decoded_and_detected_while_the_backend_builds(testdata, tmp_path, monkeypatch):
    built = {}

    class SlowIdentity(factory.IdentityBackend):     # the real pass-through backend, slow to build
        def __init__(self, **kw):
            built["start"] = time.perf_counter()
            time.sleep(2.0)
            super().__init__(**kw)
            built["end"] = time.perf_counter()

    monkeypatch.setattr(factory, "IdentityBackend", SlowIdentity)
    config = RestoreConfig(model=ModelConfig(restorer="identity"), encode=FAST)
    detector = _RecordingDetector(config=config.detect)
    rep = restore_video(testdata / CLIP, tmp_path / "o.mp4", config, detector=detector)
    assert rep.frames_written == rep.frames_decoded > 0 and rep.faces_restored > 0
    assert detector.first_call is not None
    assert detector.first_call < built["end"] - 1.0     # detection ran during the build
    assert rep.stage_seconds["backend build"] >= 2.0
    assert not _stage_threads()


def test_failing_build_stops_every_stage_and_leaves_nothing(testdata, tmp_path):
    bad = tmp_path / "weights" / "bad.pth"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a checkpoint" * 100)
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    config = RestoreConfig(model=ModelConfig(weights=str(bad), backend="torch", device="cpu"), encode=FAST)
    with pytest.raises(CheckpointError) as err:
        restore_video(testdata / CLIP, out, config)
    assert "bad.pth" in str(err.value)
    assert list(out.parent.iterdir()) == []
    assert not _stage_threads()


def test_failing_build_from_the_command_line(testdata, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\0" * 4096)
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "vidrestore", str(testdata / CLIP), "-o", str(out),
                        "--weights", str(bad), "--backend", "torch", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == CheckpointError.exit_code == 4, p.stderr
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error:") and "bad.pth" in lines[0]
    assert list(out.parent.iterdir()) == []


def test_start_up_imports_stay_lean():
    """Modules only some runs need are imported where they are used, not when the pipeline is imported:
    scipy.optimize (the tracker's assignment with two or more faces, ~0.25 s) and the ONNX exporter
    (a cold cache only)."""
    code = ("import sys, vidrestore.pipeline, vidrestore.cli; "
            "print(sorted(m for m in ('scipy.optimize', 'onnx', 'engines.export_onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert out.stdout.strip() == "[]"
