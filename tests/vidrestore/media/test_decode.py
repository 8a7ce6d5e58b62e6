"""VideoReader/probe on the real corpus and on synthetic clips with known geometry and colours."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidrestore.config import DecodeConfig
from vidrestore.errors import InputError
from vidrestore.media.decode import VideoReader, probe
from tests.conftest import TESTDATA

_MANIFEST: dict[str, dict] = {}
if TESTDATA is not None:
    import json
    _MANIFEST = {f["path"]: f for f in json.loads((TESTDATA / "MANIFEST.json").read_text())["files"]}

DECODABLE = sorted(p for p, f in _MANIFEST.items() if f["has_video"] and f["frame_count"])
MUST_FAIL = sorted(p for p, f in _MANIFEST.items() if f["frame_count"] in (0, None))
_BIG = 200e6  # pixels x frames above which a decode-everything test is marked slow (4K, 1080p)


def _param(p: str) -> object:
    f = _MANIFEST[p]
    big = (f["width"] or 0) * (f["height"] or 0) * f["frame_count"] > _BIG
    return pytest.param(p, marks=pytest.mark.slow) if big else p


@pytest.mark.parametrize("rel", [_param(p) for p in DECODABLE])
def test_decodes_every_frame_upright(testdata: Path, manifest: dict, rel: str) -> None:
    m = manifest[rel]
    with VideoReader(testdata / rel) as reader:
        info = reader.info
        shapes = set()
        n = 0
        for frame in reader:
            assert frame.index == n
            shapes.add(frame.rgb.shape)
            assert frame.rgb.dtype == np.uint8
            n += 1
        stats = reader.stats
    assert n == m["frame_count"] == stats.frames
    quarter = (m["rotation"] // 90) % 2 == 1
    want = (m["width"], m["height"]) if not quarter else (m["height"], m["width"])
    assert (info.width, info.height) == want
    assert (info.stored_width, info.stored_height) == (m["width"], m["height"])
    assert shapes == {(want[1], want[0], 3)}
    assert info.rotation == m["rotation"]
    assert info.is_image == (rel.startswith("images/") or rel == "edge/jpeg_image_renamed.mp4")
    assert len(info.audio) == (m.get("stream_counts") or {}).get("audio", 0)


@pytest.mark.parametrize("rel", MUST_FAIL)
def test_unreadable_files_raise_input_error(testdata: Path, rel: str) -> None:
    with pytest.raises(InputError) as err:
        VideoReader(testdata / rel)
    msg = str(err.value)
    assert Path(rel).name in msg and "\n" not in msg
    with pytest.raises(InputError):
        probe(testdata / rel)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="folder"):
        probe(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(InputError, match="junk.mp4"):
        probe(junk)


def test_corrupt_packets_are_skipped_and_counted(testdata: Path) -> None:
    with VideoReader(testdata / "edge/corrupt_mdat_middle_face.mp4") as r:
        n = sum(1 for _ in r)
        assert n == 120
        assert r.stats.corrupt_packets > 0
        assert r.stats.warnings["corrupt packets skipped"] == r.stats.corrupt_packets
    with pytest.raises(InputError, match="corrupt packets"):
        with VideoReader(testdata / "edge/corrupt_mdat_middle_face.mp4",
                         config=DecodeConfig(max_corrupt_packets=3)) as r:
            for _ in r:
                pass


def _plain_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(f.pts for f in c.decode(s))


@pytest.mark.parametrize("rel,start", [("edge/vfr_gap_face.mp4", 0.0),
                                       ("edge/start_offset_v1.0_a0.5_face.mp4", 1.0),
                                       ("edge/start_offset_v1.0_a0.5_face.ts", 2.4),
                                       ("edge/two_audio_tracks_subtitles.mkv", 0.023)])
def test_timestamps_kept_exactly(testdata: Path, rel: str, start: float) -> None:
    with VideoReader(testdata / rel) as r:
        frames = [(f.pts, f.time_base) for f in r]
        info = r.info
    assert [p for p, _ in frames] == _plain_pts(testdata / rel)
    assert all(tb == info.time_base for _, tb in frames)
    assert info.start_time_s == pytest.approx(start, abs=0.002)
    if "vfr" in rel:  # a one-second gap and a 15 fps section inside a 30 fps stream
        times = np.diff([float(p * info.time_base) for p, _ in frames])
        assert times.max() > 0.9 and times.min() < 0.04
        assert info.avg_rate == Fraction(950, 49)


@pytest.mark.parametrize("rel", ["edge/rotate90_portrait_face.mp4", "edge/rotate270_portrait_face.mp4",
                                 "edge/upstream/decord_video_180.mov"])
def test_rotation_matches_opencv(testdata: Path, rel: str) -> None:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(testdata / rel))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    ref = bgr[..., ::-1].astype(np.int16)  # OpenCV applies the display matrix itself
    with VideoReader(testdata / rel) as r:
        ours = next(iter(r)).rgb.astype(np.int16)
    assert ours.shape == ref.shape
    good = np.abs(ours - ref).mean()
    flipped = np.abs(np.rot90(ours, 2) - ref).mean()
    assert good < 6 and flipped > 3 * good


def _write_synthetic(path: Path, planes: list[np.ndarray], pix_fmt: str, *, codec: str = "ffv1",
                     colorspace: int | None = None, color_range: int | None = None,
                     rotation: int | None = None, frames: int = 2) -> None:
    """Write a tiny clip whose decoded YUV planes are exactly ``planes`` (lossless codec)."""
    h, w = planes[0].shape
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            s.options = {"qp": "0"}
        if colorspace is not None:
            s.codec_context.colorspace = colorspace
        if color_range is not None:
            s.codec_context.color_range = color_range
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(frames):
            vf = av.VideoFrame(w, h, pix_fmt)
            for plane, data in zip(vf.planes, planes):
                row = data.dtype.itemsize * w
                buf = np.zeros((h, plane.line_size), np.uint8)
                buf[:, :row] = data.view(np.uint8).reshape(h, row)
                plane.update(buf.tobytes())
            if colorspace is not None:
                vf.colorspace = colorspace
            if color_range is not None:
                vf.color_range = color_range
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _solid(h: int, w: int, values: tuple[int, ...], dtype: type = np.uint8) -> list[np.ndarray]:
    return [np.full((h, w), v, dtype) for v in values]


@pytest.mark.parametrize("pix_fmt,yuv,cs,rng,want", [
    ("yuv444p", (63, 102, 240), 1, 1, (255, 0, 0)),       # BT.709 limited red (BT.601 would give R~233)
    ("yuv444p", (81, 90, 240), 5, 1, (255, 0, 0)),        # BT.601 limited red
    ("yuv444p", (235, 128, 128), 1, 2, (235, 235, 235)),  # full range: 235 stays 235 (tv would give 255)
    ("yuv444p10le", (940, 512, 512), 1, 1, (255, 255, 255)),  # 10-bit limited white
    ("yuv444p10le", (250, 409, 960), 1, 1, (255, 0, 0)),  # 10-bit BT.709 limited red
])
def test_colour_conversion_uses_frame_matrix_and_range(tmp_path: Path, pix_fmt: str, yuv: tuple,
                                                       cs: int, rng: int, want: tuple) -> None:
    dtype = np.uint16 if "10" in pix_fmt else np.uint8
    path = tmp_path / "c.mkv"
    _write_synthetic(path, _solid(16, 16, yuv, dtype), pix_fmt, colorspace=cs, color_range=rng)
    with VideoReader(path) as r:
        rgb = next(iter(r)).rgb
        info = r.info
    assert np.abs(rgb.reshape(-1, 3).astype(int) - np.array(want)).max() <= 3, rgb[0, 0]
    assert info.bit_depth == (10 if dtype is np.uint16 else 8)
    assert info.color_range == {1: "tv", 2: "pc"}[rng]


def test_synthetic_display_matrix_geometry(tmp_path: Path) -> None:
    """Stored 32x16 frame with a bright block top-left, display matrix -90 (phone 'rotate=90', clockwise).

    Shown upright it is 16 wide, 32 high and the block sits top-right."""
    y = np.full((16, 32), 16, np.uint8)
    y[:4, :4] = 235
    path = tmp_path / "r.mp4"
    _write_synthetic(path, [y, np.full_like(y, 128), np.full_like(y, 128)], "yuv444p", codec="libx264",
                     rotation=-90)
    with VideoReader(path) as r:
        frame = next(iter(r))
        assert r.info.rotation == -90
        assert (r.info.width, r.info.height) == (16, 32)
    g = frame.rgb[..., 1]
    assert g.shape == (32, 16)
    assert g[:4, -4:].min() > 200 and g[:4, :4].max() < 50 and g[-4:, :].max() < 50


@pytest.mark.parametrize("rel", ["edge/prores4444_alpha_face.mov", "edge/png_rgba_face.mov",
                                 "images/gfpgan_cropped_Adele_512.png"])
def test_alpha_delivered(testdata: Path, rel: str) -> None:
    with VideoReader(testdata / rel) as r:
        frame = next(iter(r))
        has = r.info.has_alpha
    if rel.endswith(".mov"):
        assert has and frame.alpha is not None
        assert frame.alpha.shape == frame.rgb.shape[:2] and frame.alpha.dtype == np.uint8
        assert frame.alpha.min() < 10 and frame.alpha.max() > 245  # keyed background and opaque face
    else:
        assert not has and frame.alpha is None


def test_renamed_jpeg_is_treated_as_image(testdata: Path) -> None:
    info = probe(testdata / "edge/jpeg_image_renamed.mp4")
    assert info.is_image and info.codec == "mjpeg" and (info.width, info.height) == (418, 520)
    with VideoReader(testdata / "images/facexlib_test.jpg") as a, \
            VideoReader(testdata / "edge/jpeg_image_renamed.mp4") as b:
        fa, fb = list(a), list(b)
    assert len(fa) == len(fb) == 1 and np.array_equal(fa[0].rgb, fb[0].rgb)


def test_probe_reports_colour_and_stream_facts(testdata: Path) -> None:
    hdr = probe(testdata / "edge/hdr10_pq_bt2020_hevc_face.mp4")
    assert (hdr.pix_fmt, hdr.bit_depth, hdr.color_space, hdr.color_primaries, hdr.color_trc) == \
        ("yuv420p10le", 10, "bt2020nc", "bt2020", "smpte2084")
    full = probe(testdata / "edge/fullrange_yuvj420p_face.mp4")
    assert full.color_range == "pc" and full.decode_range == "pc"
    assert full.sample_aspect_ratio == Fraction(15, 16)
    two = probe(testdata / "edge/two_audio_tracks_subtitles.mkv")
    assert [a.codec for a in two.audio] == ["aac", "aac"]
    cover = probe(testdata / "edge/cover_art_attached_pic_face.mp4")
    assert cover.codec == "h264"  # the attached picture is not the video


@pytest.mark.parametrize("k", range(-4, 5))
def test_fast_rot90_equals_numpy(k: int) -> None:
    from vidrestore.media.pixels import rot90
    rng = np.random.default_rng(k + 4)
    for shape in [(5, 7, 3), (6, 9)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(rot90(a, k), np.rot90(a, k))
