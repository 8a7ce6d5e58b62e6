"""End to end through the real stages: real files, real PyAV, the real detector, real encoders."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.config import (AlignConfig, EncodeConfig, ModelConfig, RestoreConfig,
                               SmoothConfig)
from vidrestore.errors import InputError, OutputError
from vidrestore.faces.ops import CpuImageOps
from vidrestore.media.decode import VideoReader, probe
from vidrestore.pipeline import Restorer, restore_video

FAST = EncodeConfig(codec="libx264", crf=23, preset="ultrafast")
LOSSLESS = EncodeConfig(codec="ffv1", crf=None, preset=None)


def identity_config(encode: EncodeConfig = FAST, **kw) -> RestoreConfig:
    return RestoreConfig(model=ModelConfig(restorer="identity"), encode=encode, **kw)


def playable(manifest: dict[str, dict]) -> list[str]:
    return sorted(p for p, f in manifest.items()
                  if f.get("has_video") and f.get("frame_count") and p.split("/")[0] in ("clips", "edge")
                  and not f.get("container", "").startswith(("image2", "png_pipe", "jpeg_pipe")))


def _manifest_paths() -> list[str]:
    from tests.conftest import TESTDATA
    if TESTDATA is None:
        return []
    return playable({f["path"]: f for f in json.loads((TESTDATA / "MANIFEST.json").read_text())["files"]})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def frame_times(path: Path) -> list[float]:
    with VideoReader(path) as r:
        return [f.time_s for f in r]


@pytest.mark.parametrize("rel", _manifest_paths())
def test_every_playable_file_round_trips(rel, testdata, manifest, tmp_path):
    """Frame count, timestamps, size, rotation and audio presence as the MANIFEST says."""
    entry = manifest[rel]
    src = testdata / rel
    out = tmp_path / ("out" + (".mkv" if src.suffix in (".mkv", ".webm") else ".mp4"))
    rep = restore_video(src, out, identity_config(smooth=SmoothConfig(strength=1.0),
                                                  align=AlignConfig(interpolation="linear")))  # the fast warp
    expected = entry["frame_count"]
    assert rep.frames_decoded == expected, (rel, rep.frames_decoded)
    assert rep.frames_written == expected
    info = probe(out)
    rot = entry.get("rotation") or 0
    w, h = entry["width"], entry["height"]
    if rot % 180:
        w, h = h, w
    assert (info.width, info.height) == (w, h)
    assert bool(info.audio) == bool(entry.get("has_audio")), rel
    t_in, t_out = frame_times(src), frame_times(out)
    assert len(t_out) == expected
    frame_dur = 1.0 / float(entry.get("fps_r_float") or 25.0)
    assert abs((t_out[-1] - t_out[0]) - (t_in[-1] - t_in[0])) <= frame_dur + 1e-6
    assert np.all(np.diff(t_out) > 0), "output timestamps must increase"
    if np.all(np.diff(t_in) > 0):
        np.testing.assert_allclose(np.diff(t_out), np.diff(t_in), atol=2e-3)
    else:   # a damaged source with timestamps that jump back: adjusted, and the report says so
        assert rep.warnings.get("non-increasing pts adjusted", 0) >= 1, rep.warnings
    # faces: consistent with the MANIFEST (detector on sampled frames, score > 0.8)
    faces = entry.get("faces") or {}
    if faces.get("max_count", 0) >= 1 and entry["faces_sampled"]["frames_with_face"] == entry["faces_sampled"]["frames"]:
        if faces.get("min_face_height_px", 0) >= 2 * AlignConfig().min_face:
            assert sum(1 for n in rep.faces_per_frame if n >= 1) >= 0.8 * expected, rel
        else:   # faces near --min-face: found in most frames, some left alone as too small
            assert rep.faces_detected >= 0.8 * expected, rel
            assert rep.faces_restored + rep.faces_skipped_small == rep.faces_detected
    if faces.get("max_count", 1) == 0 and entry.get("faces_sampled", {}).get("frames_with_face", 1) == 0:
        assert rep.faces_restored <= 0.05 * expected, rel


def test_identity_lossless_psnr(testdata, tmp_path):
    """Identity restorer + lossless encode: >= 50 dB whole frame (~315-px faces); the face region is reported."""
    src = testdata / "clips/lp_d0_talking_512.mp4"
    out = tmp_path / "out.mkv"
    rep = restore_video(src, out, identity_config(LOSSLESS))
    assert rep.faces_restored >= rep.frames_written * 0.9
    with VideoReader(src) as a, VideoReader(out) as b:
        pairs = list(zip(a, b))
    assert len(pairs) == rep.frames_written
    whole = [psnr(x.rgb, y.rgb) for x, y in pairs]
    assert min(whole) >= 50.0, min(whole)     # Lanczos warps: 59.8 dB measured (bilinear gave about 46)
    # the face region alone (where paste actually wrote): still an identity up to resampling
    face = []
    for (x, y), n in zip(pairs, rep.faces_per_frame):
        if n:
            diff = np.any(x.rgb != y.rgb, axis=2)
            ys, xs = np.nonzero(diff)
            if len(ys):
                sl = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
                face.append(psnr(x.rgb[sl], y.rgb[sl]))
    assert face and min(face) >= 30.0, face[:5]
    print(f"identity PSNR whole-frame min {min(whole):.1f} dB, face-region min {min(face):.1f} dB")


class _RecordingOps(CpuImageOps):
    """CPU image ops that remember the alignment matrices of every warp (in frame order)."""

    def __init__(self) -> None:
        super().__init__(paste_inplace=True)
        self.matrices: list[np.ndarray] = []

    def warp(self, frame_rgb, matrices, *, crop_size):
        self.matrices.append(np.array(matrices))
        return super().warp(frame_rgb, matrices, crop_size=crop_size)


def test_restore_pastes_the_models_output(testdata, tmp_path, gfpgan_checkpoint):
    """The real GFP-GAN module (random weights) through the torch backend, end to end with audio:
    each output frame equals the input with model(aligned crop) pasted back, computed here
    independently (model called directly, paste on a copy), within the lossless encode's rounding;
    the identity restorer or a face in the wrong frame would be far off."""
    from vidrestore.models import load_gfpgan
    src = testdata / "edge/vfr_gap_face.mp4"
    short = tmp_path / "short.mp4"
    _cut(src, short, frames=3)
    out = tmp_path / "out.mp4"
    cfg = RestoreConfig(model=ModelConfig(weights=str(gfpgan_checkpoint), backend="torch",
                                          device="cpu", batch=2), encode=LOSSLESS_X264)
    ops = _RecordingOps()
    rep = restore_video(short, out, cfg, image_ops=ops)
    assert rep.frames_written == 3 and rep.backend.name == "torch"
    assert rep.faces_per_frame == (1, 1, 1) and len(ops.matrices) == 3
    assert probe(out).audio, "audio stream lost"
    model = load_gfpgan(gfpgan_checkpoint).eval()
    plain = CpuImageOps(paste_inplace=False)
    with VideoReader(short) as a, VideoReader(out) as b:
        for x, y, mats in zip(a, b, ops.matrices):
            crops = plain.warp(x.rgb, mats, crop_size=512)
            with torch.inference_mode():
                restored = plain.from_output(model(plain.to_input(crops)))
            want = plain.paste(x.rgb, restored, mats, config=cfg.paste, originals=crops)
            face = np.any(want != x.rgb, axis=2)
            assert face.mean() > 0.05                        # the face region is large
            diff = np.abs(y.rgb.astype(int) - want.astype(int))
            assert diff[face].mean() < 1.0 and np.percentile(diff[face], 99.9) <= 3, \
                (diff[face].mean(), diff[face].max())
            changed = np.abs(x.rgb.astype(int) - want.astype(int))[face].mean()
            assert changed > 10 * max(diff[face].mean(), 0.1)   # identity would fail by far
            assert diff[~face].max() <= 3                        # background untouched


def _cut(src: Path, dst: Path, *, frames: int) -> None:
    from vidrestore.media.encode import VideoWriter
    with VideoReader(src) as r, VideoWriter(dst, info=r.info, source=src, config=LOSSLESS_X264) as w:
        for f in r:
            if f.index >= frames:
                break
            w.write(f)


LOSSLESS_X264 = EncodeConfig(codec="libx264", crf=0, preset="ultrafast")


def test_callable_restorer_and_report(testdata, tmp_path):
    calls = []

    def darken(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x * 0.5 - 0.5

    src = testdata / "clips/lp_d0_talking_512.mp4"
    out = tmp_path / "dark.mp4"
    rep = restore_video(src, out, RestoreConfig(encode=FAST, model=ModelConfig(batch=3)),
                        restorer=darken)
    assert rep.backend.name == "callable"
    assert max(calls) <= 3 and sum(calls) == rep.faces_restored
    d = rep.to_dict()
    json.dumps(d)
    assert d["frames_written"] == 78 and len(d["faces_per_frame"]) == 78
    assert set(d["stage_seconds"]) >= {"decode", "detect", "align", "restore", "paste", "encode"}
    with VideoReader(src) as a, VideoReader(out) as b:
        x, y = next(iter(a)), next(iter(b))
    # the face got darker, the corner did not
    assert y.rgb[200:300, 200:300].mean() < x.rgb[200:300, 200:300].mean() - 20
    assert abs(float(y.rgb[:30, :30].mean()) - float(x.rgb[:30, :30].mean())) < 3


def test_min_face_leaves_small_faces(testdata, tmp_path):
    src = testdata / "edge/small_face_40px_720p.mp4"
    rep = restore_video(src, tmp_path / "o.mp4",
                        identity_config(align=AlignConfig(min_face=200)))
    assert rep.faces_restored == 0 and rep.faces_skipped_small > 0
    assert "restore" not in rep.stage_seconds or rep.stage_seconds["restore"] < 0.05


def test_still_image(testdata, tmp_path):
    out = tmp_path / "restored.png"
    rep = restore_video(testdata / "images/face_recognition_obama_and_biden.jpg", out,
                        identity_config())
    assert rep.frames_written == 1 and rep.faces_restored >= 2
    assert out.exists() and probe(out).is_image


@pytest.mark.parametrize("rel", ["edge/empty_0byte.mp4", "edge/truncated_60pct_moov_at_end.mp4",
                                 "edge/audio_only.m4a", "edge/audio_only_no_video_stream.mp4"])
def test_broken_input_leaves_nothing(rel, testdata, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as e:
        restore_video(testdata / rel, out, identity_config())
    assert Path(rel).name in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_refuses_overwrite_and_same_file(testdata, tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError):
        restore_video(testdata / "clips/lp_d0_talking_512.mp4", out, identity_config())
    assert out.read_bytes() == b"keep me"
    with pytest.raises(OutputError):
        restore_video(testdata / "clips/lp_d0_talking_512.mp4",
                      testdata / "clips/lp_d0_talking_512.mp4", identity_config())


def test_failure_midway_leaves_no_output(testdata, tmp_path):
    def explode(x):
        raise RuntimeError("boom")
    out = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        restore_video(testdata / "clips/lp_d0_talking_512.mp4", out,
                      RestoreConfig(encode=FAST), restorer=explode)
    assert list(tmp_path.iterdir()) == []


def test_restorer_api_streams_frames(testdata):
    with VideoReader(testdata / "clips/lp_d0_talking_512.mp4") as r:
        frames = [f.rgb for f, _ in zip(r, range(12))]
    calls = []

    def brighten(x):
        calls.append(len(x))
        return (x + 0.5).clamp(-1, 1)
    r = Restorer(RestoreConfig(model=ModelConfig(batch=4)), restorer=brighten)
    out = list(r.restore_frames(iter(frames)))
    assert len(out) == 12 and all(o.shape == f.shape for o, f in zip(out, frames))
    assert sum(calls) == 12 and max(calls) <= 4
    assert out[0][200:300, 200:300].mean() > frames[0][200:300, 200:300].mean() + 20


def test_batch_1_and_8_are_bit_identical(testdata, tmp_path):
    """Each crop is changed by an amount computed from its own content, so a face restored in a
    batch and pasted into the wrong frame (or the wrong slot) changes the output; --batch 1 and
    --batch 8 must give the same bytes of every decoded frame."""
    src = tmp_path / "group.mp4"
    _cut(testdata / "edge/multi_face_group_zoompan.mp4", src, frames=8)

    def marked(x: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in x:                                       # per row: independent of the batch
            m = float(row.mean())
            rows.append((row * 0.5 + 0.4 * np.sin(37.0 * m)).clamp(-1, 1))
        return torch.stack(rows)

    outs = []
    for batch in (1, 8):
        out = tmp_path / f"b{batch}.mkv"
        rep = restore_video(src, out, RestoreConfig(encode=LOSSLESS, model=ModelConfig(batch=batch)),
                            restorer=marked)
        assert rep.faces_restored >= 2 * 8, rep.faces_per_frame
        with VideoReader(out) as r:
            outs.append([f.rgb for f in r])
    assert len(outs[0]) == len(outs[1]) == 8
    for a, b in zip(*outs):
        assert np.array_equal(a, b)
    with VideoReader(src) as r:
        first = next(iter(r)).rgb
    assert np.abs(first.astype(int) - outs[0][0].astype(int)).mean() > 1.0   # the marks are there
