"""--start/--end/--keep-outside: one range mechanism, frame-exact by pts (real files, real detector)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.vidrestore.scale.conftest import CONFIG
from vidrestore.cli import run
from vidrestore.config import RestoreConfig, SmoothConfig, TrackConfig
from vidrestore.errors import ConfigError
from vidrestore.media.decode import VideoReader
from vidrestore.media.index import scan_frames
from vidrestore.pipeline import restore_video
from vidrestore.ranges import parse_time, resolve, warmup_frames

# the polynomial smoother keeps the warm-up (28 frames) short enough that a range in this 95-frame clip
# really seeks and warms up; the default RTS smoother needs 60 frames (tests/vidrestore/scale covers it)
CLI = ["--restorer", "identity", "--codec", "ffv1", "--max-misses", "3", "--smoothing-method", "poly", "-q"]


def test_parse_time_forms():
    assert parse_time("12.5").value == 12.5
    assert parse_time("00:01:02.250").value == pytest.approx(62.25)
    assert parse_time("1:02.5").value == pytest.approx(62.5)
    spec = parse_time("300f")
    assert spec.frames and spec.value == 300
    for bad in ("abc", "-1", "1:75", "12f3"):
        with pytest.raises(ConfigError):
            parse_time(bad)


def test_warmup_follows_the_config_fields():
    base = warmup_frames(RestoreConfig())
    assert warmup_frames(RestoreConfig(track=TrackConfig(max_misses=30))) >= base + 20
    poly = warmup_frames(RestoreConfig(smooth=SmoothConfig(method="poly")))
    assert warmup_frames(RestoreConfig(smooth=SmoothConfig(method="poly", lookahead=12))) > poly
    assert base - poly >= 50, "the RTS smoother's memory (60 frames) is in the default warm-up"
    assert warmup_frames(RestoreConfig()) % RestoreConfig().detect.batch == 0


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _frames(path):
    with VideoReader(path) as r:
        return [(round(f.time_s, 3), f.rgb) for f in r]   # .mkv stores milliseconds


@pytest.fixture(scope="module")
def full(testdata, tmp_path_factory):
    """The whole VFR clip restored in one run (same settings as the CLI below)."""
    src = testdata / "edge" / "vfr_gap_face.mp4"
    out = tmp_path_factory.mktemp("full") / "full.mkv"
    assert run([str(src), "-o", str(out), *CLI]) == 0
    return src, _frames(out)


def test_start_end_on_vfr_equals_that_part_of_a_full_run(full, tmp_path):
    src, whole = full
    index = scan_frames(src)
    out = tmp_path / "part.mkv"
    # 2.0 s lies after the clip's 1 s gap (frame 44); the end is given as a frame number
    assert run([str(src), "-o", str(out), "--start", "00:00:02.000", "--end", "80f", *CLI]) == 0
    a = index.frame_at(2.0)
    assert 44 < a < 80 and scan_frames(src).pts[a] > 0
    assert a - warmup_frames(_config_of_cli()) > 0, "the range must start with a seek, not at frame 0"
    part = _frames(out)
    assert [p for p, _ in part] == [round(index.time_s(i), 3) for i in range(a, 80)]
    assert min(psnr(x, y) for (_, x), (_, y) in zip(part, whole[a:80])) >= 55.0


def test_keep_outside_restores_only_the_range(full, tmp_path):
    src, whole = full
    out = tmp_path / "keep.mkv"
    assert run([str(src), "-o", str(out), "--start", "30f", "--end", "60f", "--keep-outside", *CLI]) == 0
    kept = _frames(out)
    source = _frames(src)
    assert [p for p, _ in kept] == [p for p, _ in source]
    for i, (_, x) in enumerate(kept):
        if 30 <= i < 60:
            assert psnr(x, whole[i][1]) >= 55.0, i
        else:                                                  # outside: the decoded source, re-encoded
            assert np.array_equal(x, source[i][1]), i
    assert not np.array_equal(whole[45][1], source[45][1]), "the identity round trip changes faces"


def test_start_end_with_the_default_rts_smoother(testdata, tmp_path):
    """The RTS smoother's memory (60 frames) is in the warm-up: the range matches a whole run."""
    src = testdata / "edge" / "vfr_gap_face.mp4"
    cli = [a for a in CLI if a not in ("--smoothing-method", "poly")]
    assert run([str(src), "-o", str(tmp_path / "whole.mkv"), *cli]) == 0
    assert run([str(src), "-o", str(tmp_path / "part.mkv"), "--start", "88f", *cli]) == 0
    assert 88 - warmup_frames(RestoreConfig(track=TrackConfig(max_misses=3))) > 0
    whole, part = _frames(tmp_path / "whole.mkv")[88:], _frames(tmp_path / "part.mkv")
    assert [t for t, _ in part] == [t for t, _ in whole]
    assert min(psnr(x, y) for (_, x), (_, y) in zip(part, whole)) >= 55.0


def _config_of_cli():
    from vidrestore.config import SmoothConfig, TrackConfig
    return RestoreConfig(track=TrackConfig(max_misses=3), smooth=SmoothConfig(method="poly"))


def test_range_errors(testdata, tmp_path):
    src = testdata / "edge" / "vfr_gap_face.mp4"
    index = scan_frames(src)
    with pytest.raises(ConfigError):
        resolve(index, CONFIG, start=parse_time("99"))
    assert run([str(src), "-o", str(tmp_path / "x.mkv"), "--start", "3", "--end", "2", *CLI]) == 7
    assert run([str(src), "-o", str(tmp_path / "x.mkv"), "--keep-outside", *CLI]) == 7


def test_a_range_keeps_only_the_audio_under_its_frames(testdata, tmp_path):
    """--start 1 --end 2 of a clip with audio: the output's audio starts at the range's first frame and
    ends with its last (to one audio packet), instead of carrying the whole track; --keep-outside keeps
    it all."""
    import av

    src = testdata / "clips/lp_d10_talking_512_audio.mp4"

    def audio_span(path):
        times, vt = [], []
        with av.open(str(path)) as c:
            a, v = c.streams.audio[0], c.streams.video[0]
            for p in c.demux(a, v):
                if p.pts is None:
                    continue
                if p.stream.index == a.index:
                    times.append((float(p.pts * a.time_base), float((p.pts + (p.duration or 0)) * a.time_base)))
                else:
                    vt.append(float(p.pts * v.time_base))
        return min(t for t, _ in times), max(e for _, e in times), min(vt), max(vt)

    whole = audio_span(src)
    cut, kept = tmp_path / "cut.mp4", tmp_path / "kept.mp4"
    args = ["--restorer", "identity", "--smoothing-method", "poly", "-q"]
    assert run([str(src), "-o", str(cut), "--start", "1", "--end", "2", *args]) == 0
    a0, a1, v0, v1 = audio_span(cut)
    assert v0 == pytest.approx(1.0, abs=0.04) and v1 < 2.0
    assert v0 - 0.03 <= a0 <= v0 + 0.03 and 1.9 <= a1 <= 2.0 + 0.03     # one AAC packet is 21 ms
    assert whole[1] - whole[0] > 4.0
    assert run([str(src), "-o", str(kept), "--start", "1", "--end", "2", "--keep-outside", *args]) == 0
    k0, k1, _, _ = audio_span(kept)
    assert k0 == pytest.approx(whole[0], abs=0.03) and k1 == pytest.approx(whole[1], abs=0.03)
