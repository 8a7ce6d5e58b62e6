"""training/export.py: the EMA generator in release format loads with load_gfpgan and gives the same output."""
from __future__ import annotations

import pytest
import torch

from training.config import load_config
from training.export import export_checkpoint, export_generator, main
from training.loop import build_generator
from vidrestore.errors import CheckpointError
from vidrestore.models import GFPGAN, load_gfpgan


def _randomise(g):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return g


def test_round_trip_through_load_gfpgan(tmp_path):
    # full-width 16 px: the smallest generator whose architecture load_gfpgan can infer from the file
    cfg = load_config(overrides=["model.out_size=16", "model.num_style_feat=64", "model.channel_multiplier=1"])
    g = _randomise(build_generator(cfg)).eval()
    path = export_generator(g, tmp_path / "net_g.pth")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["params_ema"] and set(raw["params_ema"]) == set(g.state_dict())
    loaded = load_gfpgan(path)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))


def test_narrow_models_through_load_gfpgan(tmp_path):
    """The tiny training configuration's export loads unchanged (narrow inferred from the shapes)."""
    g = _randomise(GFPGAN(64, num_style_feat=32, channel_multiplier=1, narrow=0.0625)).eval()
    loaded = load_gfpgan(export_generator(g, tmp_path / "n.pth"))
    assert loaded.config["narrow"] == 0.0625 and loaded.config["channel_multiplier"] == 1
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))


def test_export_from_training_state(tmp_path, capsys):
    torch.manual_seed(0)
    g = GFPGAN(32, num_style_feat=16, channel_multiplier=1, narrow=0.0625)
    g_ema = _randomise(GFPGAN(32, num_style_feat=16, channel_multiplier=1, narrow=0.0625))
    torch.save({"g": g.state_dict(), "g_ema": g_ema.state_dict()}, tmp_path / "state.pt")
    assert main([str(tmp_path / "state.pt"), str(tmp_path / "ema.pth")]) == 0
    assert main([str(tmp_path / "state.pt"), str(tmp_path / "raw.pth"), "--raw"]) == 0
    assert "wrote" in capsys.readouterr().out
    for name, ref in (("ema.pth", g_ema), ("raw.pth", g)):
        st = torch.load(tmp_path / name, weights_only=True)["params_ema"]
        assert all(torch.equal(st[k], v) for k, v in ref.state_dict().items())
    with pytest.raises(CheckpointError, match="not found"):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "x.pth")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="g_ema"):
        export_checkpoint(tmp_path / "other.pt", tmp_path / "x.pth")
