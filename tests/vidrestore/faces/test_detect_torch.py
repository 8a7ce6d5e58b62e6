"""TorchRetinaFaceDetector finds what RetinaFaceDetector (onnxruntime) finds, on real frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.support.face_frames import cached_frames
from vidrestore.config import DetectConfig
from vidrestore.faces.detect import RetinaFaceDetector
from vidrestore.faces.detect_torch import TorchRetinaFaceDetector, area_weights
from tests.support.numerics import product_numerics


def _same_faces(expected, got, tol_px: float = 1.0) -> None:
    assert len(got) == len(expected)
    for fe, fg in zip(expected, got):
        assert len(fg) == len(fe), ([f.box for f in fe], [f.box for f in fg])
        for a, b in zip(fe, fg):
            assert np.abs(a.box - b.box).max() <= tol_px
            assert np.abs(a.landmarks - b.landmarks).max() <= tol_px
            assert abs(a.score - b.score) < 1e-3
            assert b.box.dtype == np.float32 and b.landmarks.shape == (5, 2)


@pytest.mark.parametrize("src,dst", [((720, 1280), (540, 960)), ((1080, 1920), (540, 960)),
                                     ((240, 426), (187, 333)), ((481, 853), (480, 852))])
def test_resize_is_cv2_inter_area(src, dst):
    img = np.random.default_rng(0).integers(0, 256, (*src, 3), dtype=np.uint8)
    expected = cv2.resize(img, dst[::-1], interpolation=cv2.INTER_AREA)
    det = TorchRetinaFaceDetector(device="cpu")
    got = det.resize(torch.from_numpy(img), dst[1], dst[0]).numpy()
    diff = np.abs(got - expected.astype(np.float32))
    assert diff.max() <= 1.0
    assert (diff > 0).mean() < 1e-3                  # only float-order ties differ
    np.testing.assert_allclose(area_weights(src[1], dst[1]).sum(1), 1.0)


def test_detections_match_onnxruntime_1080p(testdata):
    frames = list(cached_frames(str(testdata / "clips/lp_s32_interview_1080p_silentaudio.mp4"), (0, 60)))
    expected = RetinaFaceDetector().detect(frames)
    got = TorchRetinaFaceDetector(device="cpu").detect(frames)
    assert all(len(f) == 1 for f in expected)
    _same_faces(expected, got)


def test_detections_match_batched_mixed_sizes_and_tensors(testdata):
    """Several faces, two frame sizes in one call, batch 2, tensor frames, non-integer resize."""
    cfg = DetectConfig(max_side=480, batch=2)
    group = list(cached_frames(str(testdata / "edge/multi_face_group_zoompan.mp4"), (0, 20, 40)))
    portrait = list(cached_frames(str(testdata / "edge/rotate90_portrait_face.mp4"), (3,)))
    frames = [group[0], portrait[0], group[1], group[2]]
    expected = RetinaFaceDetector(config=cfg).detect(frames)
    det = TorchRetinaFaceDetector(config=cfg, device="cpu")
    got = det.detect([torch.from_numpy(np.array(f)) if i % 2 else f for i, f in enumerate(frames)])
    assert sum(len(f) for f in expected) >= 7
    _same_faces(expected, got)


def test_input_checks():
    det = TorchRetinaFaceDetector(device="cpu")
    assert det.detect([]) == []
    with pytest.raises(ValueError):
        det.detect([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError):
        det.detect([torch.zeros(10, 10, 3)])        # float tensor
    assert det.detect([np.zeros((64, 64, 3), np.uint8)]) == [[]]


@pytest.mark.needs_cuda
def test_cuda_detections_match_onnxruntime(testdata):
    frames = list(cached_frames(str(testdata / "edge/multi_face_group_zoompan.mp4"), (0, 20, 40)))
    expected = RetinaFaceDetector().detect(frames)
    det = TorchRetinaFaceDetector(device="cuda")
    # the port runs under the product's numerics (full FP32, no TF32): the detector set them when built
    with product_numerics():
        got = det.detect([torch.from_numpy(np.array(f)).cuda() for f in frames])
    _same_faces(expected, got, tol_px=1.0)
