"""Paste-back: colours and positions kept, only the crop's box touched, borders, odd sizes, strength."""
from __future__ import annotations

import numpy as np
import pytest

from vidrestore.config import AlignConfig, PasteConfig
from vidrestore.faces.align import alignments_for, similarity_from_landmarks, warp_crops
from vidrestore.faces.paste import feather_mask, paste_box, paste_faces
from vidrestore.types import TrackedFace
from tests.support.face_frames import cached_frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def _translation(tx: float, ty: float, scale: float = 1.0) -> np.ndarray:
    return np.array([[[scale, 0, -tx * scale], [0, scale, -ty * scale]]], np.float32)   # frame -> crop


def test_colours_and_positions_are_kept() -> None:
    """A crop with distinct R/G/B patterns pasted at a pure translation lands unchanged, channel by channel."""
    s = 64
    crop = np.zeros((1, s, s, 3), np.uint8)
    crop[0, :, :, 0] = 200                                  # R flat
    crop[0, :, :, 1] = (np.arange(s) * 4)[None, :]          # G ramps along x
    crop[0, :, :, 2] = (np.arange(s) * 4)[:, None]          # B ramps along y
    frame = np.full((120, 150, 3), 10, np.uint8)
    out = paste_faces(frame, crop, _translation(40, 30), config=PasteConfig(mask="box", feather=0.1))
    inner = out[30 + 16:30 + 48, 40 + 16:40 + 48]           # where the mask is 1 (feather ramp = 2*0.1*64 px)
    np.testing.assert_array_equal(inner, crop[0, 16:48, 16:48])
    assert out[30, 40 + 32, 0] < 200                        # feathered edge blends
    assert np.array_equal(frame, np.full((120, 150, 3), 10, np.uint8))   # input untouched


def test_only_the_bounding_box_changes() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (241, 333, 3), dtype=np.uint8)       # odd size
    m = np.array([[[1.3, 0.4, -90], [-0.4, 1.3, -30]]], np.float32)   # rotated + scaled
    crops = np.full((1, 128, 128, 3), 255, np.uint8)
    out = paste_faces(frame, crops, m, config=PasteConfig(mask="box", feather=0.05))
    x0, y0, x1, y1 = paste_box(m[0], 128, 333, 241)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(ys) > 1000
    assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1
    outside = np.ones((241, 333), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    # the box is tight: about the size of the warped square's bounding box
    side = 128 / np.hypot(1.3, 0.4) * (1.3 + 0.4) / np.hypot(1.3, 0.4)
    assert abs((x1 - x0) - side) < 5 and abs((y1 - y0) - side) < 5


def test_identity_restorer_reproduces_the_face_region(testdata) -> None:
    (frame,) = cached_frames(str(testdata / "clips/lp_s18_interview_1280x720_audio.mp4"), None, 1)
    frame = np.ascontiguousarray(frame)
    from vidrestore.faces.detect import RetinaFaceDetector
    face = RetinaFaceDetector().detect([frame])[0][0]
    tf = TrackedFace(track_id=0, frame_index=0, face=face, landmarks=face.landmarks)
    (al,) = alignments_for([tf], config=AlignConfig())
    crops = warp_crops(frame, al.matrix[None], crop_size=512)
    out = paste_faces(frame, crops, al.matrix[None])
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert _psnr(out[y0:y1, x0:x1], frame[y0:y1, x0:x1]) > 38
    assert _psnr(out, frame) > 40


@pytest.mark.parametrize("tx,ty", [(-30, -20), (200, 150), (-100, 100)])
def test_faces_at_the_border(tx: float, ty: float) -> None:
    frame = np.full((181, 251, 3), 50, np.uint8)                   # odd size
    crops = np.full((1, 128, 128, 3), 250, np.uint8)
    out = paste_faces(frame, crops, _translation(tx, ty), config=PasteConfig(mask="box", feather=0.0))
    expected = frame.copy()
    y0, y1 = max(int(ty), 0), min(int(ty) + 128, 181)
    x0, x1 = max(int(tx), 0), min(int(tx) + 128, 251)
    if x1 > x0 and y1 > y0:
        expected[y0:y1, x0:x1] = 250
    np.testing.assert_array_equal(out, expected)


def test_face_entirely_outside_is_ignored() -> None:
    frame = np.full((50, 60, 3), 7, np.uint8)
    out = paste_faces(frame, np.zeros((1, 32, 32, 3), np.uint8), _translation(500, 500))
    np.testing.assert_array_equal(out, frame)


def test_strength_blends_restored_and_original() -> None:
    frame = np.full((100, 100, 3), 100, np.uint8)
    restored = np.full((1, 64, 64, 3), 200, np.uint8)
    original = np.full((1, 64, 64, 3), 100, np.uint8)
    m = _translation(10, 10)
    for originals in (None, original):
        half = paste_faces(frame, restored, m, config=PasteConfig(mask="box", strength=0.5, feather=0.0), originals=originals)
        assert half[40, 40, 0] == 150
        off = paste_faces(frame, restored, m, config=PasteConfig(strength=0.0), originals=originals)
        np.testing.assert_array_equal(off, frame)


def test_overlapping_faces_paste_in_order() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    crops = np.stack([np.full((64, 64, 3), 100, np.uint8), np.full((64, 64, 3), 200, np.uint8)])
    m = np.concatenate([_translation(0, 0), _translation(30, 30)])
    out = paste_faces(frame, crops, m, config=PasteConfig(mask="box", feather=0.0))
    assert out[10, 10, 0] == 100 and out[50, 50, 0] == 200 and out[80, 80, 0] == 200


def test_inplace_and_mask_cache() -> None:
    frame = np.zeros((80, 80, 3), np.uint8)
    out = paste_faces(frame, np.full((1, 32, 32, 3), 9, np.uint8), _translation(5, 5), inplace=True,
                      config=PasteConfig(mask="box"))
    assert out is frame and frame[20, 20, 0] == 9
    a, b = feather_mask(512, 0.05), feather_mask(512, 0.05)
    assert a is b and not a.flags.writeable
    assert a[256, 256] == 1.0 and a[0, 256] < 0.01 and a[0, 0] < a[0, 256]
    assert np.allclose(a, a.T) and np.allclose(a, a[::-1])


def test_rotated_round_trip_matches_frame() -> None:
    """warp -> paste with an identity restorer at a rotation/scale keeps a smooth image nearly unchanged."""
    yy, xx = np.mgrid[0:203, 0:301]
    frame = np.stack([(xx * 0.8) % 256, (yy * 1.1) % 256, ((xx + yy) * 0.5) % 256], -1).astype(np.uint8)
    landmarks = np.array([[120, 90], [160, 80], [145, 110], [128, 135], [165, 128]], np.float32)
    m = similarity_from_landmarks(landmarks, crop_size=256)[None]
    out = paste_faces(frame, warp_crops(frame, m, crop_size=256), m)
    assert _psnr(out, frame) > 38
