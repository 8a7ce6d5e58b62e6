"""training/pretrained.py: StyleGAN2 (clean) decoder -> stylegan_decoder.*, freezing, fine-tune loading."""
from __future__ import annotations

import pytest
import torch

from training.pretrained import extract_decoder, load_generator, load_stylegan_decoder, main, read_state
from vidrestore.errors import CheckpointError
from vidrestore.models import GFPGAN


def _small(**kw):
    return GFPGAN(32, num_style_feat=16, channel_multiplier=1, narrow=0.0625, **kw)


def _decoder_file(tmp_path, gen, name="sg2.pth"):
    state = {k.removeprefix("stylegan_decoder."): v.clone() for k, v in gen.state_dict().items()
             if k.startswith("stylegan_decoder.")}
    torch.save({"params_ema": state}, tmp_path / name)
    return tmp_path / name, state


def test_decoder_lands_in_stylegan_decoder_and_freezes(tmp_path):
    torch.manual_seed(0)
    src = _small()
    path, state = _decoder_file(tmp_path, src)
    assert "style_mlp.1.weight" in state and "constant_input.weight" in state and "noises.noise0" in state
    torch.manual_seed(1)
    g = _small()
    before_unet = g.conv_body_first.weight.clone()
    n = load_stylegan_decoder(g, path, freeze=True)
    assert n == len(state)
    for k, v in state.items():
        assert torch.equal(g.state_dict()["stylegan_decoder." + k], v), k
    assert torch.equal(g.conv_body_first.weight, before_unet)               # the rest untouched
    assert not any(p.requires_grad for p in g.stylegan_decoder.parameters())
    assert all(p.requires_grad for n_, p in g.named_parameters() if not n_.startswith("stylegan_decoder."))
    g2 = _small()
    load_stylegan_decoder(g2, path, freeze=False)
    assert all(p.requires_grad for p in g2.parameters())


def test_decoder_mismatches_are_named(tmp_path):
    path, state = _decoder_file(tmp_path, _small())
    wide = GFPGAN(32, num_style_feat=16, channel_multiplier=1, narrow=0.125)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_stylegan_decoder(wide, path)
    del state["to_rgb1.bias"]
    torch.save({"params_ema": state}, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="missing .*to_rgb1.bias"):
        load_stylegan_decoder(_small(), tmp_path / "cut.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state-dict"):
        read_state(tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_state(tmp_path / "none.pth")
    # one reader with vidrestore.models.checkpoints: flat state dicts and its detailed diagnostics
    torch.save({"w": torch.ones(2)}, tmp_path / "flat.pth")
    assert torch.equal(read_state(tmp_path / "flat.pth")["w"], torch.ones(2))
    (tmp_path / "cut2.pth").write_bytes((tmp_path / "flat.pth").read_bytes()[:60])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state(tmp_path / "cut2.pth")


def test_fine_tune_from_a_release_file(tmp_path):
    torch.manual_seed(0)
    src = _small()
    torch.save({"params_ema": src.state_dict()}, tmp_path / "g.pth")
    g = _small()
    load_generator(g, tmp_path / "g.pth")
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), src.state_dict().values()))
    with pytest.raises(CheckpointError, match="does not match"):
        load_generator(GFPGAN(64, num_style_feat=16, channel_multiplier=1, narrow=0.0625), tmp_path / "g.pth")


def test_extract_decoder_from_a_release_file(tmp_path, capsys):
    torch.manual_seed(0)
    src = _small()
    torch.save({"params_ema": src.state_dict()}, tmp_path / "GFPGANvX.pth")
    assert main([str(tmp_path / "GFPGANvX.pth"), str(tmp_path / "dec.pth")]) == 0
    assert "decoder tensors" in capsys.readouterr().out
    g = _small()
    load_stylegan_decoder(g, tmp_path / "dec.pth")
    for k, v in src.state_dict().items():
        if k.startswith("stylegan_decoder."):
            assert torch.equal(g.state_dict()[k], v)
    torch.save({"params_ema": {"x": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no stylegan_decoder"):
        extract_decoder(tmp_path / "other.pth", tmp_path / "o.pth")
