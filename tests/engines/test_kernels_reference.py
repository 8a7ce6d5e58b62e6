"""The torch references of the CUDA kernels against independent formulations (CPU only).

Modulated conv: the authors' StyleConv/ToRGB from the gfpgan 1.3.8 wheel and a grouped convolution
written here the authors' way. Image work: OpenCV (warpAffine, cvtColor) and full-frame numpy.
"""
from __future__ import annotations

import math
import os
import sys
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines import kernels_reference as R

REPO = Path(__file__).resolve().parents[2]
WHEEL_NAME = "gfpgan-1.3.8-py3-none-any.whl"


# ----------------------------------------------------------------------------- authors' code
def _find_wheel() -> Path | None:
    for c in (os.environ.get("VIDRESTORE_GFPGAN_WHEEL"), REPO / ".cache" / "reference" / WHEEL_NAME,
              Path("/work/refcache") / WHEEL_NAME):
        if c and Path(c).is_file():
            return Path(c)
    return None


@pytest.fixture(scope="module")
def authors_arch() -> types.ModuleType:
    """gfpgan/archs/stylegan2_clean_arch.py from the wheel, with stubs for its two basicsr imports."""
    wheel = _find_wheel()
    if wheel is None:
        from tests.support.require import require
        require(None, f"{WHEEL_NAME} not found in .cache/reference/")
    code = zipfile.ZipFile(wheel).read("gfpgan/archs/stylegan2_clean_arch.py").decode()

    def default_init_weights(module_list, scale=1, bias_fill=0, **kwargs):
        for m in (module_list if isinstance(module_list, list) else [module_list]):
            for sub in m.modules():
                if isinstance(sub, torch.nn.Linear):
                    torch.nn.init.kaiming_normal_(sub.weight, **kwargs)
                    sub.weight.data *= scale
                    sub.bias.data.fill_(bias_fill)

    registry = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    stubs = {"basicsr": types.ModuleType("basicsr"), "basicsr.utils": types.ModuleType("basicsr.utils"),
             "basicsr.utils.registry": types.ModuleType("basicsr.utils.registry"),
             "basicsr.archs": types.ModuleType("basicsr.archs"),
             "basicsr.archs.arch_util": types.ModuleType("basicsr.archs.arch_util")}
    stubs["basicsr.utils.registry"].ARCH_REGISTRY = registry
    stubs["basicsr.archs.arch_util"].default_init_weights = default_init_weights
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        mod = types.ModuleType("authors_stylegan2_clean_arch")
        exec(compile(code, "stylegan2_clean_arch.py", "exec"), mod.__dict__)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod


def _ours_styleconv(x, s, weight, bias, noise, strength, *, upsample):
    """Input-modulation StyleConv built from the reference kernels + an ordinary conv."""
    if upsample:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    xm = R.modulate_input(x, s)
    y = F.conv2d(xm, weight.reshape(weight.shape[-4:]), padding=weight.shape[-1] // 2)
    demod = R.style_demod(s, R.weight_sq_sum(weight))
    return R.modconv_epilogue(y, demod, bias, noise=noise, noise_strength=strength)


def _randomize(module: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("sample_mode", [None, "upsample"])
def test_styleconv_matches_authors(authors_arch, sample_mode):
    gen = torch.Generator().manual_seed(1)
    conv = authors_arch.StyleConv(12, 16, 3, num_style_feat=10, demodulate=True, sample_mode=sample_mode)
    _randomize(conv, gen)
    x = torch.randn(3, 12, 8, 8, generator=gen)
    style = torch.randn(3, 10, generator=gen)
    size = 16 if sample_mode else 8
    noise = torch.randn(1, 1, size, size, generator=gen)
    with torch.no_grad():
        want = conv(x, style, noise=noise)
        s = conv.modulated_conv.modulation(style)
        got = _ours_styleconv(x, s, conv.modulated_conv.weight, conv.bias, noise, float(conv.weight),
                              upsample=bool(sample_mode))
        wrong = R.modconv_epilogue(F.conv2d(R.modulate_input(x if not sample_mode else F.interpolate(
            x, scale_factor=2, mode="bilinear", align_corners=False), s), conv.modulated_conv.weight[0], padding=1),
            R.style_demod(s, R.weight_sq_sum(conv.modulated_conv.weight)), conv.bias, noise=noise,
            noise_strength=float(conv.weight), gain=1.0)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    assert (wrong - want).abs().max() > 0.1  # the comparison does see a missing sqrt(2)


def test_torgb_matches_authors(authors_arch):
    gen = torch.Generator().manual_seed(2)
    rgb = authors_arch.ToRGB(16, num_style_feat=10, upsample=True)
    _randomize(rgb, gen)
    x = torch.randn(2, 16, 8, 8, generator=gen)
    style = torch.randn(2, 10, generator=gen)
    with torch.no_grad():
        want = rgb(x, style)
        s = rgb.modulated_conv.modulation(style)
        y = F.conv2d(R.modulate_input(x, s), rgb.modulated_conv.weight[0])
        got = R.modconv_epilogue(y, None, rgb.bias, gain=1.0, activate=False)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_styleconv_matches_grouped_conv():
    """The authors' formulation (weight modulation, grouped conv) written here; needs no wheel."""
    gen = torch.Generator().manual_seed(3)
    b, cin, cout, k = 4, 6, 10, 3
    x = torch.randn(b, cin, 9, 7, generator=gen)
    s = torch.randn(b, cin, generator=gen) + 1.0
    weight = torch.randn(1, cout, cin, k, k, generator=gen) / math.sqrt(cin * k * k)
    bias = torch.randn(1, cout, 1, 1, generator=gen)
    noise = torch.randn(1, 1, 9, 7, generator=gen)
    strength = 0.37
    w = weight * s.view(b, 1, cin, 1, 1)
    w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(b, cout, 1, 1, 1)
    out = F.conv2d(x.view(1, b * cin, 9, 7), w.view(b * cout, cin, k, k), padding=1, groups=b).view(b, cout, 9, 7)
    want = F.leaky_relu(out * 2 ** 0.5 + strength * noise + bias, 0.2)
    got = _ours_styleconv(x, s, weight, bias, noise, strength, upsample=False)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_style_demod_and_modulate_dtypes():
    gen = torch.Generator().manual_seed(4)
    s16 = torch.randn(3, 20, generator=gen).half()
    wsq = torch.rand(7, 20, generator=gen)
    want = 1.0 / torch.sqrt((s16.float()[:, None, :] ** 2 * wsq[None]).sum(-1) + 1e-8)
    got = R.style_demod(s16, wsq)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    x16 = torch.randn(3, 20, 4, 4, generator=gen).half()
    m = R.modulate_input(x16, s16)
    assert m.dtype == torch.float16
    torch.testing.assert_close(m, (x16.float() * s16.float()[:, :, None, None]).half())
    out = torch.empty_like(x16)
    assert R.modulate_input(x16, s16, out=out) is out


def test_weight_sq_sum_shapes():
    w = torch.randn(1, 5, 4, 3, 3)
    torch.testing.assert_close(R.weight_sq_sum(w), (w[0] ** 2).sum((2, 3)))
    torch.testing.assert_close(R.weight_sq_sum(w[0]), (w[0] ** 2).sum((2, 3)))
    with pytest.raises(ValueError, match="modulated-conv weight"):
        R.weight_sq_sum(torch.randn(5, 4, 3))


# ----------------------------------------------------------------------------- SFT
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sft_half_matches_split_concat(dtype):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 8, 5, 6, generator=gen).to(dtype)
    scale = torch.randn(2, 4, 5, 6, generator=gen).to(dtype)
    shift = torch.randn(2, 4, 5, 6, generator=gen).to(dtype)
    unchanged, modulated = torch.split(x.float(), 4, dim=1)
    want = torch.cat([unchanged, modulated * scale.float() + shift.float()], dim=1).to(dtype)
    got = x.clone()
    assert R.sft_half(got, scale, shift) is got
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got[:, :4], x[:, :4], atol=0, rtol=0)


# ----------------------------------------------------------------------------- geometry
def smooth_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB test frame (bilinear results of OpenCV's 1/32-pixel fixed point stay close)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 9 + yy / 13), 128 + 100 * np.cos(xx / 11), 128 + 80 * np.sin(yy / 7)], -1)
    return (img + rng.normal(0, 2, img.shape)).clip(0, 255).round().astype(np.uint8)


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


# frame -> crop matrices for a 120x160 frame and 48 px crops: inside, straddling two edges, rotated
FRAME_TO_CROP = np.stack([similarity(0.6, 0.3, -10, 5), similarity(0.9, -0.5, 20, 60), similarity(0.5, 2.0, 40, 30)])


def test_invert_affine_and_paste_box():
    inv = R.invert_affine(FRAME_TO_CROP)
    for k in range(3):
        full = np.vstack([FRAME_TO_CROP[k], [0, 0, 1]]) @ np.vstack([inv[k], [0, 0, 1]])
        np.testing.assert_allclose(full, np.eye(3), atol=1e-12)
    x0, y0, x1, y1 = R.paste_box(FRAME_TO_CROP[0], 48, 120, 160)
    assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120
    # every frame pixel whose crop point lies in (-1, 48)^2 is inside the box, the others are not needed
    yy, xx = np.mgrid[0:120, 0:160]
    u = FRAME_TO_CROP[0, 0, 0] * xx + FRAME_TO_CROP[0, 0, 1] * yy + FRAME_TO_CROP[0, 0, 2]
    v = FRAME_TO_CROP[0, 1, 0] * xx + FRAME_TO_CROP[0, 1, 1] * yy + FRAME_TO_CROP[0, 1, 2]
    hit = (u > -1) & (u < 48) & (v > -1) & (v < 48)
    assert hit.any()
    assert hit[y0:y1, x0:x1].sum() == hit.sum()
    assert R.paste_box(similarity(1.0, 0.0, 500, 500), 48, 120, 160)[2:] in ((0, 0), (160, 0), (0, 120))


@pytest.mark.parametrize("border,value,cv_border", [
    ("constant", (0, 0, 0), cv2.BORDER_CONSTANT),
    ("constant", (135, 133, 132), cv2.BORDER_CONSTANT),
    ("replicate", (0, 0, 0), cv2.BORDER_REPLICATE)])
def test_warp_crops_rgb_matches_cv2(border, value, cv_border):
    frame = smooth_frame(120, 160)
    inv = R.invert_affine(FRAME_TO_CROP)
    got = R.warp_crops_rgb(torch.from_numpy(frame), inv, size=48, border=border, border_value=value)
    assert got.shape == (3, 3, 48, 48) and got.dtype == torch.float32
    for k in range(3):
        want = cv2.warpAffine(frame, inv[k], (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv_border, borderValue=value).astype(np.float64)
        pix = (got[k].permute(1, 2, 0).double().numpy() + 1.0) * 127.5
        assert np.abs(pix - want).max() < 1.0
        assert np.abs(pix - want).mean() < 0.35
    half = R.warp_crops_rgb(torch.from_numpy(frame), inv, size=48, dtype=torch.float16, border=border,
                            border_value=value)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), got, atol=1e-3, rtol=0)


def test_warp_crops_nv12_equals_convert_then_warp():
    rgb = smooth_frame(120, 160, seed=1)
    y, uv = R.rgb_to_nv12(torch.from_numpy(rgb), matrix="bt709")
    inv = torch.from_numpy(R.invert_affine(FRAME_TO_CROP)).float()
    got = R.warp_crops_nv12(y, uv, inv, matrix="bt709", size=32, border="replicate")
    want = R.warp_crops_rgb(R.nv12_to_rgb(y, uv, matrix="bt709"), inv, size=32, border="replicate")
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    flat = R.warp_crops_nv12(y, uv.reshape(60, 160), inv, matrix="bt709", size=32, border="replicate")
    torch.testing.assert_close(flat, want, atol=0, rtol=0)


def feather_mask(size: int, margin: int) -> np.ndarray:
    ramp = np.clip((np.minimum(np.arange(size), size - 1 - np.arange(size)) - 1) / margin, 0, 1)
    return np.outer(ramp, ramp).astype(np.float32)


def paste_full_frame_cv2(frame: np.ndarray, crop: np.ndarray, frame_to_crop: np.ndarray, mask: np.ndarray,
                         strength: float) -> np.ndarray:
    """facexlib-style full-frame paste with OpenCV: warp crop and mask into the frame, then blend."""
    h, w = frame.shape[:2]
    pix = ((np.clip(crop, -1, 1) + 1) * 127.5).transpose(1, 2, 0).astype(np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(pix, frame_to_crop, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = strength * cv2.warpAffine(mask, frame_to_crop, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                      borderValue=0)[..., None]
    return np.clip(np.round(alpha * warped + (1 - alpha) * frame), 0, 255).astype(np.uint8)


def test_paste_crops_matches_full_frame_cv2():
    frame = smooth_frame(120, 160, seed=2)
    gen = torch.Generator().manual_seed(6)
    # smooth crops with values beyond [-1, 1] (the decoder output is not clamped)
    crops = F.interpolate(torch.randn(3, 3, 6, 6, generator=gen) * 0.9, size=(48, 48), mode="bilinear",
                          align_corners=False)
    mask = feather_mask(48, 8)
    got = torch.from_numpy(frame.copy())
    R.paste_crops(got, crops, FRAME_TO_CROP, torch.from_numpy(mask), strength=0.8)
    want = frame.copy()
    for k in range(3):  # sequential: the crops overlap
        want = paste_full_frame_cv2(want, crops[k].numpy(), FRAME_TO_CROP[k], mask, 0.8)
    diff = np.abs(got.numpy().astype(int) - want.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05
    changed = np.any(got.numpy() != frame, axis=-1)
    assert changed.sum() > 1000
    # nothing outside the union of the boxes moved
    inside = np.zeros_like(changed)
    for k in range(3):
        x0, y0, x1, y1 = R.paste_box(FRAME_TO_CROP[k], 48, 120, 160)
        inside[y0:y1, x0:x1] = True
    assert not (changed & ~inside).any()


def test_paste_crops_strength_zero_and_explicit_boxes():
    frame = torch.from_numpy(smooth_frame(40, 50))
    crops = torch.ones(1, 3, 16, 16)
    mask = torch.ones(16, 16)
    m = similarity(1.0, 0.0, -10, -10)
    assert torch.equal(R.paste_crops(frame.clone(), crops, m[None], mask, strength=0.0), frame)
    full = R.paste_crops(frame.clone(), crops, m[None], mask)
    assert (full[10:26, 10:26] == 255).all()
    boxed = R.paste_crops(frame.clone(), crops, m[None], mask, boxes=[(10, 10, 18, 18)])
    assert (boxed[10:18, 10:18] == 255).all() and torch.equal(boxed[18:], frame[18:])


# ----------------------------------------------------------------------------- colour
def test_nv12_to_rgb_bt601_matches_cv2():
    rng = np.random.default_rng(7)
    h, w = 32, 48
    yp = rng.integers(16, 236, (h, w))   # cv2 clamps Y < 16 to 16; the references follow the standard
    uvp = rng.integers(16, 241, (h // 2, w))
    nv12 = np.concatenate([yp, uvp]).astype(np.uint8)
    want = cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12)
    got = R.nv12_to_rgb(torch.from_numpy(nv12[:h]), torch.from_numpy(nv12[h:]), matrix="bt601").numpy()
    assert np.abs(got.astype(int) - want).max() <= 2


@pytest.mark.parametrize("matrix,kr,kb", [("bt601", 0.299, 0.114), ("bt709", 0.2126, 0.0722)])
def test_colour_matrices_match_the_standard(matrix, kr, kb):
    """Both directions against the matrix derived from Kr, Kb here (float64, numpy)."""
    kg = 1 - kr - kb
    to_ypbpr = np.array([[kr, kg, kb], [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                         [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    blocks = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)  # constant 2x2 blocks: no chroma averaging
    y, uv = R.rgb_to_nv12(torch.from_numpy(blocks), matrix=matrix)
    ypbpr = blocks.astype(np.float64) @ to_ypbpr.T
    np.testing.assert_allclose(y.numpy(), np.round(16 + 219 / 255 * ypbpr[..., 0]), atol=1)
    np.testing.assert_allclose(uv.numpy()[..., 0], np.round(128 + 224 / 255 * ypbpr[::2, ::2, 1]), atol=1)
    np.testing.assert_allclose(uv.numpy()[..., 1], np.round(128 + 224 / 255 * ypbpr[::2, ::2, 2]), atol=1)
    back = R.nv12_to_rgb(y, uv, matrix=matrix).numpy().astype(np.float64)
    yf = (y.numpy().astype(np.float64) - 16) * 255 / 219
    pb = np.repeat(np.repeat((uv.numpy()[..., 0] - 128.0) * 255 / 224, 2, 0), 2, 1)
    pr = np.repeat(np.repeat((uv.numpy()[..., 1] - 128.0) * 255 / 224, 2, 0), 2, 1)
    expect = np.linalg.solve(to_ypbpr, np.stack([yf, pb, pr], -1)[..., None])[..., 0]
    np.testing.assert_allclose(back, np.clip(np.round(expect), 0, 255), atol=1)
    # and a round trip of in-gamut colours lands within 3 levels
    assert np.abs(back - blocks).max() <= 3


def test_rgb_to_nv12_matches_cv2_and_averages_chroma():
    rgb = smooth_frame(32, 48, seed=3)
    y, uv = R.rgb_to_nv12(torch.from_numpy(rgb), matrix="bt601")
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    assert np.abs(y.numpy().astype(int) - i420[:32]).max() <= 1
    blocks = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)
    _, uvb = R.rgb_to_nv12(torch.from_numpy(blocks), matrix="bt601")
    i420b = cv2.cvtColor(blocks, cv2.COLOR_RGB2YUV_I420)
    u_cv = i420b[32:40].reshape(16, 24)
    v_cv = i420b[40:48].reshape(16, 24)
    assert np.abs(uvb.numpy()[..., 0].astype(int) - u_cv).max() <= 1
    assert np.abs(uvb.numpy()[..., 1].astype(int) - v_cv).max() <= 1
    # chroma of a non-constant block is the chroma of its mean colour
    mean = rgb.reshape(16, 2, 24, 2, 3).mean((1, 3))
    _, uvm = R.rgb_to_nv12(torch.from_numpy(np.repeat(np.repeat(mean.round().astype(np.uint8), 2, 0), 2, 1)),
                           matrix="bt601")
    assert np.abs(uv.numpy().astype(int) - uvm.numpy()).max() <= 1
    y_out = torch.empty(32, 48, dtype=torch.uint8)
    uv_out = torch.empty(16, 48, dtype=torch.uint8)
    y2, uv2 = R.rgb_to_nv12(torch.from_numpy(rgb), matrix="bt601", y_out=y_out, uv_out=uv_out)
    assert y2 is y_out and uv2 is uv_out and torch.equal(uv2.reshape(16, 24, 2), uv)
