"""VideoWriter: identity round trips on the real corpus, output-path rules and atomicity."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from vidrestore.config import EncodeConfig
from vidrestore.errors import EncodeError, OutputError
from vidrestore.media.decode import VideoReader
from vidrestore.media.encode import VideoWriter
from vidrestore.media.output import check_output_path

FAST_LOSSLESS = EncodeConfig(crf=0, preset="ultrafast")
FAST = EncodeConfig(preset="ultrafast")


@dataclass
class RoundTrip:
    src_frames: list       # [(time_s, rgb, alpha)]
    out_frames: list
    src_info: object
    out_info: object
    stats: object
    out_streams: list      # [(type, codec)]
    out: Path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def roundtrip(src: Path, out: Path, config: EncodeConfig, max_frames: int | None = None) -> RoundTrip:
    src_frames = []
    with VideoReader(src) as reader:
        with VideoWriter(out, info=reader.info, source=src, config=config) as writer:
            for frame in reader:
                if max_frames is not None and frame.index >= max_frames:
                    break
                src_frames.append((frame.time_s, frame.rgb, frame.alpha))
                writer.write(frame)
        src_info = reader.info
    with VideoReader(out) as reader:
        out_frames = [(f.time_s, f.rgb, f.alpha) for f in reader]
        out_info = reader.info
    with av.open(str(out)) as c:
        streams = [(s.type, s.codec_context.name) for s in c.streams]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temp file left behind"
    return RoundTrip(src_frames, out_frames, src_info, out_info, writer.stats, streams, out)


def _check_identity(rt: RoundTrip, *, min_psnr: float | None, time_tol: float = 1e-3) -> None:
    assert len(rt.out_frames) == len(rt.src_frames) == rt.stats.frames
    t_in = np.array([t for t, _, _ in rt.src_frames])
    t_out = np.array([t for t, _, _ in rt.out_frames])
    assert np.abs(t_in - t_out).max() <= time_tol, (t_in[:3], t_out[:3])
    si, so = rt.src_info, rt.out_info
    assert (so.width, so.height, so.rotation) == (si.width, si.height, si.rotation)
    assert (so.stored_width, so.stored_height) == (si.stored_width, si.stored_height)
    if min_psnr is not None:
        worst = min(_psnr(a, b) for (_, a, _), (_, b, _) in zip(rt.src_frames, rt.out_frames))
        assert worst >= min_psnr, worst


def _audio_streams(rt: RoundTrip) -> list[str]:
    return [c for t, c in rt.out_streams if t == "audio"]


def _video_duration_ok(rt: RoundTrip) -> None:
    si, so = rt.src_info, rt.out_info
    if si.duration_s is not None and rt.src_info.avg_rate:
        assert so.duration_s == pytest.approx(si.duration_s, abs=float(1 / si.avg_rate) + 1e-3)


# -- identity round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("rel,ext,config,max_frames", [
    ("clips/lp_d10_talking_512_audio.mp4", ".mp4", FAST_LOSSLESS, None),
    ("edge/vfr_gap_face.mp4", ".mp4", FAST_LOSSLESS, None),
    ("edge/start_offset_v1.0_a0.5_face.mp4", ".mp4", FAST_LOSSLESS, None),
    ("edge/start_offset_v1.0_a0.5_face.ts", ".ts", FAST_LOSSLESS, None),
    ("edge/hevc_main10_yuv420p10le_face.mp4", ".mkv", EncodeConfig(codec="ffv1"), None),
    ("edge/two_audio_tracks_subtitles.mkv", ".mkv", FAST_LOSSLESS, None),
    ("edge/fullrange_yuvj420p_face.mp4", ".mp4", FAST_LOSSLESS, 30),
    ("edge/audio_longer_than_video_face.mp4", ".mp4", FAST_LOSSLESS, None),
])
def test_identity_roundtrip(testdata: Path, tmp_path: Path, rel: str, ext: str, config: EncodeConfig,
                            max_frames: int | None) -> None:
    src = testdata / rel
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    rt = roundtrip(src, tmp_path / f"out{ext}", config, max_frames)
    _check_identity(rt, min_psnr=40.0)
    assert len(_audio_streams(rt)) == len(rt.src_info.audio)
    assert _audio_streams(rt) == [a.codec for a in rt.src_info.audio]  # copied, not re-encoded
    assert rt.stats.audio_packets > 0 or not rt.src_info.audio
    if max_frames is None:
        _video_duration_ok(rt)
    if "two_audio" in rel:
        assert ("subtitle", "subrip") in rt.out_streams or ("subtitle", "srt") in rt.out_streams
    if "audio_longer" in rel:  # audio (5 s) runs 2 s past the video: it must not be cut
        with av.open(str(rt.out)) as c:
            a = c.streams.audio[0]
            last = max(float(p.pts * p.time_base) for p in c.demux(a) if p.pts is not None)
        assert last > 4.9
    if rt.src_info.color_range == "pc":
        assert rt.out_info.color_range == "pc"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # input untouched


def test_vfr_keeps_gap_and_start_offset_keeps_av_delay(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "edge/start_offset_v1.0_a0.5_face.mp4"
    rt = roundtrip(src, tmp_path / "o.mp4", FAST)
    with av.open(str(src)) as a, av.open(str(rt.out)) as b:
        starts_in = [float(s.start_time * s.time_base) for s in a.streams]
        starts_out = [float(s.start_time * s.time_base) for s in b.streams]
    assert starts_out == pytest.approx(starts_in, abs=1e-3)
    assert starts_out[0] == pytest.approx(1.0, abs=1e-3)


def test_rotated_source_keeps_stored_orientation_and_display_matrix(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "edge/rotate90_portrait_face.mp4"
    rt = roundtrip(src, tmp_path / "o.mp4", FAST_LOSSLESS, max_frames=20)
    _check_identity(rt, min_psnr=40.0)
    assert (rt.out_info.rotation, rt.out_info.stored_width, rt.out_info.width) == (-90, 1280, 720)
    assert _audio_streams(rt) == ["aac"]


def test_rotated_output_displays_like_input_in_opencv(testdata: Path, tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    rt = roundtrip(testdata / "edge/rotate90_portrait_face.mp4", tmp_path / "o.mp4", FAST_LOSSLESS,
                   max_frames=2)
    cap = cv2.VideoCapture(str(rt.out))  # OpenCV applies the output's display matrix itself
    ok, bgr = cap.read()
    cap.release()
    assert ok and bgr.shape == (1280, 720, 3)
    assert np.abs(bgr[..., ::-1].astype(int) - rt.src_frames[0][1].astype(int)).mean() < 6


@pytest.mark.parametrize("rel,ext", [("edge/upstream/decord_video_180.mov", ".mov"),
                                     ("edge/upstream/decord_video_270.mov", ".mp4"),
                                     ("edge/upstream/decord_unordered.mov", ".mkv")])
def test_small_rotated_and_reordered_sources(testdata: Path, tmp_path: Path, rel: str, ext: str) -> None:
    rt = roundtrip(testdata / rel, tmp_path / f"o{ext}", FAST_LOSSLESS)
    _check_identity(rt, min_psnr=40.0)


def test_hdr_signalling_kept_and_cover_art_not_turned_into_video(testdata: Path, tmp_path: Path) -> None:
    rt = roundtrip(testdata / "edge/hdr10_pq_bt2020_hevc_face.mp4", tmp_path / "h.mp4", FAST, max_frames=5)
    o = rt.out_info
    assert (o.color_space, o.color_primaries, o.color_trc, o.bit_depth) == \
        ("bt2020nc", "bt2020", "smpte2084", 10)   # issue 17: the source depth is kept
    rt = roundtrip(testdata / "edge/cover_art_attached_pic_face.mp4", tmp_path / "c.mp4", FAST, max_frames=5)
    assert [t for t, _ in rt.out_streams] == ["video", "audio"]
    assert rt.stats.warnings.get("cover art dropped") == 1


def test_odd_size_keeps_exact_size(testdata: Path, tmp_path: Path) -> None:
    rt = roundtrip(testdata / "edge/odd_853x481_yuv444p_face.mp4", tmp_path / "o.mp4", FAST, max_frames=20)
    _check_identity(rt, min_psnr=35.0)  # crf 18: not lossless, still close
    assert (rt.out_info.width, rt.out_info.height) == (853, 481)
    assert rt.stats.pix_fmt == "yuv444p" and rt.stats.warnings.get("odd size: yuv444p") == 1
    assert rt.out_info.sample_aspect_ratio == rt.src_info.sample_aspect_ratio


@pytest.mark.parametrize("ext,codec", [(".mov", "prores_ks"), (".mkv", "ffv1")])
def test_alpha_kept_with_automatic_codec(testdata: Path, tmp_path: Path, ext: str, codec: str) -> None:
    rt = roundtrip(testdata / "edge/prores4444_alpha_face.mov", tmp_path / f"o{ext}", EncodeConfig(),
                   max_frames=10)
    _check_identity(rt, min_psnr=40.0)
    assert rt.stats.video_codec == codec and "alpha dropped" not in rt.stats.warnings
    assert rt.out_info.has_alpha
    for (_, _, a), (_, _, b) in zip(rt.src_frames, rt.out_frames):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_alpha_dropped_with_warning_in_mp4(testdata: Path, tmp_path: Path) -> None:
    rt = roundtrip(testdata / "edge/png_rgba_face.mov", tmp_path / "o.mp4", FAST_LOSSLESS, max_frames=5)
    _check_identity(rt, min_psnr=40.0)
    assert rt.stats.warnings.get("alpha dropped") == 1 and not rt.out_info.has_alpha


def test_webm_opus_roundtrip(testdata: Path, tmp_path: Path) -> None:
    rt = roundtrip(testdata / "edge/vp9_opus_face.webm", tmp_path / "o.webm", EncodeConfig(crf=0), max_frames=8)
    _check_identity(rt, min_psnr=40.0)
    assert rt.stats.video_codec == "libvpx-vp9" and _audio_streams(rt) == ["opus"]


def test_subtitles_dropped_and_pcm_reencoded_in_mp4(testdata: Path, tmp_path: Path) -> None:
    rt = roundtrip(testdata / "edge/two_audio_tracks_subtitles.mkv", tmp_path / "o.mp4", FAST, max_frames=10)
    assert _audio_streams(rt) == ["aac", "aac"] and not [t for t, _ in rt.out_streams if t == "subtitle"]
    assert rt.stats.warnings.get("subtitles dropped") == 1
    rt = roundtrip(testdata / "edge/mjpeg_yuvj422p_pcm.avi", tmp_path / "p.mp4", FAST_LOSSLESS)
    _check_identity(rt, min_psnr=40.0)
    assert _audio_streams(rt) == ["aac"] and rt.stats.warnings.get("audio re-encoded") == 1
    with av.open(str(rt.out)) as c:
        a = c.streams.audio[0]
        assert float(a.duration * a.time_base) == pytest.approx(1.5, abs=0.05)


def test_container_metadata_and_interleaving(testdata: Path, tmp_path: Path) -> None:
    import dataclasses
    src = testdata / "edge/two_audio_tracks_subtitles.mkv"
    tagged = tmp_path / "tagged.mkv"
    with VideoReader(src) as r:
        info = dataclasses.replace(r.info, metadata={"title": "vidrestore test", "comment": "kept"})
        with VideoWriter(tagged, info=info, source=src, config=FAST) as w:
            for f in r:
                w.write(f)
    rt = roundtrip(tagged, tmp_path / "o.mkv", FAST)
    meta = {k.lower(): v for k, v in rt.out_info.metadata.items()}  # Matroska upper-cases tag names
    assert meta.get("title") == "vidrestore test" and meta.get("comment") == "kept"
    with av.open(str(rt.out)) as c:  # audio never runs far ahead of or behind the video in the file
        assert [s.language for s in c.streams.audio] == ["eng", "fra"]
        last = {"video": 0.0, "audio": 0.0}
        worst = 0.0
        for p in c.demux():
            if p.pts is not None and p.stream.type in last:
                last[p.stream.type] = float(p.pts * p.time_base)
                worst = max(worst, abs(last["video"] - last["audio"]))
    assert worst < 1.5


@pytest.mark.parametrize("rel,ext", [("images/facexlib_test.jpg", ".png"),
                                     ("images/gfpgan_cropped_Adele_512.png", ".webp"),
                                     ("images/gfpgan_cropped_Adele_512.png", ".jpg"),
                                     ("edge/jpeg_image_renamed.mp4", ".mp4")])
def test_still_image_roundtrip(testdata: Path, tmp_path: Path, rel: str, ext: str) -> None:
    rt = roundtrip(testdata / rel, tmp_path / f"o{ext}", FAST_LOSSLESS)
    _check_identity(rt, min_psnr=99.0 if ext == ".png" else 30.0, time_tol=1.0)
    assert rt.out_info.is_image == (ext != ".mp4")


def test_png_alpha_kept(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    alpha = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    src = tmp_path / "a.png"
    import cv2
    assert cv2.imwrite(str(src), np.dstack([rgb[..., ::-1], alpha]))
    rt = roundtrip(src, tmp_path / "b.png", EncodeConfig())
    (_, out_rgb, out_alpha), = rt.out_frames
    assert np.array_equal(out_rgb, rgb) and np.array_equal(out_alpha, alpha)


# -- output paths and atomicity -------------------------------------------------------------------

@pytest.fixture()
def small_clip(testdata: Path, tmp_path: Path) -> Path:
    src = tmp_path / "in" / "clip.mov"
    src.parent.mkdir()
    shutil.copy(testdata / "edge/upstream/decord_video_90.mov", src)
    return src


def test_output_path_rules(small_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError, match="unknown output extension"):
        check_output_path(tmp_path / "o.xyz", source=small_clip, overwrite=False)
    with pytest.raises(OutputError, match="folder does not exist"):
        check_output_path(tmp_path / "nope" / "o.mp4", source=small_clip, overwrite=False)
    with pytest.raises(OutputError, match="is the input"):
        check_output_path(small_clip, source=small_clip, overwrite=True)
    monkeypatch.chdir(small_clip.parent)
    with pytest.raises(OutputError, match="is the input"):
        check_output_path("../in/./clip.mov", source=small_clip, overwrite=True)
    link = tmp_path / "link.mov"
    link.symlink_to(small_clip)
    with pytest.raises(OutputError, match="is the input"):
        check_output_path(link, source=small_clip, overwrite=True)
    hard = tmp_path / "hard.mov"
    os.link(small_clip, hard)
    with pytest.raises(OutputError, match="is the input"):
        check_output_path(hard, source=small_clip, overwrite=True)
    assert check_output_path("new.mp4", source=small_clip, overwrite=False) == small_clip.parent / "new.mp4"


def test_existing_output_refused_without_overwrite(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with VideoReader(small_clip) as r:
        with pytest.raises(OutputError, match="already exists"):
            VideoWriter(out, info=r.info, source=small_clip)
    assert out.read_bytes() == b"precious"
    rt = roundtrip_overwrite(small_clip, out)
    assert rt > 0 and out.read_bytes() != b"precious"


def roundtrip_overwrite(src: Path, out: Path) -> int:
    with VideoReader(src) as r, VideoWriter(out, info=r.info, source=src, config=FAST, overwrite=True) as w:
        for f in r:
            w.write(f)
    return w.stats.frames


def test_exception_mid_write_leaves_nothing(small_clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "outdir"
    folder.mkdir()
    out = folder / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoReader(small_clip) as r, VideoWriter(out, info=r.info, source=small_clip, config=FAST) as w:
            for f in r:
                w.write(f)
                temps = [p.name for p in folder.iterdir()]
                assert len(temps) == 1 and temps[0].startswith(".out.") and temps[0].endswith(".mp4")
                assert not out.exists()
                raise RuntimeError("boom")
    assert list(folder.iterdir()) == []
    # the same with an existing target and overwrite=True: the old file survives an aborted run
    out.write_bytes(b"old")
    with VideoReader(small_clip) as r:
        w = VideoWriter(out, info=r.info, source=small_clip, config=FAST, overwrite=True)
        w.write(next(iter(r)))
        w.abort()
    assert out.read_bytes() == b"old" and [p.name for p in folder.iterdir()] == ["out.mp4"]


def test_writer_rejects_bad_frames_and_empty_output(small_clip: Path, tmp_path: Path) -> None:
    from vidrestore.types import Frame
    with VideoReader(small_clip) as r:
        info = r.info
    w = VideoWriter(tmp_path / "o.mp4", info=info, source=small_clip, config=FAST)
    with pytest.raises(EncodeError, match="expected"):
        w.write(Frame(index=0, pts=0, time_base=info.time_base, rgb=np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(EncodeError, match="no frames"):
        w.commit()
    assert list(tmp_path.glob("*o.*")) == []
    with pytest.raises(OutputError, match="still-image"):
        VideoWriter(tmp_path / "o.png", info=info, source=small_clip)


def test_generated_frames_without_source_or_pts(small_clip: Path, tmp_path: Path) -> None:
    """No source (no audio to copy) and frames without pts: times are laid out at the average rate."""
    from vidrestore.types import Frame
    with VideoReader(small_clip) as r:
        info = r.info
        frames = [Frame(index=f.index, pts=None, time_base=f.time_base, rgb=f.rgb) for f in r]
    out = tmp_path / "gen.mkv"
    with VideoWriter(out, info=info, source=None, config=EncodeConfig(codec="ffv1")) as w:
        for f in frames:
            w.write(f)
    with VideoReader(out) as r:
        got = list(r)
    assert len(got) == 3 and all(np.array_equal(a.rgb, b.rgb) for a, b in zip(frames, got))
    steps = np.diff([f.time_s for f in got])
    assert np.allclose(steps, float(1 / info.avg_rate), atol=1e-3)
