"""Checkpoint I/O: official format round trips, architecture inference, and every failure mode."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.checkpoints import realistic_state_dict, write_checkpoint
from vidrestore.errors import CheckpointError
from vidrestore.models import GFPGAN, load_gfpgan, save_gfpgan
from vidrestore.models.checkpoints import infer_config


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 px model with 64-d styles: every code path of the 512 model, a 40 MB file."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pth", 32, num_style_feat=64, seed=3)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params_ema"]


def test_official_format(small_ckpt: Path) -> None:
    obj = torch.load(small_ckpt, weights_only=True)
    assert list(obj) == ["params_ema"]
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in obj["params_ema"].values())


def test_loading_skips_random_initialisation_and_keeps_every_value(small_ckpt: Path) -> None:
    """load_gfpgan builds the module without its random initialisers (the file overwrites every value):
    the global RNG is not advanced, every tensor equals the file's, the model gives the same output as
    one built the usual way, and modules built afterwards are random-initialised again."""
    rng = torch.random.get_rng_state()
    model = load_gfpgan(small_ckpt)
    assert torch.equal(torch.random.get_rng_state(), rng)
    state = _state(small_ckpt)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    usual = GFPGAN(**infer_config(state)).eval()
    usual.load_state_dict(state)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x)[0], usual(x)[0])
    after = torch.nn.Linear(64, 64)
    assert float(after.weight.detach().abs().max()) > 0 and not torch.equal(torch.random.get_rng_state(), rng)


def test_128px_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = GFPGAN(128, channel_multiplier=1, num_style_feat=128).eval()
    model.load_state_dict(realistic_state_dict(128, channel_multiplier=1, num_style_feat=128, seed=4))
    path = save_gfpgan(model, tmp_path / "gfpgan128.pth", key="params")
    assert list(torch.load(path, weights_only=True)) == ["params"]
    loaded = load_gfpgan(path)
    assert loaded.config == {"out_size": 128, "num_style_feat": 128, "channel_multiplier": 1,
                             "num_mlp": 8, "narrow": 1.0}
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    want = model.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    with torch.no_grad():
        out = loaded(torch.rand(1, 3, 128, 128) * 2 - 1)
    assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all()
    assert [p.name for p in tmp_path.iterdir()] == ["gfpgan128.pth"]   # no temp file left


def test_params_ema_preferred_over_params(tmp_path: Path, small_ckpt: Path) -> None:
    ema = _state(small_ckpt)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / "both.pth"
    torch.save({"params": other, "params_ema": ema}, path)
    loaded = load_gfpgan(path)
    assert torch.equal(loaded.final_linear.weight, ema["final_linear.weight"])


def test_load_to_dtype(small_ckpt: Path) -> None:
    model = load_gfpgan(small_ckpt, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in model.buffers()} == {torch.bfloat16}   # (CPU bf16 convs are too slow to run)


def test_released_architecture_inferred(gfpgan_checkpoint: Path) -> None:
    state = _state(gfpgan_checkpoint)
    assert len(state) == 285
    assert infer_config(state) == {"out_size": 512, "num_style_feat": 512, "channel_multiplier": 2,
                                   "num_mlp": 8}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found") as err:
        load_gfpgan(tmp_path / "absent.pth")
    assert err.value.path == str(tmp_path / "absent.pth")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_gfpgan(tmp_path / "empty.pth")


def test_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as err:
        load_gfpgan(path)
    assert str(path) in str(err.value)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"     # the weights-only unpickler raises IndexError on this
    path.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_gfpgan(path)


def test_jpeg(tmp_path: Path, testdata: Path) -> None:
    jpeg = testdata / "images" / "facexlib_test.jpg"
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as err:
        load_gfpgan(jpeg)
    assert err.value.path == str(jpeg)


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_truncated(tmp_path: Path, small_ckpt: Path, fraction: float) -> None:
    data = small_ckpt.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_gfpgan(path)
    assert err.value.path == str(path)


def test_pickle_is_refused(tmp_path: Path) -> None:
    """weights_only=True: a checkpoint holding arbitrary objects is not executed."""
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"conv_body_first.weight": torch.zeros(1)}, "x": Path("/")}, path)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        load_gfpgan(path)


def test_not_a_gfpgan_dict(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="no 'params_ema' or 'params'.*'model'"):
        load_gfpgan(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="holds a Tensor"):
        load_gfpgan(path)


def test_other_architecture(tmp_path: Path) -> None:
    """A state dict of another network: nothing to infer the architecture from."""
    path = save_gfpgan({"body.0.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "esrgan.pth")
    with pytest.raises(CheckpointError, match="cannot infer the architecture"):
        load_gfpgan(path)


def test_missing_and_unexpected_keys_are_counted(tmp_path: Path, small_ckpt: Path) -> None:
    state = _state(small_ckpt)
    del state["condition_shift.1.2.bias"]
    del state["stylegan_decoder.noises.noise3"]
    state["extra.weight"] = torch.zeros(1)
    path = save_gfpgan(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        load_gfpgan(path)
    msg = str(err.value)
    assert msg.startswith(str(path))
    assert "2 missing keys" in msg and "condition_shift.1.2.bias" in msg
    assert "1 unexpected keys" in msg and "extra.weight" in msg


def test_shape_mismatch_is_reported(tmp_path: Path, small_ckpt: Path) -> None:
    state = _state(small_ckpt)
    state["toRGB.0.weight"] = torch.zeros(3, 7, 1, 1)
    path = save_gfpgan(state, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError, match=r"1 shape mismatches .*toRGB\.0\.weight: file \(3, 7, 1, 1\)"):
        load_gfpgan(path)


def test_strict_architecture_check_unused_keys_required(tmp_path: Path, small_ckpt: Path) -> None:
    """The unused style MLP and U-Net RGB heads are part of the format: strict loading needs them."""
    state = {k: v for k, v in _state(small_ckpt).items() if not k.startswith("toRGB.")}
    path = save_gfpgan(state, tmp_path / "no_rgb.pth")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_gfpgan(path)


def test_save_is_atomic(tmp_path: Path, small_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.pth"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_gfpgan(_state(small_ckpt), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pth"]


def test_dynamic_batch_survives_export_tracing() -> None:
    """No op may bake the batch size in: a graph exported with a symbolic batch runs at any batch."""
    torch.manual_seed(0)
    model = GFPGAN(16, num_style_feat=32).eval()
    model.load_state_dict(realistic_state_dict(16, num_style_feat=32, seed=2))
    batch = torch.export.Dim("batch", min=1, max=64)
    x2 = torch.rand(2, 3, 16, 16) * 2 - 1
    exported = torch.export.export(model, (x2,), dynamic_shapes={"x": {0: batch}})
    convs = [n for n in exported.graph.nodes if "conv" in str(n.target)]
    assert convs and all(n.args[-1] == 1 for n in convs if len(n.args) == 9)   # groups == 1
    x5 = torch.rand(5, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        got = exported.module()(x5)
        want = torch.cat([model(x5[i:i + 1]) for i in range(5)])
    assert got.shape == (5, 3, 16, 16)
    assert (got - want).abs().max().item() < 1e-4
