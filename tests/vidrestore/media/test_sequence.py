"""Image sequences through the whole pipeline: real PNG / 16-bit TIFF / JPEG files, the real detector,
tracking and smoothing; numbering, --fps, atomic folders, errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidrestore.config import DecodeConfig, ModelConfig, RestoreConfig
from vidrestore.errors import InputError, OutputError
from vidrestore.media.decode import VideoReader, probe
from vidrestore.media.sequence import SequenceReader, list_images, name_pattern
from vidrestore.pipeline import restore_video

N = 6


def identity(**kw) -> RestoreConfig:
    return RestoreConfig(model=ModelConfig(restorer="identity"), **kw)


@pytest.fixture(scope="module")
def frames8(testdata):
    with VideoReader(testdata / "clips/lp_d0_talking_512.mp4") as r:
        return [f.rgb for f, _ in zip(r, range(N))]


def _write(folder, frames, pattern, start, deep=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = []
    for k, rgb in enumerate(frames):
        img = rgb[..., ::-1]
        if deep:   # 16-bit values between the 8-bit levels
            img = img.astype(np.uint16) * 257 + rng.integers(0, 200, img.shape, dtype=np.uint16)
        path = folder / (pattern % (start + k))
        assert cv2.imwrite(str(path), np.ascontiguousarray(img))
        written.append(np.ascontiguousarray(img[..., ::-1]))
    return written


def test_png_pattern_in_and_out_keeps_numbers_and_tracks(frames8, tmp_path):
    src = _write(tmp_path / "in", frames8, "shot_%04d.png", 1001)
    out = tmp_path / "out"
    rep = restore_video(str(tmp_path / "in" / "shot_%04d.png"), str(out / "r_%04d.png"), identity())
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"r_{1001 + k:04d}.png" for k in range(N)]
    assert rep.frames_written == N and len(rep.tracks) == 1 and rep.faces_restored == N
    assert rep.input.avg_rate == 25 and any("25 fps" in w for w in rep.warnings)
    got = cv2.imread(str(out / "r_1001.png"))[..., ::-1]
    changed = np.any(got != src[0], axis=2)
    assert 0 < changed.mean() < 0.6                  # identity restorer: only the face region resampled
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_tiff16_folder_keeps_16_bits_outside_faces(frames8, tmp_path):
    src = _write(tmp_path / "in16", frames8, "f%06d.tif", 0, deep=True)
    out = tmp_path / "out16"
    restore_video(str(tmp_path / "in16"), str(out) + "/", identity())
    files = list_images(out)
    assert [p.name for p in files] == [f"f{k:06d}.tif" for k in range(N)]
    for k, p in enumerate(files):
        got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16
        got = got[..., ::-1]
        same = np.all(got == src[k], axis=2)
        assert same.mean() > 0.2                      # untouched pixels (the face fills much of it): all 16 bits kept
        assert np.any(src[k][same] % 257 != 0)        # ... and they were not 8-bit values


def test_jpeg_glob_to_video_with_fps(frames8, tmp_path):
    _write(tmp_path / "j", frames8, "img%d.jpg", 8)   # img8 .. img13: numeric, not lexical, order
    out = tmp_path / "o.mp4"
    rep = restore_video(str(tmp_path / "j" / "*.jpg"), out, identity(decode=DecodeConfig(fps=30)))
    info = probe(out)
    assert rep.frames_written == N and info.avg_rate == 30
    assert [p.name for p in list_images(str(tmp_path / "j" / "*.jpg"))][:3] == ["img8.jpg", "img9.jpg", "img10.jpg"]


def test_video_to_sequence_numbers_from_one_and_keeps_alpha(testdata, tmp_path):
    out = tmp_path / "frames"
    rep = restore_video(testdata / "edge/png_rgba_face.mov", str(out / "%05d.png"), identity())
    names = sorted(p.name for p in out.iterdir())
    assert names[:2] == ["00001.png", "00002.png"] and len(names) == rep.frames_written == rep.frames_decoded
    assert cv2.imread(str(out / names[0]), cv2.IMREAD_UNCHANGED).shape[2] == 4


def test_atomic_and_errors(frames8, tmp_path):
    _write(tmp_path / "in", frames8[:3], "%03d.png", 1)
    (tmp_path / "in" / "004.png").write_bytes(b"not a png")            # broken frame at the end
    out = tmp_path / "out"
    with pytest.raises(InputError, match="004.png.*cannot be read"):
        restore_video(str(tmp_path / "in" / "%03d.png"), str(out / "%03d.png"), identity())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]         # no output, no temp folder
    (tmp_path / "in" / "004.png").unlink()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        restore_video(str(tmp_path / "in" / "%03d.png"), str(out / "%03d.png"), identity())
    with pytest.raises(OutputError, match="input folder"):
        restore_video(str(tmp_path / "in" / "%03d.png"), str(tmp_path / "in" / "x%03d.png"),
                      identity(overwrite=True))
    with pytest.raises(InputError, match="no images"):
        SequenceReader(tmp_path / "in" / "nothing_%04d.png")
    rep = restore_video(str(tmp_path / "in" / "%03d.png"), str(out / "%03d.png"), identity(overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png", "keep.txt"]
    assert rep.frames_written == 3


def test_name_pattern():
    from pathlib import Path
    assert name_pattern(Path("a/shot_000123.png")) == "shot_%06d.png"
    assert name_pattern(Path("img12.jpg")) == "img%d.jpg"
    assert name_pattern(Path("plate.v2.1001.exr")) == "plate.v2.%04d.exr"
