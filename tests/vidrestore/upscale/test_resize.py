"""Output sizes, the torch Lanczos twin of OpenCV, and pasting geometry composed with the scale."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidrestore.faces.align import warp_crops
from vidrestore.upscale.resize import lanczos_matrix, output_size, resize_rgb, upscaled_matrices


def test_output_size_rules() -> None:
    assert output_size(192, 192, 2) == (384, 384)
    assert output_size(853, 481, 2) == (1706, 962)
    assert output_size(853, 481, 3) == (2559, 1443)        # integer S: exact, odd kept (4:4:4 then)
    assert output_size(853, 481, 1.5) == (1280, 722)        # 1279.5 -> 1280, 721.5 -> 722: even sides
    assert output_size(426, 240, 1.25) == (532, 300)
    assert output_size(100, 60, 1) == (100, 60)


@pytest.mark.parametrize("size", [(106, 74), (212, 148), (80, 56)])
def test_torch_lanczos_matches_opencv(size) -> None:
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    want = cv2.resize(img, size, interpolation=cv2.INTER_LANCZOS4)
    got = resize_rgb(torch.from_numpy(img), size, method="lanczos").numpy()
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.allclose(lanczos_matrix(53, 106).sum(1), 1.0, atol=1e-6)
    assert np.array_equal(resize_rgb(img, size), want)      # numpy path is OpenCV itself


def test_shrinking_uses_area_and_alpha_planes_work() -> None:
    img = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert np.array_equal(resize_rgb(img, (30, 20)), cv2.resize(img, (30, 20), interpolation=cv2.INTER_AREA))
    alpha = np.full((40, 60), 200, np.uint8)
    assert resize_rgb(alpha, (120, 80)).shape == (80, 120)
    assert resize_rgb(torch.from_numpy(alpha), (120, 80)).shape == (80, 120)


def test_upscaled_matrices_cut_the_same_crop() -> None:
    """A crop cut from the x2 Lanczos frame with M . A equals the crop cut from the source with M (the
    geometry the paste uses), and a half-pixel slip (M . diag(1/2) without the centre offset) does not."""
    rng = np.random.default_rng(2)
    small = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2.0)
    big = resize_rgb(small, (256, 192))
    angle, s = np.deg2rad(12.0), 3.1
    m = np.array([[s * np.cos(angle), -s * np.sin(angle), -120.0], [s * np.sin(angle), s * np.cos(angle), -90.0]])
    want = warp_crops(small, m[None], crop_size=128).astype(float)
    got = warp_crops(big, upscaled_matrices(m[None], (128, 96), (256, 192)), crop_size=128).astype(float)
    naive = warp_crops(big, (m @ np.diag([0.5, 0.5, 1.0]))[None], crop_size=128).astype(float)
    inner = (slice(None), slice(16, -16), slice(16, -16))
    err, err_naive = np.abs(got - want)[inner].mean(), np.abs(naive - want)[inner].mean()
    assert err < 1.0 and err_naive > 2 * err
