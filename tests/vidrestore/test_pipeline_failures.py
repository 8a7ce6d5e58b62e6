"""A failure in any thread of restore_video (decode, detect, restore, encode at write and at commit)
stops every stage thread, removes the temporary output and reports the first cause; thousands of
faces in a frame are bounded by max_faces. Faults are injected through restore_video's own hooks
(detector=, backend=, restorer=, image_ops=, progress=) into a real run on a real clip."""
from __future__ import annotations

import random
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.clips import remux_head
from vidrestore.config import DecodeConfig, DetectConfig, EncodeConfig, ModelConfig, RestoreConfig
from vidrestore.errors import EncodeError, InputError, OutputError
from vidrestore.faces.detect import RetinaFaceDetector
from vidrestore.faces.ops import CpuImageOps
from vidrestore.pipeline import restore_video

FAST = EncodeConfig(codec="libx264", crf=23, preset="ultrafast")
STAGES = {"decode", "analyse", "restore"}
SOURCE = "clips/lp_d0_talking_512.mp4"


def config(**kw) -> RestoreConfig:
    return RestoreConfig(model=ModelConfig(restorer="identity"), encode=FAST, **kw)


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory) -> Path:
    return remux_head(testdata / SOURCE, tmp_path_factory.mktemp("clip") / "in.mp4", frames=16)


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(config=DetectConfig())


def stage_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name in STAGES and t.is_alive()}


def fails_cleanly(tmp_path: Path, exc_type, match: str, **kw) -> BaseException:
    """Run restore_video into tmp_path/out; it must raise exc_type matching ``match``, leave no stage
    thread running and nothing in the folder."""
    before = stage_threads()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(exc_type, match=match) as e:
        restore_video(kw.pop("src"), out_dir / "o.mp4", kw.pop("cfg", config()), **kw)
    assert stage_threads() - before == set(), "a stage thread is still running"
    assert list(out_dir.iterdir()) == []
    return e.value


class _FailOnCall:
    def __init__(self, n: int, exc: BaseException, inner=None) -> None:
        self.n, self.exc, self.inner, self.calls = n, exc, inner, 0

    def __call__(self, *a):
        self.calls += 1
        if self.calls >= self.n:
            raise self.exc
        return self.inner(*a) if self.inner else a[0]


def test_decode_error_mid_run(testdata, tmp_path):
    def garble(i: int, data: bytes) -> bytes:
        rng = random.Random(i)
        return data if i != 8 else data[:4] + bytes(rng.randrange(256) for _ in range(len(data) - 4))
    src = remux_head(testdata / SOURCE, tmp_path / "damaged.mp4", frames=16, damage=garble)
    err = fails_cleanly(tmp_path, InputError, r"damaged\.mp4: 1 frames lost: 1 from 0\.28 s \(corrupt packet\) \(--strict\)", src=src,
                        cfg=config(decode=DecodeConfig(strict=True)))
    assert err.exit_code == 2


def test_detector_error(clip, detector, tmp_path):
    class Failing:
        def __init__(self):
            self.detect = _FailOnCall(2, RuntimeError("detector exploded"), detector.detect)
    fails_cleanly(tmp_path, RuntimeError, "detector exploded", src=clip, detector=Failing())


def test_restorer_error(clip, detector, tmp_path):
    fails_cleanly(tmp_path, RuntimeError, "network exploded", src=clip, detector=detector,
                  restorer=_FailOnCall(3, RuntimeError("network exploded")))


def test_backend_error(clip, detector, tmp_path):
    class Backend:
        name, device, precision, max_batch = "broken", "cpu", "fp32", 2

        def __init__(self):
            self.restore = _FailOnCall(2, MemoryError("backend out of memory"))
    fails_cleanly(tmp_path, MemoryError, "backend out of memory", src=clip, detector=detector,
                  backend=Backend())


def test_encoder_error_at_write(clip, detector, tmp_path):
    class BadFrames(CpuImageOps):
        def to_host(self, frame_rgb):
            self.n = getattr(self, "n", 0) + 1
            return frame_rgb if self.n < 5 else frame_rgb[:-2]      # a frame the encoder refuses
    err = fails_cleanly(tmp_path, EncodeError, r"frame 4 is \(510, 512, 3\)", src=clip, detector=detector,
                        image_ops=BadFrames(paste_inplace=True))
    assert err.exit_code == 6


def test_encoder_error_at_commit(clip, detector, tmp_path):
    """The folder vanishes after the last frame was written: commit fails, nothing is left."""
    def progress(p):
        if p.frames_done == 16:
            shutil.rmtree(tmp_path / "out")
            (tmp_path / "out").mkdir()          # a new, empty folder of the same name
    err = fails_cleanly(tmp_path, OutputError, "disappeared", src=clip, detector=detector, progress=progress)
    assert err.exit_code == 3


def test_first_error_wins(clip, detector, tmp_path):
    """The detector fails first; the restorer failing afterwards (on the teardown) must not hide it."""
    class Failing:
        def __init__(self):
            self.detect = _FailOnCall(2, ValueError("first: detector"), detector.detect)
    fails_cleanly(tmp_path, ValueError, "first: detector", src=clip, detector=Failing(),
                  restorer=_FailOnCall(2, RuntimeError("second: restorer")))


def test_thousands_of_faces_bounded_by_max_faces(clip, detector, tmp_path):
    """2,000 faces per frame from the detector: at most max_faces are aligned and restored."""
    class Crowd:
        def detect(self, frames):
            out = []
            for faces in detector.detect(frames):
                f = faces[0]
                crowd = [replace(f, box=f.box + d, landmarks=f.landmarks + d, score=0.9)
                         for d in np.linspace(-3, 3, 2000, dtype=np.float32)]
                out.append(crowd)
            return out
    sizes = []

    def restorer(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return x
    rep = restore_video(clip, tmp_path / "o.mp4", config(detect=DetectConfig(max_faces=3)),
                        detector=Crowd(), restorer=restorer)
    assert rep.frames_written == 16 and max(rep.faces_per_frame) <= 3
    assert sum(sizes) == rep.faces_restored <= 3 * 16
    assert rep.warnings["faces over --max-faces left alone"] == 16 * (2000 - 3)
