"""Full bit depth end to end: a 10-bit gradient with a face through the real pipeline (real detector,
identity restorer) keeps 10-bit precision outside the face; a real 12-bit ProRes 4444 clip comes back
as 16-bit PNGs equal to the decoded source wherever no face was pasted."""
from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig
from vidrestore.media.decode import VideoReader
from vidrestore.media.pixels import frame_to_rgb48
from vidrestore.pipeline import restore_video

LSB10 = 64   # one 10-bit step in 16-bit units


def identity(**kw) -> RestoreConfig:
    return RestoreConfig(model=ModelConfig(restorer="identity"), **kw)


def _gradient_clip(path, face_png, n=4, size=(448, 384)):
    """FFV1 gbrp10le: smooth 10-bit ramps (not representable in 8 bits) with a face in the middle."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    code = np.stack([x / (w - 1) * 1023, y / (h - 1) * 1023, (x + y) / (w + h - 2) * 800 + 100], axis=2)
    face = cv2.resize(cv2.imread(str(face_png))[..., ::-1], (220, 220), interpolation=cv2.INTER_AREA)
    y0, x0 = (h - 220) // 2, (w - 220) // 2
    code[y0:y0 + 220, x0:x0 + 220] = face.astype(np.float64) * (1023 / 255)
    code10 = np.rint(code).astype(np.uint16)
    rgb48 = (code10 << 6) | (code10 >> 4)                           # 10 -> 16 bit as FFmpeg does
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "gbrp10le"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb48), format="rgb48le").reformat(format="gbrp10le")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return (x0, y0, x0 + 220, y0 + 220)


def _rgb48_frames(path):
    with av.open(str(path)) as c:
        return [frame_to_rgb48(f, want_alpha=False)[0] for f in c.decode(video=0)], c.streams.video[0].codec_context.pix_fmt


@pytest.mark.parametrize("ops", ["cpu", "gpu-ops-on-cpu"])
def test_10bit_gradient_round_trip_keeps_10_bits_outside_the_face(testdata, tmp_path, ops):
    """``gpu-ops-on-cpu``: the GPU image path (torch crops, host-side 16-bit paste) run on CPU tensors."""
    src, out = tmp_path / "grad10.mkv", tmp_path / "out.mkv"
    fx0, fy0, fx1, fy1 = _gradient_clip(src, testdata / "images/gfpgan_cropped_Adele_512.png")
    image_ops = None
    if ops != "cpu":
        from vidrestore.faces.gpu_ops import GpuImageOps
        image_ops = GpuImageOps(device="cpu", kernels="torch")
    rep = restore_video(src, out, identity(encode=EncodeConfig(codec="ffv1", crf=None, preset=None)),
                        image_ops=image_ops)
    assert rep.faces_restored == rep.frames_written == 4
    ins, _ = _rgb48_frames(src)
    outs, pix = _rgb48_frames(out)
    assert pix == "gbrp10le"
    outside = np.ones(ins[0].shape[:2], bool)
    outside[max(fy0 - 40, 0):fy1 + 40, max(fx0 - 40, 0):fx1 + 40] = False   # the face and its paste box
    for a, b in zip(ins, outs):
        err = np.abs(a.astype(np.int64) - b.astype(np.int64))[outside]
        assert err.max() <= LSB10                                       # <= 1 LSB at 10 bit
        # guard: the gradient really needs more than 8 bits (8-bit rounding is ~2 LSB off)
        assert np.abs(np.rint(a[outside] / 257.0) * 257 - a[outside]).max() > 1.5 * LSB10


def test_upscale_keeps_10_bits(testdata, tmp_path):
    """--upscale 2 (Lanczos) on the 10-bit gradient: the 16-bit plane is resized, not dropped - the output
    equals OpenCV's Lanczos-4 of the 16-bit source within 1 LSB at 10 bit outside the face."""
    src, out = tmp_path / "grad10.mkv", tmp_path / "up.mkv"
    fx0, fy0, fx1, fy1 = _gradient_clip(src, testdata / "images/gfpgan_cropped_Adele_512.png", n=2)
    from vidrestore.config import UpscaleConfig
    rep = restore_video(src, out, identity(encode=EncodeConfig(codec="ffv1", crf=None, preset=None),
                                           upscale=UpscaleConfig(scale=2)))
    assert rep.frames_written == 2 and rep.faces_restored == 2
    ins, _ = _rgb48_frames(src)
    outs, pix = _rgb48_frames(out)
    assert pix == "gbrp10le" and outs[0].shape == (768, 896, 3)
    outside = np.ones(outs[0].shape[:2], bool)
    outside[max(2 * fy0 - 80, 0):2 * fy1 + 80, max(2 * fx0 - 80, 0):2 * fx1 + 80] = False
    outside[:8], outside[-8:], outside[:, :8], outside[:, -8:] = False, False, False, False   # edge taps
    for a, b in zip(ins, outs):
        want = cv2.resize(a, (896, 768), interpolation=cv2.INTER_LANCZOS4).astype(np.int64)
        assert np.abs(want - b.astype(np.int64))[outside].max() <= LSB10
        assert np.abs(np.rint(want[outside] / 257.0) * 257 - want[outside]).max() > 1.5 * LSB10


def test_prores4444_12bit_to_16bit_png_sequence_is_exact_outside_faces(testdata, tmp_path):
    src = testdata / "edge/prores4444_alpha_face.mov"
    rep = restore_video(src, str(tmp_path / "png" / "%03d.png"), identity())
    assert rep.frames_written == 30 and rep.faces_restored > 0
    with VideoReader(src) as r:
        first = next(iter(r))
    got = cv2.imread(str(tmp_path / "png" / "001.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape[2] == 4                 # 16-bit RGBA
    rgb = got[..., 2::-1]
    same = np.all(rgb == first.rgb_hi, axis=2)
    assert same.mean() > 0.3 and np.any(first.rgb_hi[same] % 257 != 0)
    np.testing.assert_array_equal(got[..., 3], first.alpha.astype(np.uint16) * 257)
