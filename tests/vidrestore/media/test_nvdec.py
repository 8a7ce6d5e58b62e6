"""NVDEC reader: the CPU-side logic here (support table, Annex B packets, fallbacks); frames on CUDA."""
from __future__ import annotations

import math
from dataclasses import replace

import av
import numpy as np
import pytest

from vidrestore.errors import BackendUnavailable, ConfigError
from vidrestore.media.decode import VideoReader, probe
from vidrestore.media.nvdec import (ANNEXB_FILTERS, INSTALL_ADVICE, NvdecReader, is_annexb, open_reader,
                                    unsupported_reason)

HD = "clips/lp_s32_interview_1080p_silentaudio.mp4"


def _has_nvc() -> bool:
    try:
        import PyNvVideoCodec  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("rel,reason", [
    (HD, None),
    ("clips/lp_d0_talking_512.mp4", None),
    ("edge/vp9_opus_face.webm", None),
    ("edge/hevc_main10_yuv420p10le_face.mp4", "pixel format"),
    ("edge/fullrange_yuvj420p_face.mp4", "pixel format"),
    ("edge/odd_853x481_yuv444p_face.mp4", "pixel format"),
    ("edge/mjpeg_yuvj422p_pcm.avi", "codec"),
    ("edge/prores4444_alpha_face.mov", "codec"),
    ("edge/hdr10_pq_bt2020_hevc_face.mp4", "pixel format"),
])
def test_support_table(testdata, rel, reason):
    got = unsupported_reason(probe(testdata / rel))
    if reason is None:
        assert got is None
    else:
        assert got is not None and got.startswith(reason), got


def test_support_table_colour_rules(testdata):
    info = probe(testdata / HD)
    assert info.decode_matrix == "bt709" and info.decode_range == "tv"
    assert unsupported_reason(replace(info, decode_range="pc")).startswith("colour range")
    assert unsupported_reason(replace(info, decode_matrix="bt2020")).startswith("colour matrix")
    assert unsupported_reason(replace(info, stored_width=853)).startswith("odd frame size")
    assert unsupported_reason(replace(info, is_image=True)) == "still image"


@pytest.mark.parametrize("rel", [HD, "edge/rotate90_portrait_face.mp4"])
def test_annexb_conversion_of_real_packets(testdata, rel):
    """Every MP4 H.264 packet becomes an Annex B access unit with the same pts, count kept."""
    with av.open(str(testdata / rel)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name in ANNEXB_FILTERS
        raw = [(bytes(p), p.pts) for p in c.demux(s) if p.size]
    assert not any(is_annexb(d) for d, _ in raw[:5])               # MP4 stores length prefixes
    with av.open(str(testdata / rel)) as c:
        s = c.streams.video[0]
        bsf = av.bitstream.BitStreamFilterContext(ANNEXB_FILTERS[s.codec_context.name], s)
        out = []
        for p in c.demux(s):
            out += [(bytes(q), q.pts) for q in bsf.filter(p if p.size else None) if q.size]
    assert len(out) == len(raw)
    assert all(is_annexb(d) for d, _ in out)
    assert [pts for _, pts in out] == [pts for _, pts in raw]
    # the converted stream decodes to the same frames with FFmpeg's own decoder
    codec = av.CodecContext.create(s.codec_context.name, "r")
    frames = []
    for d, pts in out[:10]:
        frames += codec.decode(av.Packet(d))
    with av.open(str(testdata / rel)) as c:
        ref = [f.to_ndarray(format="rgb24") for _, f in zip(range(len(frames)), c.decode(video=0))]
    assert len(frames) >= 5
    assert all(np.array_equal(f.to_ndarray(format="rgb24"), r) for f, r in zip(frames, ref))


@pytest.mark.skipif(_has_nvc(), reason="PyNvVideoCodec is installed")
def test_missing_pynvvideocodec(testdata):
    with pytest.raises(BackendUnavailable, match="PyNvVideoCodec not installed"):
        NvdecReader(testdata / HD)
    reader = open_reader(testdata / HD, device="cuda")           # falls back silently: optional package
    assert isinstance(reader, VideoReader)
    assert reader.stats.warnings == {}
    reader.close()
    assert INSTALL_ADVICE.startswith("PyNvVideoCodec not installed")


def test_open_reader_on_cpu(testdata):
    with open_reader(testdata / "clips/lp_d0_talking_512.mp4", device="cpu") as r:
        assert isinstance(r, VideoReader)
        assert sum(1 for _ in r) == 78


class _PyAVNv12Decoder:
    """Stands in for PyNvVideoCodec on the CPU: FFmpeg decodes the Annex B packets NvdecReader feeds
    and hands back NV12 (H*3/2, W) uint8 tensors in presentation order, like NVDEC."""

    def __init__(self, codec: str, index) -> None:
        self.ctx = av.CodecContext.create(codec, "r")
        self.fed = []

    def decode(self, data, pts):
        import torch
        self.fed.append(data)
        frames = self.ctx.decode(av.Packet(data) if data else None)
        return [torch.from_numpy(f.reformat(format="nv12").to_ndarray().copy()) for f in frames]


@pytest.mark.parametrize("rel", [pytest.param("clips/lp_d0_talking_512.mp4", marks=pytest.mark.slow),
                                 "edge/rotate90_portrait_face.mp4", "edge/vfr_gap_face.mp4"])
def test_reader_logic_with_a_cpu_stand_in_decoder(testdata, rel):
    """Demux, Annex B, pts assignment, NV12 -> RGB with the CPU reader's matrix, rotation: NvdecReader
    with FFmpeg in place of NVDEC gives PyAV's frames, timestamps and counts."""
    decoders = []

    def factory(codec, index):
        decoders.append(_PyAVNv12Decoder(codec, index))
        return decoders[-1]

    with VideoReader(testdata / rel) as ref, NvdecReader(testdata / rel, device="cpu",
                                                           _decoder_factory=factory) as r:
        assert r.info == ref.info
        expected = list(ref)
        got = list(r)
    assert all(is_annexb(d) for d in decoders[0].fed if d)
    assert len(got) == len(expected)
    assert [g.pts for g in got] == [e.pts for e in expected]
    for e, g in zip(expected, got):
        assert g.rgb.shape == e.rgb.shape and g.time_base == e.time_base
        assert _psnr(g.rgb.numpy(), e.rgb) >= 40.0
    assert r.stats.frames == len(expected)


class _RejectingDecoder:
    """A decoder that takes no packet (a GPU without this codec, or a driver failure)."""

    def __init__(self, codec: str, index) -> None:
        self.calls = 0

    def decode(self, data, pts):
        self.calls += 1
        raise RuntimeError("CUVID_ERROR: codec not supported")


def test_a_stream_nvdec_rejects_falls_back_to_the_cpu_before_the_run_starts(testdata):
    rel = "edge/rotate90_portrait_face.mp4"
    decoders = []

    def rejecting(codec, index):
        decoders.append(_RejectingDecoder(codec, index))
        return decoders[-1]

    with NvdecReader(testdata / rel, device="cpu", _decoder_factory=rejecting) as r:
        with pytest.raises(BackendUnavailable, match="NVDEC rejected the first 16 packets.*not supported"):
            r.prime()
    assert decoders[0].calls == 16                                 # gave up early, not after 1000
    reader = open_reader(testdata / rel, device="cpu", _decoder_factory=rejecting)
    with reader, VideoReader(testdata / rel) as ref:
        assert isinstance(reader, VideoReader)
        assert any("NVDEC rejected" in w for w in reader.stats.warnings)
        assert sum(1 for _ in reader) == sum(1 for _ in ref) > 0  # the whole clip, decoded on the CPU


def test_a_primed_reader_yields_every_frame_once(testdata):
    rel = "edge/vfr_gap_face.mp4"
    with VideoReader(testdata / rel) as ref:
        expected = [f.pts for f in ref]
    reader = open_reader(testdata / rel, device="cpu", _decoder_factory=_PyAVNv12Decoder)
    with reader:
        assert isinstance(reader, NvdecReader)                     # primed: its first frame came out
        assert [f.pts for f in reader] == expected
        with pytest.raises(RuntimeError, match="only once"):
            iter(reader)


def test_kernels_choice_picks_the_nv12_conversion(testdata):
    from engines import kernels_reference
    from vidrestore.media.nvdec import _rgb_converter

    assert _rgb_converter("cpu", "torch") is kernels_reference.nv12_to_rgb
    with pytest.raises(ConfigError, match="--kernels"):
        _rgb_converter("cpu", "cuda")
    with NvdecReader(testdata / "edge/vfr_gap_face.mp4", device="cpu", kernels="torch",
                     _decoder_factory=_PyAVNv12Decoder) as r:
        assert r._to_rgb is kernels_reference.nv12_to_rgb


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("rel", [HD, "edge/rotate90_portrait_face.mp4", "edge/vfr_gap_face.mp4"])
def test_nvdec_frames_match_pyav(testdata, rel):
    from tests.support.require import require_module
    require_module("PyNvVideoCodec", gpu=True)
    with VideoReader(testdata / rel) as ref, NvdecReader(testdata / rel, device="cuda") as gpu:
        assert gpu.info == ref.info
        expected = list(ref)
        got = list(gpu)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert g.rgb.is_cuda and g.rgb.shape == e.rgb.shape
        assert g.pts == e.pts and g.time_base == e.time_base
        assert _psnr(g.rgb.cpu().numpy(), e.rgb) >= 40.0
