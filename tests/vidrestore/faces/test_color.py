"""--color-match lab: the restored face gets the original's Lab mean and spread inside the mask; the
torch version (GPU path) gives the same pixels within 2 levels."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from vidrestore.faces.color import lab_to_rgb_torch, match_lab, match_lab_torch, rgb_to_lab_torch
from vidrestore.faces.masks import face_mask
from tests.support.face_frames import cached_frames


def _lab_stats(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[mask > 0.99]
    return lab.mean(0), lab.std(0)


def _crops(testdata) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from vidrestore.faces.align import similarity_from_landmarks, warp_crops
    (frame,) = cached_frames(str(testdata / "clips/lp_d0_talking_512.mp4"), None, 1)
    lm = np.array([[200, 240], [310, 240], [255, 300], [210, 350], [300, 350]], np.float32)
    original = warp_crops(np.ascontiguousarray(frame), similarity_from_landmarks(lm, crop_size=256)[None],
                          crop_size=256)[0]
    # a "restorer" that shifts the colour and squeezes the contrast, with some detail of its own
    noise = np.random.default_rng(0).normal(0, 6, original.shape)
    restored = np.clip(original.astype(np.float64) * 0.6 + np.array([70, 20, -10]) + noise, 0, 255)
    return original, restored.astype(np.uint8), face_mask(256, 0.03, 0.02)


def test_match_moves_mean_and_spread_to_the_original(testdata) -> None:
    original, restored, mask = _crops(testdata)
    out = match_lab(restored, original, mask)
    mo, so = _lab_stats(original, mask)
    mr, sr = _lab_stats(restored, mask)
    mm, sm = _lab_stats(out, mask)
    assert np.abs(mr - mo).max() > 8                                 # the restorer shifted the colour
    assert np.abs(mm - mo).max() < 1.0, (mm, mo)                     # matched: mean within 1 Lab unit
    assert np.abs(sm - so).max() < 0.15 * so.max() + 0.5, (sm, so)
    assert np.abs(sr - so).max() > np.abs(sm - so).max()
    empty = match_lab(restored, original, np.zeros_like(mask))       # no mask: nothing to match
    np.testing.assert_array_equal(empty, restored)


def test_torch_lab_round_trip_and_parity(testdata) -> None:
    original, restored, mask = _crops(testdata)
    x = torch.from_numpy(restored).permute(2, 0, 1)[None].float() / 255
    lab = rgb_to_lab_torch(x)
    ref = cv2.cvtColor(restored.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    assert np.abs(lab[0].permute(1, 2, 0).numpy() - ref).max() < 0.5      # OpenCV tabulates the gamma
    assert (lab_to_rgb_torch(lab) - x).abs().max() < 1e-3

    def to_t(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
    got = match_lab_torch(to_t(restored), to_t(original), torch.from_numpy(np.array(mask)))
    got = ((got[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    want = match_lab(restored, original, mask)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
