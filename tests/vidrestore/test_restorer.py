"""The frames API with real frames, the real detector and a restorer that visibly changes faces:
dtypes, RGBA, numpy/torch, untouched pixels kept exactly, alpha untouched, reset, the faces callback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.config import ModelConfig, RestoreConfig
from vidrestore.media.decode import VideoReader
from vidrestore.restorer import FrameFaces, Restorer

N = 5


@pytest.fixture(scope="module")
def frames8(testdata):
    with VideoReader(testdata / "clips/lp_d0_talking_512.mp4") as r:
        return [f.rgb for f, _ in zip(r, range(N))]


@pytest.fixture(scope="module")
def restorer():
    def darken(x):
        return (x - 0.6).clamp(-1, 1)
    return Restorer(RestoreConfig(model=ModelConfig(batch=2)), restorer=darken)


def _deep(frames8, kind, alpha):
    rng = np.random.default_rng(0)
    out = []
    for f in frames8:
        if kind == "uint8":
            x = f.copy()
        else:   # values between the 8-bit levels: only a full-precision path keeps them
            x = f.astype(np.uint16) * 257 + rng.integers(0, 257, f.shape, dtype=np.uint16) // 2
            if kind == "float32":
                x = x.astype(np.float32) / 65535.0
        if alpha:
            a = rng.integers(0, 256, f.shape[:2]).astype(x.dtype)
            x = np.dstack([x, a / 255.0 if kind == "float32" else a]).astype(x.dtype)
        out.append(x)
    return out


@pytest.mark.parametrize("kind,alpha,as_torch", [("uint8", False, False), ("uint16", True, False),
                                                 ("float32", False, True), ("float32", True, False),
                                                 ("uint16", False, True)])
def test_dtypes_alpha_and_untouched_pixels(frames8, restorer, kind, alpha, as_torch):
    inputs = _deep(frames8, kind, alpha)
    feed = [torch.from_numpy(x) for x in inputs] if as_torch else inputs
    seen: list[FrameFaces] = []
    outs = list(restorer.restore_frames(iter(feed), on_faces=seen.append))
    assert len(outs) == N
    for x, o in zip(inputs, outs):
        if as_torch:
            assert isinstance(o, torch.Tensor) and o.device.type == "cpu"
            o = o.numpy()
        assert isinstance(o, np.ndarray) and o.dtype == x.dtype and o.shape == x.shape
        if alpha:
            np.testing.assert_array_equal(o[..., 3], x[..., 3])          # alpha untouched
        changed = np.any(o[..., :3] != x[..., :3], axis=2)
        assert 0.02 < changed.mean() < 0.8                                # the face, not the frame
        ys, xs = np.nonzero(changed)
        box = seen[0].faces[0].box
        assert xs.min() >= box[0] - 0.6 * (box[2] - box[0])               # only near the face
        # every other pixel is returned exactly, at full precision
        np.testing.assert_array_equal(o[~changed][:, :3], x[~changed][:, :3])
        centre = (int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2))
        assert o[centre][:3].astype(np.float64).mean() < x[centre][:3].astype(np.float64).mean()
    if kind != "uint8":   # the untouched pixels really are between the 8-bit levels
        hi = np.stack(inputs)[..., :3]
        scale = 257.0 if kind == "uint16" else 1 / 255.0
        assert np.mean(np.abs(hi / scale - np.rint(hi / scale)) > 1e-3) > 0.3


@pytest.mark.parametrize("kind,alpha", [("uint8", True), ("uint16", False), ("float32", True)])
def test_upscale_in_the_frames_api(frames8, kind, alpha):
    """config.upscale: frames come back 2x at their dtype; away from the face they equal OpenCV's
    Lanczos-4 of the input at its precision (alpha too), the face is restored into the enlarged frame."""
    import cv2

    from vidrestore.config import UpscaleConfig

    def darken(x):
        return (x - 0.6).clamp(-1, 1)
    r = Restorer(RestoreConfig(model=ModelConfig(batch=2), upscale=UpscaleConfig(scale=2)), restorer=darken)
    inputs = _deep(frames8[:3], kind, alpha)
    seen: list[FrameFaces] = []
    outs = list(r.restore_frames(inputs, on_faces=seen.append))
    assert len(outs) == 3
    for x, o, faces in zip(inputs, outs, seen):
        assert o.dtype == x.dtype and o.shape == (x.shape[0] * 2, x.shape[1] * 2, x.shape[2])
        want = cv2.resize(x, (x.shape[1] * 2, x.shape[0] * 2), interpolation=cv2.INTER_LANCZOS4)
        box = faces.faces[0].box * 2
        far = np.ones(o.shape[:2], bool)
        far[max(int(box[1]) - 200, 0):int(box[3]) + 200, max(int(box[0]) - 200, 0):int(box[2]) + 200] = False
        assert far.mean() > 0.2
        np.testing.assert_array_equal(o[far], want[far])
        centre = (int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2))
        assert o[centre][:3].astype(np.float64).mean() < want[centre][:3].astype(np.float64).mean()


def test_faces_callback_and_reset(frames8, restorer):
    seen: list[FrameFaces] = []
    restorer.on_faces = seen.append
    first = list(restorer.restore_frames(frames8))
    assert [s.index for s in seen] == list(range(N))
    ids = {f.track_id for s in seen for f in s.faces}
    assert len(ids) == 1 and all(f.restored and f.landmarks.shape == (5, 2) for s in seen for f in s.faces)
    # push-style use gives the same frames; reset() starts numbering and tracks again
    seen.clear()
    got = []
    for i, f in enumerate(frames8):
        got += restorer.push(f)
        if i == 2:
            assert len(got) < 3                                           # look-ahead holds frames back
    got += restorer.flush()
    assert len(got) == N and all(np.array_equal(a, b) for a, b in zip(first, got))
    assert [s.index for s in seen] == list(range(N))
    restorer.push(frames8[0])
    restorer.reset()                                                      # dropped, not returned
    seen.clear()
    assert len(restorer.flush()) == 0 and seen == []
    with pytest.raises(ValueError, match="differs"):
        restorer.push(frames8[0])
        restorer.push(frames8[0][:100])
    restorer.reset()
    restorer.on_faces = None


def test_rejects_bad_frames(restorer):
    with pytest.raises(ValueError, match="RGBA"):
        restorer.push(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        restorer.push(np.zeros((10, 10, 3), np.int32))
    restorer.reset()


def test_one_flush_rule_for_the_video_loop_and_the_frames_api():
    from vidrestore.pipeline import _flush_due, _Work
    from vidrestore.types import Frame

    def work(faces):
        f = Frame(index=0, pts=0, time_base=1, rgb=np.zeros((4, 4, 3), np.uint8))
        return _Work(frame=f, alignments=(None,) * faces, crops=object() if faces else None)
    assert not _flush_due([], batch=4, idle=False) and _flush_due([], batch=4, idle=True)
    assert not _flush_due([work(1), work(2)], batch=4, idle=False)      # wait for a full batch
    assert _flush_due([work(1), work(3)], batch=4, idle=False)          # full
    assert _flush_due([work(0)], batch=4, idle=False)                   # nothing to batch
    assert _flush_due([work(1)], batch=4, idle=True)                    # nothing more coming now


def test_readme_examples(testdata, tmp_path, monkeypatch):
    """The README's "With an editor" Python block, run as written (identity restorer, a short clip)."""
    import re
    import subprocess

    import av
    import imageio_ffmpeg

    from tests.conftest import REPO
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## With an editor"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = "from vidrestore.config import ModelConfig\n" + code.replace(
        "RestoreConfig()", "RestoreConfig(model=ModelConfig(restorer='identity'))")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i",
                    str(testdata / "edge/prores4444_alpha_face.mov"), "-frames:v", "6", "-c", "copy",
                    str(tmp_path / "in.mov")], check=True)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)                       # the PyAV loop runs here
    with av.open("out.mov") as c:
        s = c.streams.video[0]
        assert s.codec_context.pix_fmt.startswith("yuv422p1") and sum(1 for _ in c.decode(video=0)) == 6
    rng = np.random.default_rng(0)
    with VideoReader(tmp_path / "in.mov") as r:
        src = [np.dstack([f.rgb.astype(np.float32) / 255, rng.random(f.rgb.shape[:2], np.float32)])
               for f in r]
    node = ns["FaceRestoreNode"](lambda n: src[n], last_frame=len(src) - 1)
    seq = [node.render(n) for n in range(6)]
    assert all(o.shape == (256, 256, 4) and o.dtype == np.float32 for o in seq)
    assert all(np.array_equal(o[..., 3], x[..., 3]) for o, x in zip(seq, src))
    assert np.array_equal(node.render(2), seq[2])                      # a jump back: rebuilt, same frame
