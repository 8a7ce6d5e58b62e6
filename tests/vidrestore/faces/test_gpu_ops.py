"""GpuImageOps against CpuImageOps on real frames: the torch path on the CPU here, CUDA paths when present.

The 512-px checks here use bilinear resampling ("linear", what the CUDA kernels implement): the torch
reference's Lanczos/cubic sampling takes tens of seconds per 512 crop on a loaded CPU. The higher-order paths
are compared with OpenCV at a smaller crop in test_paste_resampling.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.face_frames import cached_frames
from vidrestore.config import AlignConfig, EncodeConfig, ModelConfig, PasteConfig, RestoreConfig
from vidrestore.errors import BackendUnavailable
from vidrestore.faces.align import similarity_from_landmarks, tensor_to_crops
from vidrestore.faces.detect import RetinaFaceDetector
from vidrestore.faces.gpu_ops import GpuImageOps
from vidrestore.faces.ops import CpuImageOps

CLIP = "clips/lp_s18_interview_1280x720_audio.mp4"


@pytest.fixture(scope="module")
def frame_and_mats(testdata):
    """A real 720p frame and three alignment matrices: the detected face, a rotated and shifted
    copy, and one hanging over the frame's left/top edge (grey border in the crop)."""
    frame = np.array(cached_frames(str(testdata / CLIP), (10,))[0])
    faces = RetinaFaceDetector().detect([frame])[0]
    assert faces, "the test clip should show a face"
    lm = faces[0].landmarks
    c = lm.mean(0)
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    lm_rot = (lm - c) @ rot.T * 0.8 + c + (40.0, -25.0)
    lm_edge = lm - c + (30.0, 40.0)                   # centred near the top-left corner
    mats = np.stack([similarity_from_landmarks(p) for p in (lm, lm_rot, lm_edge)])
    return frame, mats


def _restored_like(crops_u8: np.ndarray) -> np.ndarray:
    """A deterministic 'restoration' that changes every pixel (so paste differences show)."""
    x = crops_u8.astype(np.int32)
    return np.clip(255 - x[..., ::-1] // 2 + 20, 0, 255).astype(np.uint8)


def _to_tensor(crops_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def test_crops_match_cpu(frame_and_mats):
    frame, mats = frame_and_mats
    cpu = CpuImageOps(interpolation="linear").warp(frame, mats, crop_size=512)
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    crops = ops.warp(ops.upload(frame), mats, crop_size=512)
    assert crops.shape == (3, 3, 512, 512) and crops.dtype == torch.float32
    got = tensor_to_crops(crops)
    diff = np.abs(got.astype(np.int16) - cpu.astype(np.int16))
    assert diff.max() <= 2, diff.max()
    assert diff.mean() < 0.3, diff.mean()
    # the edge crop really has GFP-GAN's grey border, on both paths
    assert (cpu[2, 0, 0] == (135, 133, 132)).all() and (got[2, 0, 0] == (135, 133, 132)).all()
    # to_input keeps the normalised crops; from_output keeps tensors
    assert torch.equal(ops.to_input(crops), crops)
    assert isinstance(ops.from_output(crops), torch.Tensor)


@pytest.mark.parametrize("strength,with_originals", [(1.0, True), (0.6, True), (0.6, False)])
def test_paste_matches_cpu(frame_and_mats, strength, with_originals):
    frame, mats = frame_and_mats
    cpu_ops = CpuImageOps(interpolation="linear")
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    originals = cpu_ops.warp(frame, mats, crop_size=512)
    restored = _restored_like(originals)
    cfg = PasteConfig(strength=strength, feather=0.05)
    expected = cpu_ops.paste(frame, restored, mats, config=cfg,
                             originals=originals if with_originals else None)
    dev_frame = ops.upload(frame)
    got_t = ops.paste(dev_frame, _to_tensor(restored), mats, config=cfg,
                      originals=_to_tensor(originals) if with_originals else None)
    got = ops.to_host(got_t)
    assert got.shape == frame.shape and got.dtype == np.uint8
    changed = np.any(expected != frame, axis=2)
    assert changed.mean() > 0.05                     # the paste did something big
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 2, diff.max()
    assert diff.mean() < 0.1, diff.mean()
    # the input frame is untouched and pixels far from every face are bit-exact
    assert np.array_equal(ops.to_host(dev_frame), frame)
    assert np.array_equal(got[:, -200:], frame[:, -200:])


def test_paste_strength_zero_and_numpy_frames(frame_and_mats):
    frame, mats = frame_and_mats
    mats = mats[:1]
    before = frame.copy()
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    crops = ops.warp(frame, mats, crop_size=512)      # numpy frames are accepted too
    out = ops.paste(frame, -crops, mats, config=PasteConfig(strength=0.0), originals=crops)
    assert np.array_equal(ops.to_host(out), frame)
    out = ops.paste(frame, -crops, mats, config=PasteConfig(), originals=crops)
    assert not np.array_equal(ops.to_host(out), frame)
    assert np.array_equal(frame, before)             # the caller's array is never written


def test_mask_is_the_cpu_feather_mask():
    from vidrestore.faces.paste import feather_mask
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    m = ops.mask(512, 0.05)
    assert m is ops.mask(512, 0.05)                  # uploaded once
    assert np.array_equal(m.numpy(), feather_mask(512, 0.05))


def test_kernel_choices():
    assert GpuImageOps(device="cpu").kernels == "torch"
    with pytest.raises(BackendUnavailable):
        GpuImageOps(device="cpu", kernels="cupy")
    with pytest.raises(ValueError):
        GpuImageOps(device="cpu", kernels="triton")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable):
            GpuImageOps(device="cuda")


def test_restore_video_with_torch_ops(testdata, tmp_path):
    """The whole pipeline with GpuImageOps (torch path) and the identity restorer on a real clip."""
    from vidrestore.media.decode import VideoReader
    from vidrestore.pipeline import restore_video

    src = testdata / "clips/lp_d0_talking_512.mp4"
    out = tmp_path / "out.mp4"
    cfg = RestoreConfig(model=ModelConfig(restorer="identity"),
                        encode=EncodeConfig(codec="libx264", crf=12, preset="ultrafast"),
                        align=AlignConfig(crop_size=256, interpolation="linear"))
    rep = restore_video(src, out, cfg, image_ops=GpuImageOps(device="cpu", kernels="torch", interpolation="linear"))
    assert rep.frames_written == rep.frames_decoded == 78
    assert rep.faces_restored >= 70
    with VideoReader(src) as a, VideoReader(out) as b:
        for i, (fa, fb) in enumerate(zip(a, b)):
            if i % 20:
                continue
            mse = np.mean((fa.rgb.astype(np.float64) - fb.rgb.astype(np.float64)) ** 2)
            assert 10 * np.log10(255.0 ** 2 / max(mse, 1e-9)) > 33.0


@pytest.mark.needs_cuda
@pytest.mark.parametrize("kernels", ["torch", "cupy"])
def test_cuda_matches_cpu(frame_and_mats, kernels):
    pytest.importorskip("cupy") if kernels == "cupy" else None
    frame, mats = frame_and_mats
    interp = "linear" if kernels == "cupy" else "lanczos"        # the CUDA kernels are bilinear
    cpu_ops = CpuImageOps(interpolation=interp)
    ops = GpuImageOps(device="cuda", kernels=kernels, interpolation=interp)
    assert ops.kernels == kernels
    dev = ops.upload(frame)
    assert dev.is_cuda and dev.dtype == torch.uint8
    crops = ops.warp(dev, mats, crop_size=512)
    assert crops.is_cuda
    cpu = cpu_ops.warp(frame, mats, crop_size=512)
    assert np.abs(tensor_to_crops(crops).astype(np.int16) - cpu.astype(np.int16)).max() <= 2
    restored = _restored_like(cpu)
    cfg = PasteConfig(strength=0.7)
    expected = cpu_ops.paste(frame, restored, mats, config=cfg, originals=cpu)
    got = ops.to_host(ops.paste(dev, _to_tensor(restored).cuda(), mats, config=cfg, originals=crops))
    assert np.abs(got.astype(np.int16) - expected.astype(np.int16)).max() <= 2
    half = GpuImageOps(device="cuda", kernels=kernels, dtype=torch.float16, interpolation=interp)
    c16 = half.warp(dev, mats, crop_size=512)
    assert c16.dtype == torch.float16
    assert (c16.float() - crops).abs().max().item() < 4e-3


@pytest.mark.skipif(not __import__("tests.support.cuda_emu", fromlist=["x"]).available(),
                    reason="g++ not available for the kernel emulation")
def test_cupy_wrappers_on_the_emulator(frame_and_mats):
    """GpuImageOps driving the real WarpKernels wrapper (warp.cu emulated on the CPU) at a small crop
    size: every argument passes the wrapper's checks and the results match CpuImageOps."""
    from tests.support.emulated_kernels import emulated
    frame, mats = frame_and_mats
    size = 48
    small = mats[:2].copy()
    small[:, :, :] *= size / 512.0                      # the same alignments for a 48 px crop
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    ops._k, ops.kernels = emulated("warp"), "cupy (emulated)"
    cpu_ops = CpuImageOps(interpolation="linear")
    crops = ops.warp(ops.upload(frame), small, crop_size=size)
    cpu = cpu_ops.warp(frame, small, crop_size=size)
    assert np.abs(tensor_to_crops(crops).astype(np.int16) - cpu.astype(np.int16)).max() <= 2
    restored = _restored_like(cpu)
    cfg = PasteConfig(strength=0.8, feather=0.1)
    expected = cpu_ops.paste(frame, restored, small, config=cfg, originals=cpu)
    got = ops.to_host(ops.paste(ops.upload(frame), _to_tensor(restored), small, config=cfg, originals=crops))
    assert np.any(expected != frame)
    assert np.abs(got.astype(np.int16) - expected.astype(np.int16)).max() <= 2


@pytest.mark.parametrize("mode", ["face+lab", "parse+lab"])
def test_face_and_parse_masks_and_colour_match_match_cpu(frame_and_mats, mode):
    """The GPU path's masks (static face mask uploaded; per-crop parse masks as tensors) and its torch Lab
    colour match give the CPU path's frame within 2 levels; outside the masks the frame is bit-exact."""
    from vidrestore.faces.masks import hard_face_mask, soften
    frame, mats = frame_and_mats
    mats = mats[:2]
    cpu_ops = CpuImageOps(interpolation="linear")
    ops = GpuImageOps(device="cpu", kernels="torch", interpolation="linear")
    originals = cpu_ops.warp(frame, mats, crop_size=512)
    restored = _restored_like(originals)
    masks = None
    if mode.startswith("parse"):
        cfg = PasteConfig(mask="parse", color_match="lab", strength=0.7)
        hard = np.stack([hard_face_mask(512), np.roll(hard_face_mask(512), 40, axis=1)])   # two shapes
        masks = soften(hard, blur=cfg.mask_blur, erode=cfg.mask_erode)
    else:
        cfg = PasteConfig(mask="face", color_match="lab")
    expected = cpu_ops.paste(frame, restored, mats, config=cfg, originals=originals, masks=masks)
    got = ops.to_host(ops.paste(ops.upload(frame), _to_tensor(restored), mats, config=cfg,
                                originals=_to_tensor(originals),
                                masks=None if masks is None else torch.from_numpy(masks)))
    changed = np.any(expected != frame, axis=2)
    assert changed.mean() > 0.02
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 2, diff.max()
    # the crop's corner (outside every mask) is the original frame on both paths
    inv = np.linalg.inv(np.vstack([mats[0], [0, 0, 1]]))[:2]
    x, y = (np.array([30.0, 30.0]) @ inv[:, :2].T + inv[:, 2]).round().astype(int)
    assert (got[y, x] == frame[y, x]).all() and (expected[y, x] == frame[y, x]).all()
    # a colour-matched paste differs from an unmatched one (the match did something)
    plain = cpu_ops.paste(frame, restored, mats, config=PasteConfig(mask=cfg.mask, strength=cfg.strength),
                          originals=originals, masks=masks)
    assert np.abs(plain.astype(int) - expected.astype(int)).max() > 20
