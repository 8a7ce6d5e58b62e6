"""--aligned: already-aligned 512 x 512 face crops are restored whole, with no detection."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidrestore.cli import run
from vidrestore.config import EncodeConfig, ModelConfig, PasteConfig, RestoreConfig
from vidrestore.faces.aligned import aligned_alignment, whole_frame
from vidrestore.pipeline import Restorer, restore_video

CROPS = ["images/gfpgan_cropped_Adele_512.png", "images/gfpgan_cropped_Julia_Roberts_512.png"]


class _NoDetector:
    def detect(self, frames):                      # pragma: no cover - failing is the point
        raise AssertionError("--aligned must not run the detector")


def _brighten(x: torch.Tensor) -> torch.Tensor:
    return (x + 0.2).clamp(-1.0, 1.0)


def _read(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("rel", CROPS)
def test_whole_crop_restored_without_detection(testdata, tmp_path, rel) -> None:
    src = testdata / rel
    cfg = RestoreConfig(model=ModelConfig(restorer="identity"), aligned=True)
    out = tmp_path / "out.png"
    rep = restore_video(src, out, cfg, restorer=_brighten, detector=_NoDetector())
    assert rep.faces_restored == 1 and rep.faces_per_frame == (1,)
    a, b = _read(src).astype(np.int16), _read(out).astype(np.int16)
    expected = np.clip(a + 25, 0, 255)                          # +0.2 in [-1, 1] = +25.5 levels
    # every pixel, corners and hair included, is the restorer's output (no mask, no resampling at 512)
    assert np.abs(b - expected).max() <= 1
    # identity restorer: the frame comes back bit-exactly
    out2 = tmp_path / "same.png"
    restore_video(src, out2, cfg, detector=_NoDetector())
    assert np.array_equal(_read(out2), _read(src))


def test_other_sizes_are_resized_to_512_and_back(testdata, tmp_path) -> None:
    small = cv2.resize(_read(testdata / CROPS[0]), (256, 256), interpolation=cv2.INTER_AREA)
    got = list(Restorer(RestoreConfig(aligned=True, model=ModelConfig(restorer="identity")),
                        restorer=lambda x: x, detector=_NoDetector()).restore_frames([small, small]))
    assert len(got) == 2 and got[0].shape == small.shape
    assert np.abs(got[0].astype(np.int16) - small).mean() < 1.5   # up and down again: close to the input
    seen = []
    r = Restorer(RestoreConfig(aligned=True, model=ModelConfig(restorer="identity")),
                 restorer=lambda x: seen.append(tuple(x.shape)) or x, detector=_NoDetector())
    list(r.restore_frames([small]))
    assert seen == [(1, 3, 512, 512)]                              # the network saw a 512 x 512 crop
    al = aligned_alignment(256, 200, 512)
    assert np.allclose(al.matrix, [[2, 0, 0], [0, 2.56, 0]])


def test_strength_and_gpu_tensors() -> None:
    frame = np.full((512, 512, 3), 100, np.uint8)
    restored = np.full((1, 512, 512, 3), 200, np.uint8)
    originals = frame[None].copy()
    half = whole_frame(frame, restored, originals, config=PasteConfig(strength=0.5))
    assert (half == 150).all()
    assert whole_frame(frame, restored, originals, config=PasteConfig(strength=0.0)) is frame
    t = torch.full((1, 3, 512, 512), 0.5)
    out = whole_frame(torch.from_numpy(frame), t, None, config=PasteConfig())
    assert out.shape == (512, 512, 3) and out.dtype == torch.uint8 and int(out[0, 0, 0]) == 191


def test_cli(testdata, tmp_path) -> None:
    out = tmp_path / "cli.png"
    rc = run([str(testdata / CROPS[1]), "-o", str(out), "--aligned", "--restorer", "identity", "-q"])
    assert rc == 0 and np.array_equal(_read(out), _read(testdata / CROPS[1]))
    assert run([str(testdata / CROPS[1]), "-o", str(tmp_path / "x.png"), "--track-ids", "1,a", "-q"]) == 7
