"""Alignment: Umeyama fit, template geometry, warping, tensor conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.config import AlignConfig
from vidrestore.faces.align import (FFHQ_TEMPLATE_512, alignments_for, crops_to_tensor, similarity_from_landmarks,
                                    tensor_to_crops, umeyama_similarity, warp_crops)
from vidrestore.types import Face, TrackedFace


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_template_maps_to_itself() -> None:
    m = similarity_from_landmarks(FFHQ_TEMPLATE_512)
    assert m.dtype == np.float32 and m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    m256 = similarity_from_landmarks(FFHQ_TEMPLATE_512, crop_size=256)
    np.testing.assert_allclose(m256, [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-5)


@pytest.mark.parametrize("scale,angle,tx,ty", [(0.3, 0, 100, 50), (2.0, 30, -40, 10), (0.7, -170, 500, 300)])
def test_recovers_exact_similarity(scale, angle, tx, ty) -> None:
    to_crop = _similarity(scale, angle, tx, ty)
    inv = np.linalg.inv(np.vstack([to_crop, [0, 0, 1]]))[:2]
    landmarks = _apply(inv, FFHQ_TEMPLATE_512.astype(np.float64))       # frame landmarks of a perfect face
    m = similarity_from_landmarks(landmarks.astype(np.float32))
    np.testing.assert_allclose(m, to_crop, rtol=1e-4, atol=2e-3)


def test_no_reflection_for_mirrored_points() -> None:
    mirrored = FFHQ_TEMPLATE_512 * np.array([-1, 1], np.float32) + np.array([512, 0], np.float32)
    m = umeyama_similarity(mirrored, FFHQ_TEMPLATE_512)
    assert np.linalg.det(m[:, :2]) > 0                                  # a rotation, never a flip


def test_least_squares_with_noise() -> None:
    rng = np.random.default_rng(0)
    to_crop = _similarity(1.5, 12, 30, -20)
    inv = np.linalg.inv(np.vstack([to_crop, [0, 0, 1]]))[:2]
    landmarks = _apply(inv, FFHQ_TEMPLATE_512.astype(np.float64)) + rng.normal(0, 0.5, (5, 2))
    m = similarity_from_landmarks(landmarks)
    residual = np.abs(_apply(m.astype(np.float64), landmarks) - FFHQ_TEMPLATE_512).max()
    assert residual < 5.0
    np.testing.assert_allclose(np.sqrt(abs(np.linalg.det(m[:, :2]))), 1.5, rtol=0.02)


def _tracked(size: float, tid: int = 0) -> TrackedFace:
    box = np.array([100, 100, 100 + size, 100 + size], np.float32)
    lm = (FFHQ_TEMPLATE_512 / 512 * size + 100).astype(np.float32)
    return TrackedFace(track_id=tid, frame_index=0, face=Face(box=box, landmarks=lm, score=0.99), landmarks=lm)


def test_alignments_skip_small_faces() -> None:
    al = alignments_for([_tracked(20, 1), _tracked(200, 2)], config=AlignConfig(min_face=32))
    assert [a.track_id for a in al] == [2]
    assert al[0].crop_size == 512 and al[0].face_size == pytest.approx(200)
    np.testing.assert_allclose(al[0].matrix[:, :2], np.eye(2) * 512 / 200, atol=1e-4)


def test_warp_crops_samples_the_right_pixels() -> None:
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[..., 0] = np.arange(400)[None, :] % 256
    frame[..., 1] = np.arange(300)[:, None] % 256
    frame[..., 2] = 77
    m = np.array([[[1, 0, -50], [0, 1, -20]], [[0.5, 0, 0], [0, 0.5, 0]]], np.float32)
    crops = warp_crops(frame, m, crop_size=128)
    assert crops.shape == (2, 128, 128, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], frame[20:148, 50:178])     # pure translation: exact copy
    assert crops[1][10, 10, 0] == frame[20, 20, 0] and crops[1][10, 10, 2] == 77
    # outside the frame: constant grey border
    far = warp_crops(frame, np.array([[1, 0, 1000], [0, 1, 1000]], np.float32), crop_size=8)
    assert (far[0] == np.array([135, 133, 132], np.uint8)).all()


def test_tensor_round_trip() -> None:
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    t = crops_to_tensor(crops)
    assert t.shape == (2, 3, 16, 16) and t.dtype == torch.float32
    assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
    assert float(t[0, 0, 3, 4]) == pytest.approx(crops[0, 3, 4, 0] / 127.5 - 1.0, abs=1e-6)   # channel 0 = R
    np.testing.assert_array_equal(tensor_to_crops(t), crops)
    np.testing.assert_array_equal(tensor_to_crops(t * 3.0).max(), 255)   # clamped
    np.testing.assert_array_equal(tensor_to_crops(t.half()), crops)
