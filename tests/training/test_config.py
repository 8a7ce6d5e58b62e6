"""training/config.py: TOML loading, dotted overrides with type conversion, validation, round trip."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.config import TrainConfig, apply_overrides, dump_toml, load_config, read_file, to_dict
from vidrestore.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_full_config_mirrors_the_authors_options():
    cfg = load_config(CONFIGS / "gfpgan_v1_512.toml")
    d, l, m = cfg.degradation, cfg.losses, cfg.model
    assert (d.blur_kernel_size, d.blur_sigma, d.downsample_range) == (41, (0.1, 10.0), (0.8, 8.0))
    assert (d.noise_range, d.jpeg_range, d.color_jitter_prob, d.color_jitter_shift, d.gray_prob) == (
        (0.0, 20.0), (60.0, 100.0), 0.3, 20.0, 0.01)
    assert l.perceptual_layers == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
    assert (l.l1_weight, l.pyramid_loss_iters, l.style_weight, l.gan_weight, l.r1_weight, l.d_reg_every,
            l.comp_style_weight, l.identity_weight) == (0.1, 50000, 50.0, 0.1, 10.0, 16, 200.0, 10.0)
    assert (cfg.optim.lr_g, cfg.schedule.total_iters, cfg.schedule.milestones) == (2e-3, 800000, (600000, 700000))
    assert m.out_size == 512 and m.freeze_decoder and cfg.data.eye_enlarge_ratio == 1.4
    assert cfg.ema.decay == pytest.approx(0.5 ** (32 / 10000))


def test_defaults_equal_the_full_config_except_paths():
    full, default = to_dict(load_config(CONFIGS / "gfpgan_v1_512.toml")), to_dict(TrainConfig())
    for section in ("degradation", "losses", "optim", "schedule"):
        assert full[section] == default[section], section
    assert default["ema"] == full["ema"] and default["ema"]["decay"] == pytest.approx(0.5 ** (32 / 10000))


def test_512_config_documents_the_authors_batch():
    cfg = load_config(CONFIGS / "gfpgan_v1_512.toml")
    text = (CONFIGS / "gfpgan_v1_512.toml").read_text()
    assert cfg.data.batch_size == 3 and cfg.train.accumulate == 1
    assert "--nproc_per_node 4" in text and "--set train.accumulate=4" in text
    one_gpu = load_config(CONFIGS / "gfpgan_v1_512.toml", overrides=["train.accumulate=4"])
    assert one_gpu.data.batch_size * one_gpu.train.accumulate == 12
    d = cfg.degradation
    assert (d.color_jitter_pt_prob, d.brightness, d.contrast, d.saturation, d.hue) == (
        0.3, (0.5, 1.5), (0.5, 1.5), (0.0, 1.5), (-0.1, 0.1))
    with pytest.raises(ConfigError, match="accumulate"):
        load_config(overrides=["train.accumulate=0"])


def test_overrides_convert_types():
    cfg = load_config(CONFIGS / "tiny_cpu.toml", overrides=[
        "losses.l1_weight=0.5", "data.batch_size=4", "degradation.blur_sigma=[0.2, 3]",
        "model.freeze_decoder=true", "model.decoder_path=/w/x.pth", "data.use_hflip=false",
        "losses.perceptual_layers.conv1_2=0.3", "model.arcface_path=none", "schedule.milestones=[5,6]",
        "logging.out_dir=some/dir"])
    assert cfg.losses.l1_weight == 0.5 and isinstance(cfg.data.batch_size, int) and cfg.data.batch_size == 4
    assert cfg.degradation.blur_sigma == (0.2, 3.0) and cfg.model.freeze_decoder is True
    assert cfg.model.decoder_path == "/w/x.pth" and cfg.data.use_hflip is False
    assert cfg.losses.perceptual_layers["conv1_2"] == 0.3 and cfg.model.arcface_path is None
    assert cfg.schedule.milestones == (5, 6) and cfg.logging.out_dir == "some/dir"


@pytest.mark.parametrize("override, words", [
    ("losses.l1_wieght=1", "unknown option"), ("data.batch_size=1.5", "integer"),
    ("data.batch_size=0", "batch_size"), ("degradation.blur_sigma=[1]", "needs 2"),
    ("precision=fp8", "precision"), ("losses.l1_weight=abc", "number"), ("nonsense", "section.option=value"),
    ("degradation.blur_kernel_size=40", "odd"), ("degradation.jpeg_range=[90, 60]", "low, high"),
])
def test_bad_values_raise_config_error(override, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        load_config(CONFIGS / "tiny_cpu.toml", overrides=[override])


def test_dump_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "gfpgan_v1_512.toml", overrides=["model.pretrained=/a b/c.pth"])
    p = tmp_path / "c.toml"
    p.write_text(dump_toml(cfg))
    assert load_config(p) == cfg
    assert load_config(p).model.vgg_path == cfg.model.vgg_path


def test_yaml_and_missing_file(tmp_path):
    from tests.support.require import require_module
    require_module("yaml")
    p = tmp_path / "c.yml"
    p.write_text("losses:\n  l1_weight: 0.25\nmodel:\n  out_size: 128\n")
    cfg = load_config(p)
    assert cfg.losses.l1_weight == 0.25 and cfg.model.out_size == 128
    with pytest.raises(ConfigError, match="not found"):
        read_file(tmp_path / "nope.toml")


def test_apply_overrides_does_not_mutate_input():
    data = {"losses": {"l1_weight": 1.0}}
    out = apply_overrides(data, ["losses.l1_weight=2"])
    assert data["losses"]["l1_weight"] == 1.0 and out["losses"]["l1_weight"] == 2
