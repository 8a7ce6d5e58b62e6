"""training/degradations.py: statistics of every operator and determinism under a seed."""
from __future__ import annotations

import numpy as np
import pytest

from training.config import DegradationConfig
from training.dataset import read_image
from training.degradations import (add_gaussian_noise, apply_degradation, blur, color_jitter, degrade,
                                   downsample, gaussian_kernel, jpeg_compress, sample_params, to_gray)


@pytest.fixture(scope="module")
def face(testdata):
    return read_image(testdata / "images" / "gfpgan_cropped_Adele_512.png", 256)


def _moments(k):
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    xx, yy = np.meshgrid(r, r)
    return (k * xx).sum(), (k * yy).sum(), np.array([[(k * xx * xx).sum(), (k * xx * yy).sum()],
                                                      [(k * xx * yy).sum(), (k * yy * yy).sum()]])


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0])
def test_iso_kernel_sums_to_one_and_has_the_sigma(sigma):
    k = gaussian_kernel(41, sigma)
    mx, my, cov = _moments(k.astype(np.float64))
    assert k.shape == (41, 41) and k.sum() == pytest.approx(1.0, abs=1e-5)
    assert abs(mx) < 1e-6 and abs(my) < 1e-6
    assert np.sqrt(cov[0, 0]) == pytest.approx(sigma, rel=0.02) and np.sqrt(cov[1, 1]) == pytest.approx(sigma, rel=0.02)
    assert abs(cov[0, 1]) < 1e-6


def test_aniso_kernel_covariance_is_rotated():
    sx, sy, theta = 4.0, 1.5, 0.6
    _, _, cov = _moments(gaussian_kernel(41, sx, sy, theta).astype(np.float64))
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    np.testing.assert_allclose(cov, rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T, rtol=0.02, atol=0.02)


def test_blur_of_an_impulse_is_the_kernel():
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0
    k = gaussian_kernel(11, 2.0, 1.0, 0.3)
    out = blur(img, k)
    np.testing.assert_allclose(out[15:26, 15:26, 1], k[::-1, ::-1], atol=1e-7)  # correlation = flipped
    assert out.sum() == pytest.approx(3.0, rel=1e-5)


@pytest.mark.parametrize("sigma", [5.0, 15.0])
def test_noise_std_matches(sigma):
    img = np.full((256, 256, 3), 0.5, np.float32)
    out = add_gaussian_noise(img, sigma, np.random.default_rng(0))
    d = (out - img) * 255
    assert abs(d.mean()) < 0.1 and d.std() == pytest.approx(sigma, rel=0.02)


def test_jpeg_error_falls_as_quality_rises(face):
    errs = [np.abs(jpeg_compress(face, q) - face).mean() for q in (10, 30, 60, 90, 100)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.01 and errs[0] > 0.02


@pytest.mark.parametrize("scale, expect", [(1.0, 256), (2.0, 128), (3.0, 85), (8.0, 32), (0.8, 319)])  # 256 // 0.8 = 319 (float floor), as the authors
def test_downsample_factor(face, scale, expect):
    out = downsample(face, scale)
    assert out.shape == (expect, expect, 3) and out.dtype == np.float32
    assert np.abs(out.mean() - face.mean()) < 0.01


def test_color_jitter_and_gray(face):
    shift = np.array([0.05, -0.05, 0.0], np.float32)
    out = color_jitter(face, shift)
    inner = (face > 0.1) & (face < 0.9)
    np.testing.assert_allclose((out - face)[inner[..., 0], 0], 0.05, atol=1e-6)
    g = to_gray(face)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    assert g[..., 0] == pytest.approx(face @ np.array([0.299, 0.587, 0.114], np.float32), abs=1e-6)


def test_sampled_parameters_stay_in_range():
    cfg = DegradationConfig()
    rng = np.random.default_rng(3)
    ps = [sample_params(cfg, rng) for _ in range(400)]
    assert all(0.1 <= p.sigma[0] <= 10 and 0.1 <= p.sigma[1] <= 10 for p in ps)
    assert all(0.8 <= p.scale <= 8 and 0 <= p.noise_sigma <= 20 and 60 <= p.jpeg_quality <= 100 for p in ps)
    aniso = sum(p.sigma[0] != p.sigma[1] for p in ps)
    assert 150 < aniso < 250                                      # kernel_prob 0.5 / 0.5
    jit = [p.jitter for p in ps if p.jitter is not None]
    assert 90 < len(jit) < 150 and max(np.abs(j).max() for j in jit) <= 20 / 255 + 1e-7
    assert sum(p.gray for p in ps) < 15 and all(p.kernel.shape == (41, 41) for p in ps)


def test_same_seed_same_output_and_quantised(face):
    cfg = DegradationConfig()
    a, _ = degrade(face, cfg, np.random.default_rng(7))
    b, _ = degrade(face, cfg, np.random.default_rng(7))
    c, _ = degrade(face, cfg, np.random.default_rng(8))
    assert a.shape == face.shape and np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_allclose(a * 255, np.rint(a * 255), atol=1e-4)
    assert 0 <= a.min() and a.max() <= 1


def test_stronger_degradation_moves_further(face):
    cfg = DegradationConfig()
    p = sample_params(cfg, np.random.default_rng(0))
    from dataclasses import replace
    mild = replace(p, kernel=gaussian_kernel(41, 0.3), scale=1.0, noise_sigma=0.0, jpeg_quality=100,
                   jitter=None, gray=False)
    harsh = replace(mild, kernel=gaussian_kernel(41, 6.0), scale=6.0, noise_sigma=15.0, jpeg_quality=60)
    e_mild = np.abs(apply_degradation(face, mild, np.random.default_rng(0)) - face).mean()
    e_harsh = np.abs(apply_degradation(face, harsh, np.random.default_rng(0)) - face).mean()
    assert e_mild < 0.01 < e_harsh


def test_gt_gray_option(face):
    from dataclasses import replace
    cfg = replace(DegradationConfig(), gray_prob=1.0, gt_gray=True)
    lq, gt = degrade(face, cfg, np.random.default_rng(0))
    assert np.array_equal(gt[..., 0], gt[..., 2]) and np.array_equal(lq[..., 0], lq[..., 1])


def _authors_color_jitter_pt():
    """The authors' FFHQDegradationDataset.color_jitter_pt (gfpgan 1.3.8 wheel), its source run alone."""
    import ast
    import zipfile

    from tests.support import reference
    wheel = reference.find_wheel()
    if wheel is None:
        pytest.skip("gfpgan-1.3.8 wheel not found")
    src = zipfile.ZipFile(wheel).read("gfpgan/data/ffhq_degradation_dataset.py").decode()
    fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == "color_jitter_pt")
    fn.decorator_list = []
    import torch
    from torchvision.transforms.functional import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation
    ns = {"torch": torch, "adjust_brightness": adjust_brightness, "adjust_contrast": adjust_contrast,
          "adjust_saturation": adjust_saturation, "adjust_hue": adjust_hue}
    exec(compile(ast.Module([fn], []), "color_jitter_pt", "exec"), ns)
    return ns["color_jitter_pt"]


def test_tensor_color_jitter_equals_the_authors(face):
    import torch

    from training.degradations import JITTER_OPS, color_jitter_pt
    theirs = _authors_color_jitter_pt()
    ranges = dict(brightness=(0.5, 1.5), contrast=(0.5, 1.5), saturation=(0.0, 1.5), hue=(-0.1, 0.1))
    for seed in range(4):
        torch.manual_seed(seed)                   # replay their draws: randperm(4), then one factor per op
        order = [int(i) for i in torch.randperm(4)]
        factors = {}
        for i in order:
            factors[i] = torch.tensor(1.0).uniform_(*ranges[JITTER_OPS[i]]).item()
        torch.manual_seed(seed)
        ref = theirs(torch.from_numpy(face.transpose(2, 0, 1).copy()), **ranges).numpy().transpose(1, 2, 0)
        ours = color_jitter_pt(face, tuple(order), tuple(factors[i] for i in range(4)))
        np.testing.assert_allclose(ours, ref, atol=1e-6)
        assert np.abs(ours - face).max() > 0.01


def test_tensor_color_jitter_probability_and_ranges():
    cfg = DegradationConfig()
    rng = np.random.default_rng(5)
    ps = [sample_params(cfg, rng) for _ in range(600)]
    drawn = [p.jitter_pt for p in ps if p.jitter_pt is not None]
    assert 140 < len(drawn) < 220                                     # p = 0.3 of 600
    for order, f in drawn:
        assert sorted(order) == [0, 1, 2, 3]
        assert 0.5 <= f[0] <= 1.5 and 0.5 <= f[1] <= 1.5 and 0 <= f[2] <= 1.5 and -0.1 <= f[3] <= 0.1
    off = DegradationConfig(color_jitter_pt_prob=0.0)
    assert all(sample_params(off, rng).jitter_pt is None for _ in range(50))
