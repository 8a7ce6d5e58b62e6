"""Lost frames are said (how many, where), --strict turns a loss into an error, absurd headers are
refused before anything large is allocated, a header frame count in the millions costs nothing."""
from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import pytest

from tests.support.clips import remux_head
from vidrestore.cli import run
from vidrestore.config import DecodeConfig
from vidrestore.errors import InputError
from vidrestore.media.decode import VideoReader

SOURCE = "clips/lp_d0_talking_512.mp4"
ARGS = ["--restorer", "identity", "--preset", "ultrafast"]


def count(path: Path, **kw) -> VideoReader:
    r = VideoReader(path, config=DecodeConfig(**kw))
    for _ in r:
        pass
    r.close()
    return r


def _garble_packet(k: int):
    def damage(i: int, data: bytes) -> bytes:
        if i != k:
            return data
        rng = random.Random(k)
        return data[:4] + bytes(rng.randrange(256) for _ in range(len(data) - 4))
    return damage


@pytest.fixture(scope="module")
def damaged(testdata, tmp_path_factory) -> Path:
    """12 frames, packet 6 (0.24 s) garbled."""
    return remux_head(testdata / SOURCE, tmp_path_factory.mktemp("d") / "damaged.mp4", frames=12,
                      damage=_garble_packet(6))


@pytest.fixture(scope="module")
def truncated(testdata, tmp_path_factory) -> Path:
    """24 frames with the index first, cut at 60 %: the header promises 24, fewer are there."""
    d = tmp_path_factory.mktemp("t")
    whole = remux_head(testdata / SOURCE, d / "whole.mp4", frames=24, faststart=True)
    cut = d / "truncated.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])
    return cut


def test_corrupt_packet_counted_with_its_time(damaged):
    r = count(damaged)
    assert r.stats.frames == 11 and r.stats.frames_lost == 1
    assert r.stats.lost == [(0.24, 1, "corrupt packet")]
    assert r.stats.loss_text() == "1 frames lost: 1 from 0.24 s (corrupt packet)"


def test_truncation_counted_after_the_last_frame(truncated):
    r = count(truncated)
    assert 0 < r.stats.frames < 24
    assert r.stats.frames + r.stats.frames_lost == 24
    t, n, cause = r.stats.lost[-1]
    assert cause == "file ends early" and t == pytest.approx((r.stats.frames - 1) * 0.04, abs=0.05)


@pytest.mark.parametrize("rel", ["clips/lp_d0_talking_512.mp4", "edge/vfr_gap_face.mp4",
                                 "edge/vp9_opus_face.webm", "edge/audio_longer_than_video_face.mp4",
                                 "edge/two_audio_tracks_subtitles.mkv", "edge/start_offset_v1.0_a0.5_face.ts"])
def test_healthy_files_lose_nothing(rel, testdata):
    r = count(testdata / rel)
    assert r.stats.frames_lost == 0, r.stats.lost


def test_corpus_damaged_files(testdata):
    r = count(testdata / "edge/corrupt_mdat_middle_face.mp4")
    assert r.stats.frames == 120 and r.stats.frames_lost == 30      # 150 in the header
    assert r.stats.lost[0][2] == "corrupt packet" and r.stats.lost[0][0] == pytest.approx(2.4, abs=0.05)


def test_cli_says_loss_and_strict_refuses(damaged, tmp_path, capsys):
    out, rep = tmp_path / "o.mp4", tmp_path / "r.json"
    assert run([str(damaged), "-o", str(out), *ARGS, "--report", str(rep)]) == 0
    err = capsys.readouterr().err
    assert "input damaged: 1 frames lost: 1 from 0.24 s (corrupt packet)" in err
    data = json.loads(rep.read_text())
    assert data["frames_lost"] == 1 and data["lost"] == [[0.24, 1, "corrupt packet"]]
    strict = tmp_path / "strict"
    strict.mkdir()
    assert run([str(damaged), "-o", str(strict / "o.mp4"), *ARGS, "--strict"]) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(lines) == 1 and "damaged.mp4" in lines[0] and "0.24 s" in lines[0] and "--strict" in lines[0]
    assert list(strict.iterdir()) == []


def test_strict_refuses_truncation(truncated, tmp_path, capsys):
    assert run([str(truncated), "-o", str(tmp_path / "o.mp4"), *ARGS, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "frames lost" in err and "--strict" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("name,data,why", [
    ("big.y4m", b"YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 4096,
     "12000x12000 is over the limit of 67 megapixels"),
    ("big.png", _png(12000, 12000), "12000x12000 is over the limit"),
    ("huge.y4m", b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 4096,
     "cannot be opened"),                                   # FFmpeg itself refuses > 2^28 pixels
    ("huge.png", _png(30000, 30000), "")])
def test_absurd_dimensions_refused(name, data, why, tmp_path):
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(InputError, match=why) as e:
        VideoReader(src)
    assert name in str(e.value)


def test_millions_of_frames_in_the_header(testdata, tmp_path):
    """stts claims 5,000,000 frames, 12 are there: a normal run of 12 frames, the rest said lost."""
    src = remux_head(testdata / SOURCE, tmp_path / "short.mp4", frames=12)
    data = bytearray(src.read_bytes())
    i = data.find(b"stts")
    struct.pack_into(">I", data, i + 12, 5_000_000)
    big = tmp_path / "big.mp4"
    big.write_bytes(bytes(data))
    r = count(big)
    assert r.info.frame_count_estimate == 5_000_000
    assert r.stats.frames == 12 and r.stats.frames_lost == 5_000_000 - 12
    [(t, n, cause)] = r.stats.lost
    assert (n, cause) == (5_000_000 - 12, "file ends early") and 0.4 <= t <= 0.5
