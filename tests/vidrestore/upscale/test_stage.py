"""--upscale end to end: real clips (cut by packet copy, so the streams stay the source's), the real
detector and encoders, identity restorer; plus the stage on its own (tensor path, networks)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.clips import remux_head
from vidrestore import cli
from vidrestore.config import ModelConfig, UpscaleConfig
from vidrestore.media.decode import VideoReader, probe
from vidrestore.models.checkpoints import save_gfpgan
from vidrestore.models.realesrgan import RRDBNet, SRVGGNetCompact
from vidrestore.upscale.resize import resize_rgb
from vidrestore.upscale.stage import FrameUpscaler


def _head(src: Path, dst: Path, n_video: int) -> Path:
    """The first ``n_video`` video packets (decode order, so every one decodes) and the audio up to
    there, stream-copied: same codecs, timestamps and rotation as the source."""
    return remux_head(src, dst, frames=n_video, all_audio=True)


def _frames(path: Path) -> list:
    with VideoReader(path) as r:
        return list(r)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _net(model: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in ** -0.5 if p.ndim > 1 else 0.05))
    return model.eval()


@pytest.fixture(scope="module")
def small(testdata, tmp_path_factory) -> Path:
    """24 frames of a 192x192 MPEG-2 clip with MP2 audio: the low-resolution footage --upscale is for."""
    return _head(testdata / "edge/degraded_mpeg2_192px_blocky_face.mpg",
                 tmp_path_factory.mktemp("clips") / "small.mkv", 24)


def test_done_when_upscale_2_doubles_and_keeps_everything(small, tmp_path) -> None:
    out, rep = tmp_path / "out.mkv", tmp_path / "r.json"
    assert cli.run([str(small), "-o", str(out), "--restorer", "identity", "--upscale", "2",
                    "--report", str(rep), "-q"]) == 0
    src, dst = probe(small), probe(out)
    assert (dst.width, dst.height) == (2 * src.width, 2 * src.height) == (384, 384)
    a, b = _frames(small), _frames(out)
    assert len(a) == len(b) == 24
    assert [f.time_s for f in b] == pytest.approx([f.time_s for f in a], abs=1e-3)
    assert [s.codec for s in dst.audio] == [s.codec for s in src.audio] == ["mp2"]
    report = json.loads(rep.read_text())
    assert report["faces_restored"] > 0                     # faces were pasted into the big frames
    u = report["upscale"]
    assert u["output_size"] == [384, 384] and u["method"] == "lanczos" and u["size_rule"] == "exactly S x input"
    assert "upscale" in report["stage_seconds"]
    # where nothing was restored (identity) the picture is a Lanczos x2 of the input, up to x264 CRF 18
    scores = [psnr(y.rgb, resize_rgb(x.rgb, (384, 384))) for x, y in zip(a, b)]
    assert min(scores) >= 33.0, scores


def test_rotated_clip_stays_upright(testdata, tmp_path) -> None:
    clip = _head(testdata / "edge/rotate90_portrait_face.mp4", tmp_path / "rot.mp4", 6)
    out = tmp_path / "rot_x2.mp4"
    assert cli.run([str(clip), "-o", str(out), "--restorer", "identity", "--upscale", "2", "--preset",
                    "ultrafast", "-q"]) == 0
    src, dst = probe(clip), probe(out)
    assert src.rotation != 0 and dst.rotation == src.rotation
    assert (dst.width, dst.height) == (1440, 2560) and (dst.stored_width, dst.stored_height) == (2560, 1440)
    a, b = _frames(clip), _frames(out)
    assert len(a) == len(b) == 6
    # upright content: matches a Lanczos x2 of the upright input, and not of its transpose
    assert psnr(b[0].rgb, resize_rgb(a[0].rgb, (1440, 2560))) >= 33.0
    assert b[0].rgb.shape == (2560, 1440, 3)


def test_still_image_upscale(testdata, tmp_path) -> None:
    out = tmp_path / "big.png"
    src = testdata / "images/gfpgan_cropped_Adele_512.png"
    assert cli.run([str(src), "-o", str(out), "--restorer", "identity", "--upscale", "2", "-q"]) == 0
    assert (probe(out).width, probe(out).height) == (1024, 1024)


def test_network_fractional_scale_is_exactly_the_stage_output(small, tmp_path) -> None:
    """x2 network then area to 1.5x, through onnxruntime (auto on the CPU), tiled; with no face pasted
    (--min-face huge) the lossless output equals the stage run on the decoded input frames."""
    weights = save_gfpgan(_net(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4)).state_dict(),
                          tmp_path / "tiny_x2.pth")
    clip = _head(small, tmp_path / "six.mkv", 6)
    out, rep = tmp_path / "x15.mkv", tmp_path / "r.json"
    args = [str(clip), "-o", str(out), "--restorer", "identity", "--upscale", "1.5", "--bg-upsampler",
            "realesrgan-x2", "--bg-weights", str(weights), "--tile", "64", "--bg-batch", "2", "--codec", "ffv1",
            "--min-face", "100000", "--report", str(rep), "-q"]
    assert cli.run(args) == 0
    u = json.loads(rep.read_text())["upscale"]
    assert u["output_size"] == [288, 288] and u["network_scale"] == 2 and u["backend"] == "onnxruntime"
    assert u["then_resize"] == "area 384x384 -> 288x288" and u["reason"].startswith("auto: onnxruntime")
    assert u["tiles_exact"] is True and u["frames_per_call"] == 2
    stage = FrameUpscaler(UpscaleConfig(scale=1.5, upsampler="realesrgan-x2", weights=str(weights), tile=64),
                          width=192, height=192, model=ModelConfig(backend="torch"))
    a, b = _frames(clip), _frames(out)
    want = stage.upscale(a)
    assert len(b) == 6
    for x, y in zip(want, b):
        assert np.abs(x.rgb.astype(int) - y.rgb.astype(int)).max() <= 1   # torch vs onnxruntime rounding


def test_tensor_frames_follow_the_numpy_path(tmp_path) -> None:
    """The GPU path's arithmetic (uint8 tensors; run here on the CPU): within 1 level of the numpy path,
    for Lanczos and for a network (x4 then Lanczos up to x5), alpha planes included."""
    from fractions import Fraction

    from vidrestore.types import Frame

    rng = np.random.default_rng(0)
    rgb, alpha = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8), np.full((30, 44), 128, np.uint8)
    host = [Frame(index=0, pts=0, time_base=Fraction(1, 25), rgb=rgb, alpha=alpha)]
    dev = [Frame(index=0, pts=0, time_base=Fraction(1, 25), rgb=torch.from_numpy(rgb),
                 alpha=torch.from_numpy(alpha))]
    weights = save_gfpgan(_net(SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)).state_dict(),
                          tmp_path / "g.pth", key="params")
    for cfg, size in [(UpscaleConfig(scale=2), (88, 60)),
                      (UpscaleConfig(scale=5, upsampler="realesr-general-x4v3", weights=str(weights)), (220, 150))]:
        stage = FrameUpscaler(cfg, width=44, height=30, model=ModelConfig(backend="torch"))
        a, b = stage.upscale(host)[0], stage.upscale(dev)[0]
        assert a.rgb.shape == tuple(b.rgb.shape) == (size[1], size[0], 3) and isinstance(b.rgb, torch.Tensor)
        assert np.abs(a.rgb.astype(int) - b.rgb.numpy().astype(int)).max() <= 1
        assert a.alpha.shape == (size[1], size[0]) and int(b.alpha.float().mean().round()) == 128


def test_16_bit_plane_goes_through_the_network_at_its_precision(tmp_path) -> None:
    """A high-depth frame enters the network as rgb_hi / 65535 and comes out as both planes of the same
    float output: a 16-bit rgb_hi (not 8-bit values times 257) and the 8-bit rgb within 1 level of it."""
    from fractions import Fraction

    from vidrestore.types import Frame

    rng = np.random.default_rng(1)
    hi = rng.integers(0, 65536, (30, 44, 3), dtype=np.uint16)
    frame = Frame(index=0, pts=0, time_base=Fraction(1, 25), rgb=np.rint(hi / 257.0).astype(np.uint8), rgb_hi=hi)
    net = _net(SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4))
    weights = save_gfpgan(net.state_dict(), tmp_path / "g.pth", key="params")
    stage = FrameUpscaler(UpscaleConfig(scale=4, upsampler="realesr-general-x4v3", weights=str(weights), tile=0),
                          width=44, height=30, model=ModelConfig(backend="torch"))
    out = stage.upscale([frame])[0]
    assert out.rgb_hi.dtype == np.uint16 and out.rgb_hi.shape == out.rgb.shape == (120, 176, 3)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(hi.astype(np.float32) / 65535.0).permute(2, 0, 1)[None])
    ref16 = ref.clamp(0, 1).mul(65535.0).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(out.rgb_hi.astype(np.int64) - ref16).max() <= 64          # the 16-bit input went in
    assert np.any(out.rgb_hi % 257 != 0)                                    # not 8-bit values scaled up
    assert np.abs(out.rgb.astype(int) - out.rgb_hi / 257.0).max() <= 1.0


def test_bad_scale_and_offline_weights_are_one_line_errors(small, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "o.mkv"
    assert cli.run([str(small), "-o", str(out), "--upscale", "0.5", "--restorer", "identity"]) == 7
    assert "--upscale" in capsys.readouterr().err
    import socket
    from dataclasses import replace as dc_replace

    from vidrestore.models import weights
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/RealESRGAN_x4plus.pth"
    spec = dc_replace(weights.KNOWN_WEIGHTS["RealESRGAN_x4plus"], url=url)
    monkeypatch.setattr(weights, "KNOWN_WEIGHTS", {**weights.KNOWN_WEIGHTS, "RealESRGAN_x4plus": spec})
    monkeypatch.setenv("VIDRESTORE_HOME", str(tmp_path / "home"))
    assert cli.run([str(small), "-o", str(out), "--upscale", "2", "--bg-upsampler", "realesrgan-x4",
                    "--restorer", "identity"]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and url in err and "RealESRGAN_x4plus.pth" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".o")] == []
