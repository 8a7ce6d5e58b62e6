"""Full bit depth and intermediate codecs on the real 10/12-bit clips of the corpus, encoder level
(decode -> encode, no network): depth, colour tags, alpha, timecode, precision."""
from __future__ import annotations

import av
import numpy as np
import pytest

from vidrestore.config import DecodeConfig, EncodeConfig
from vidrestore.media.decode import VideoReader
from vidrestore.media.pixels import frame_to_rgb48
from vidrestore.media.encode import VideoWriter
from vidrestore.media.output import pix_bits


def _roundtrip(src, out, config, n=3, decode=DecodeConfig()):
    with VideoReader(src, config=decode) as r:
        frames = [f for f, _ in zip(r, range(n))]
        info = r.info
    with VideoWriter(out, info=info, source=src, config=config) as w:
        for f in frames:
            w.write(f)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        vf = next(c.decode(video=0))
        got, _ = frame_to_rgb48(vf, want_alpha=False)
        return frames, s.codec_context.pix_fmt, vf, got, dict(s.metadata)


@pytest.mark.parametrize("codec,pix,ext,want_pix,max_lsb", [
    ("ffv1", None, ".mkv", "gbrp10le", 1.0),            # lossless RGB at the source depth
    ("libx265", None, ".mp4", "yuv420p10le", None),
    ("prores_hq", None, ".mov", "yuv422p10le", None),
    ("dnxhr_hqx", None, ".mov", "yuv422p10le", None),
    ("libx264", None, ".mp4", "yuv420p10le", None),     # the default codec keeps 10 bits too
    ("ffv1", "yuv422p10le", ".mkv", "yuv422p10le", None),
])
def test_hdr10_source_keeps_depth_and_tags(testdata, tmp_path, codec, pix, ext, want_pix, max_lsb):
    src = testdata / "edge/hdr10_pq_bt2020_hevc_face.mp4"
    frames, got_pix, vf, got, _ = _roundtrip(src, tmp_path / f"o{ext}",
                                             EncodeConfig(codec=codec, pix_fmt=pix, preset="ultrafast"))
    assert got_pix == want_pix and pix_bits(got_pix) == 10
    assert (vf.color_primaries, vf.color_trc) == (9, 16)            # BT.2020, PQ
    if not got_pix.startswith("gbr") and codec != "dnxhd" and not codec.startswith("dnxhr"):
        assert vf.colorspace == 9                                   # BT.2020 non-constant matrix
    err = np.abs(got.astype(np.int64) - frames[0].rgb_hi.astype(np.int64)) / 64.0   # in 10-bit LSBs
    if max_lsb is not None:
        assert err.max() <= max_lsb
    assert err.mean() < 3.0


def test_eight_bit_path_would_lose_the_low_bits(testdata, tmp_path):
    """Guard for the test above: through the old 8-bit path the same lossless round trip is off by
    up to 2 LSB at 10 bit."""
    src = testdata / "edge/hdr10_pq_bt2020_hevc_face.mp4"
    frames, got_pix, _, got, _ = _roundtrip(src, tmp_path / "o.mkv", EncodeConfig(codec="ffv1"),
                                            decode=DecodeConfig(full_depth=False))
    with VideoReader(src) as r:
        ref = next(iter(r)).rgb_hi
    assert frames[0].rgb_hi is None
    assert np.abs(got.astype(np.int64) - ref.astype(np.int64)).max() / 64.0 > 1.5


def test_prores4444_alpha_and_timecode(testdata, tmp_path):
    import subprocess
    import imageio_ffmpeg
    src = tmp_path / "tc.mov"   # the corpus clip with a timecode track added by a real ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i",
                    str(testdata / "edge/prores4444_alpha_face.mov"), "-frames:v", "3", "-c", "copy",
                    "-timecode", "01:02:03:04", str(src)], check=True)
    frames, got_pix, vf, got, meta = _roundtrip(src, tmp_path / "o.mov", EncodeConfig(codec="prores_4444"))
    assert got_pix.startswith("yuva444p") and pix_bits(got_pix) >= 10
    assert meta.get("timecode") == "01:02:03:04"
    err = np.abs(got.astype(np.int64) - frames[0].rgb_hi.astype(np.int64)) / 64.0
    assert err.mean() < 1.0
