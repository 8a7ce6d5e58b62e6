"""onnxruntime static INT8: selection rules, calibration on the first faces, the cache, quality, CLI."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.support.small_gfpgan import face_batch, psnr, small_checkpoint
from vidrestore.backends.int8 import (DEFAULT_SETTINGS, Int8Settings, calibration_crops, decoder_patterns,
                                      int8_path, quantize, read_sidecar)
from vidrestore.backends.onnxruntime import OnnxRuntimeBackend, is_quantized
from vidrestore.backends.select import BackendChoice, Capabilities, choose_backend, create_backend
from vidrestore.errors import BackendUnavailable, ConfigError

CPU_ONLY = Capabilities(cuda=False, ort_providers=("CPUExecutionProvider",))
GPU_BOX = Capabilities(cuda=True, gpu_name="NVIDIA H100", tensorrt=True, torch_tensorrt=True,
                       ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


# --- selection (pure) -----------------------------------------------------------------------------

@pytest.mark.parametrize("caps", [CPU_ONLY, GPU_BOX])
def test_auto_with_int8_picks_onnxruntime_on_the_cpu_and_says_why(caps):
    for device in ("auto", "cpu"):
        choice = choose_backend(requested="auto", device=device, precision="int8", probe=caps)
        assert (choice.name, choice.device, choice.precision) == ("onnxruntime", "cpu", "int8")
        assert "int8" in choice.reason and "calibrated" in choice.reason
    explicit = choose_backend(requested="onnxruntime", device="auto", precision="int8", probe=caps)
    assert (explicit.name, explicit.device) == ("onnxruntime", "cpu")


@pytest.mark.parametrize("caps", [CPU_ONLY, GPU_BOX])
def test_int8_is_never_chosen_unless_asked(caps):
    for precision in ("fp32", "fp16", "bf16"):
        for device in ("auto", "cpu"):
            choice = choose_backend(requested="auto", device=device, precision=precision, probe=caps)
            assert choice.precision == precision != "int8"


@pytest.mark.parametrize("backend", ["torch", "tensorrt", "torch-tensorrt"])
def test_int8_on_another_backend_is_refused_with_the_reason(backend):
    with pytest.raises(BackendUnavailable, match="int8.*onnxruntime"):
        choose_backend(requested=backend, device="auto", precision="int8", probe=GPU_BOX)


@pytest.mark.parametrize("caps", [CPU_ONLY, GPU_BOX])
def test_int8_on_cuda_is_a_config_error(caps):
    for backend in ("auto", "onnxruntime"):
        with pytest.raises(ConfigError, match="CPU only.*fp16"):
            choose_backend(requested=backend, device="cuda", precision="int8", probe=caps)


def test_int8_without_onnxruntime_cpu_is_unavailable():
    caps = Capabilities(cuda=False, ort_providers=())
    with pytest.raises(BackendUnavailable, match="onnxruntime is not installed"):
        choose_backend(requested="auto", device="auto", precision="int8", probe=caps)


# --- settings and calibration set (pure) ----------------------------------------------------------

def test_settings_key_is_stable_and_changes_with_every_field():
    assert DEFAULT_SETTINGS.key() == Int8Settings().key()
    keys = {DEFAULT_SETTINGS.key(), replace(DEFAULT_SETTINGS, reduce_range=not DEFAULT_SETTINGS.reduce_range).key(),
            replace(DEFAULT_SETTINGS, quant_format="qoperator").key(),
            replace(DEFAULT_SETTINGS, calibration_faces=3).key(),
            replace(DEFAULT_SETTINGS, exclude_patterns=("toRGB",)).key(),
            replace(DEFAULT_SETTINGS, fp32_decoder_below=32).key(),
            replace(DEFAULT_SETTINGS, weight_type="uint8").key()}
    assert len(keys) == 7
    with pytest.raises(ConfigError):
        Int8Settings(fp32_decoder_below=-1)
    with pytest.raises(ConfigError):
        Int8Settings(calibration_faces=0)
    with pytest.raises(dataclasses_frozen_error()):
        DEFAULT_SETTINGS.per_channel = False  # type: ignore[misc]


def test_default_is_u8s8_with_the_low_resolution_decoder_in_fp32():
    assert (DEFAULT_SETTINGS.activation_type, DEFAULT_SETTINGS.weight_type) == ("uint8", "int8")
    assert DEFAULT_SETTINGS.fp32_decoder_below == 64


def test_decoder_patterns_name_the_layers_below_a_resolution():
    assert decoder_patterns(0) == decoder_patterns(4) == ()
    assert decoder_patterns(8) == ("stylegan_decoder/style_conv1/", "stylegan_decoder/to_rgb1/")
    below64 = decoder_patterns(64)
    assert len(below64) == 2 + 3 * 3            # 4 px, then 8, 16, 32 px: two convs and a ToRGB each
    assert "stylegan_decoder/style_convs.5/" in below64 and "stylegan_decoder/to_rgbs.2/" in below64
    assert "stylegan_decoder/style_convs.6/" not in below64 and "stylegan_decoder/to_rgbs.3/" not in below64
    # the trailing slash: style_convs.1 must not pull in style_convs.10 .. 13
    name = "/model/stylegan_decoder/style_convs.10/modulated_conv/Conv"
    assert not any(p in name for p in decoder_patterns(16))
    assert any(p in name for p in decoder_patterns(512))


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_calibration_crops_take_the_first_faces_and_top_up_with_mirrored_copies():
    batch = np.random.default_rng(0).standard_normal((3, 3, 4, 4)).astype(np.float32)
    crops, flipped = calibration_crops(batch, 8)          # 3 faces + 3 mirrored (at most doubles)
    assert crops.shape == (6, 3, 4, 4) and flipped == 3
    np.testing.assert_array_equal(crops[:3], batch)
    np.testing.assert_array_equal(crops[3:], batch[:, :, :, ::-1])
    crops, flipped = calibration_crops(batch, 4)
    assert crops.shape[0] == 4 and flipped == 1
    crops, flipped = calibration_crops(batch, 2)
    assert crops.shape[0] == 2 and flipped == 0
    with pytest.raises(ValueError):
        calibration_crops(batch[:0], 8)


# --- a real small GFP-GAN through onnxruntime INT8 ------------------------------------------------

@pytest.fixture
def small_fp32(small_gfpgan_64, small_gfpgan_onnx):
    return small_gfpgan_64, small_gfpgan_onnx       # the INT8 tests cache into tmp_path, not beside it


def test_first_call_calibrates_caches_and_a_second_backend_reuses_it(small_fp32, tmp_path, testdata):
    _, fp32_path = small_fp32
    x = face_batch(testdata, 64, 4)
    ref = OnnxRuntimeBackend(fp32_path, threads=1).restore(x)
    settings = replace(DEFAULT_SETTINGS, calibration_faces=4)

    first = OnnxRuntimeBackend(fp32_path, precision="int8", threads=1, int8=settings, cache_dir=tmp_path,
                               calibration_source="first faces of clip.mp4")
    assert first.session is None and first.precision == "int8"       # nothing happens before faces come
    out = first.restore(x[:2])                                       # 2 faces + 2 mirrored copies
    cached = int8_path(fp32_path, settings, cache_dir=tmp_path)
    assert first.calibrated_now and first.first_call_s > 0 and first.session_path == cached
    assert cached.is_file() and is_quantized(cached) and not is_quantized(fp32_path)
    record = read_sidecar(cached)
    assert record["source"] == "first faces of clip.mp4" and record["faces"] == 4
    assert record["flipped_copies"] == 2 and record["settings"]["calibration_faces"] == 4
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert psnr(out, ref[:2]) >= 32.0                                 # measured 39.3 dB
    assert psnr(first.restore(x[2:]), ref[2:]) >= 32.0                # faces not calibrated on
    assert float((out - ref[:2]).abs().max()) > 0                     # it really is quantized

    mtime = cached.stat().st_mtime_ns
    second = OnnxRuntimeBackend(fp32_path, precision="int8", threads=1, int8=settings, cache_dir=tmp_path,
                                calibration_source="another video")
    again = second.restore(x[:2])
    assert not second.calibrated_now and cached.stat().st_mtime_ns == mtime
    assert read_sidecar(cached)["source"] == "first faces of clip.mp4"  # still the first video's record
    torch.testing.assert_close(again, out, rtol=0, atol=1e-5)

    other = OnnxRuntimeBackend(fp32_path, precision="int8", threads=1, cache_dir=tmp_path,
                               int8=replace(settings, reduce_range=True))
    other.restore(x[:1])
    assert other.calibrated_now and other.session_path != cached       # settings are part of the key


def _int8_convs(path) -> set[str]:
    """Names of the Conv nodes of a QDQ file whose weight comes from a DequantizeLinear."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: n for n in graph.node for out in n.output}
    return {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in producer
            and producer[n.input[1]].op_type == "DequantizeLinear"}


def test_low_resolution_decoder_convs_stay_fp32_and_the_rest_is_int8(small_fp32, tmp_path, testdata):
    import onnx

    _, fp32_path = small_fp32
    convs = {n.name for n in onnx.load(str(fp32_path), load_external_data=False).graph.node
             if n.op_type == "Conv"}
    crops, _ = calibration_crops(face_batch(testdata, 64, 1).numpy(), 2)
    quantized = _int8_convs(quantize(fp32_path, tmp_path / "d.onnx", crops, DEFAULT_SETTINGS))
    low = {c for c in convs if any(p in c for p in decoder_patterns(64))}
    assert len(low) == 11 and not low & quantized                      # 4..32 px: FP32
    assert quantized == convs - low                                    # everything else: INT8
    everything = _int8_convs(quantize(fp32_path, tmp_path / "a.onnx", crops,
                                      replace(DEFAULT_SETTINGS, fp32_decoder_below=0)))
    assert everything == convs


def test_an_already_quantized_file_opens_directly(small_fp32, tmp_path, testdata):
    _, fp32_path = small_fp32
    x = face_batch(testdata, 64, 2)
    OnnxRuntimeBackend(fp32_path, precision="int8", threads=1, cache_dir=tmp_path).restore(x)
    (quantized,) = tmp_path.glob("*-int8-*.onnx")
    backend = OnnxRuntimeBackend(quantized, precision="int8", threads=1)
    assert backend.session is not None
    assert backend.restore(x).shape == (2, 3, 64, 64) and not backend.calibrated_now


def test_int8_on_cuda_device_is_refused_by_the_backend(small_fp32):
    _, fp32_path = small_fp32
    with pytest.raises(ConfigError, match="CPU only"):
        OnnxRuntimeBackend(fp32_path, device="cuda", precision="int8")


def test_create_backend_int8_from_a_checkpoint_caches_beside_the_export(tmp_path):
    ckpt = small_checkpoint(tmp_path / "small.pth")
    choice = BackendChoice("onnxruntime", "cpu", "int8", "test")
    backend = create_backend(choice, ckpt, max_batch=2, threads=1, cache_dir=tmp_path / "cache")
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    out = backend.restore(x)
    assert out.shape == (1, 3, 8, 8) and torch.isfinite(out).all()
    (cached,) = (tmp_path / "cache" / "onnx").glob("*-int8-*.onnx")
    assert read_sidecar(cached)["faces"] == 2                          # 1 face + its mirror


# --- CLI --------------------------------------------------------------------------------------------

def test_cli_accepts_precision_int8():
    from vidrestore.cli import _config_from, _restore_parser

    args = _restore_parser().parse_args(["in.mp4", "-o", "out.mp4", "--precision", "int8"])
    assert _config_from(args).model.precision == "int8"


def test_cli_int8_on_cuda_fails_with_a_clear_message(testdata, tmp_path, capsys):
    from vidrestore.cli import run

    ckpt = small_checkpoint(tmp_path / "small.pth")
    code = run([str(testdata / "clips/lp_d10_talking_512_audio.mp4"), "-o", str(tmp_path / "o.mp4"),
                "--weights", str(ckpt), "--device", "cuda", "--precision", "int8"])
    err = capsys.readouterr().err
    assert code == ConfigError.exit_code and code != 0
    assert "int8" in err and "CPU only" in err
    assert not (tmp_path / "o.mp4").exists()


# --- the criterion at 512 px on real faces --------------------------------------------------

@pytest.mark.slow
def test_int8_at_512_keeps_35_db_on_real_faces_not_used_for_calibration(gfpgan_checkpoint, testdata, tmp_path):
    from benchmarks.int8_quality import clip_crops
    from tests.support.checkpoints import load_face, psnr as psnr512

    d10 = clip_crops(testdata, "clips/lp_d10_talking_512_audio.mp4", (0, 90))
    s18 = clip_crops(testdata, "clips/lp_s18_interview_1280x720_audio.mp4", (0, 90))
    first = torch.from_numpy(np.stack([d10[0], s18[0]]))              # the "first faces of the video"
    held = {"Adele": load_face(testdata / "images/gfpgan_cropped_Adele_512.png"),
            "Julia_Roberts": load_face(testdata / "images/gfpgan_cropped_Julia_Roberts_512.png"),
            "lp_d10_f90": torch.from_numpy(d10[1][None]), "lp_s18_f90": torch.from_numpy(s18[1][None])}
    fp32 = OnnxRuntimeBackend.from_weights(gfpgan_checkpoint, threads=2, cache_dir=tmp_path)
    ref = {k: fp32.restore(v) for k, v in held.items()}
    del fp32
    int8 = OnnxRuntimeBackend.from_weights(gfpgan_checkpoint, precision="int8", threads=2, cache_dir=tmp_path)
    int8.restore(first)
    assert int8.calibrated_now
    scores = {k: psnr512(int8.restore(v), ref[k]) for k, v in held.items()}
    assert min(scores.values()) >= 35.0, scores                     # the bar
    assert min(scores.values()) >= 37.0, scores                     # measured 38.0: catch regressions
