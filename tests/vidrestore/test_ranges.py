"""--start/--end/--keep-outside: one range mechanism, frame-exact by pts (real files, real detector)."""
from __future__ import annotations

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

CLI = ["--restorer", "identity", "--codec", "ffv1", "--max-misses", "3", "-q"]


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
    assert warmup_frames(RestoreConfig(smooth=SmoothConfig(lookahead=12))) > base
    assert warmup_frames(RestoreConfig()) % RestoreConfig().detect.batch == 0


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
    assert 44 < a < 80
    part = _frames(out)
    assert [p for p, _ in part] == [round(index.time_s(i), 3) for i in range(a, 80)]
    for (_, x), (_, y) in zip(part, whole[a:80]):
        assert np.array_equal(x, y)


def test_keep_outside_restores_only_the_range(full, tmp_path):
    src, whole = full
    out = tmp_path / "keep.mkv"
    assert run([str(src), "-o", str(out), "--start", "30f", "--end", "60f", "--keep-outside", *CLI]) == 0
    kept = _frames(out)
    source = _frames(src)
    assert [p for p, _ in kept] == [p for p, _ in source]
    for i, (_, x) in enumerate(kept):
        ref = whole[i][1] if 30 <= i < 60 else source[i][1]    # outside: the decoded source, re-encoded
        assert np.array_equal(x, ref), i
    assert not np.array_equal(whole[45][1], source[45][1]), "the identity round trip changes faces"


def test_range_errors(testdata, tmp_path):
    src = testdata / "edge" / "vfr_gap_face.mp4"
    index = scan_frames(src)
    with pytest.raises(ConfigError):
        resolve(index, CONFIG, start=parse_time("99"))
    assert run([str(src), "-o", str(tmp_path / "x.mkv"), "--start", "3", "--end", "2", *CLI]) == 7
    assert run([str(src), "-o", str(tmp_path / "x.mkv"), "--keep-outside", *CLI]) == 7
