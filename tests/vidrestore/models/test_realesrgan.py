"""Real-ESRGAN networks against the authors' architecture files (random weights, their file format)."""
from __future__ import annotations

import pytest
import torch

from tests.support.realesrgan_reference import load_reference
from vidrestore.errors import CheckpointError
from vidrestore.models.checkpoints import save_gfpgan
from vidrestore.models.realesrgan import (RRDBNet, SRVGGNetCompact, infer_upsampler, load_upsampler)


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1     # ~unit gain per conv: outputs stay O(1)
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in ** -0.5 if p.ndim > 1 else 0.05))
    return model.eval()


@pytest.mark.parametrize("scale,num_block,size,key", [(4, 2, (20, 28), "params_ema"),
                                                    (2, 1, (24, 18), "params_ema"),
                                                    (1, 1, (16, 20), "params")])
def test_rrdbnet_equals_basicsr(tmp_path, scale, num_block, size, key) -> None:
    ref = load_reference()
    theirs = _randomise(ref.RRDBNet(3, 3, scale=scale, num_feat=16, num_block=num_block, num_grow_ch=8),
                        seed=scale)
    path = save_gfpgan(theirs.state_dict(), tmp_path / "esrgan.pth", key=key)
    ours = load_upsampler(path)
    assert isinstance(ours, RRDBNet) and ours.scale == scale and len(ours.body) == num_block
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = theirs(x), ours(x)
    assert got.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())
    # each batch row alone gives the same result
    with torch.no_grad():
        assert (ours(x[1:]) - got[1:]).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("num_conv,act", [(3, "prelu"), (32, "prelu")])
def test_srvgg_equals_realesrgan(tmp_path, num_conv, act) -> None:
    ref = load_reference()
    theirs = _randomise(ref.SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=16 if num_conv < 32 else 64,
                                            num_conv=num_conv, upscale=4, act_type=act), seed=num_conv)
    path = save_gfpgan(theirs.state_dict(), tmp_path / "general.pth", key="params")  # as the release
    ours = load_upsampler(path)
    assert isinstance(ours, SRVGGNetCompact) and ours.num_conv == num_conv and ours.scale == 4
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = theirs(x), ours(x)
    assert got.shape == (1, 3, 48, 40)
    assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())


def _meta(cls, *args, **kwargs) -> dict:
    with torch.device("meta"):                      # shapes only: no 16 M-parameter init
        return cls(*args, **kwargs).state_dict()


def test_release_layouts_are_inferred() -> None:
    """The released configurations: x4plus/x2plus (64 features, 23 blocks), general-x4v3 (32 convs).
    Key names and shapes equal the authors' (checked at 2 blocks: their init of 23 takes 9 s)."""
    ref = load_reference()
    for scale in (2, 4):
        theirs = _meta(ref.RRDBNet, 3, 3, scale=scale, num_feat=64, num_block=2, num_grow_ch=32)
        ours = _meta(RRDBNet, 3, 3, scale=scale, num_feat=64, num_block=2, num_grow_ch=32)
        assert {k: v.shape for k, v in theirs.items()} == {k: v.shape for k, v in ours.items()}
    x4 = infer_upsampler(_meta(RRDBNet, scale=4, num_feat=64, num_block=23, num_grow_ch=32))
    x2 = infer_upsampler(_meta(RRDBNet, scale=2, num_feat=64, num_block=23, num_grow_ch=32))
    v3 = infer_upsampler(ref.SRVGGNetCompact(3, 3, 64, 32, 4, "prelu").state_dict())
    assert (x4.arch, x4.scale, x4.options["num_block"], x4.options["num_grow_ch"]) == ("rrdbnet", 4, 23, 32)
    assert (x2.arch, x2.scale, x2.options["num_block"]) == ("rrdbnet", 2, 23)
    assert (v3.arch, v3.scale, v3.options["num_conv"], v3.options["num_feat"]) == ("srvgg", 4, 32, 64)
    assert sum(p.numel() for p in v3.build().parameters()) == 1_213_296   # as the release file holds


def test_pixel_unshuffle_order_matters(tmp_path) -> None:
    """Negative control: a transposed 2x2 unshuffle order breaks parity, so the test above can fail."""
    ref = load_reference()
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    assert torch.equal(ref.pixel_unshuffle(x, 2), torch.nn.functional.pixel_unshuffle(x, 2))
    assert not torch.equal(ref.pixel_unshuffle(x.transpose(2, 3), 2).transpose(2, 3),
                           torch.nn.functional.pixel_unshuffle(x, 2))


def test_wrong_files_name_the_problem(tmp_path, gfpgan_checkpoint) -> None:
    with pytest.raises(CheckpointError, match="Real-ESRGAN"):
        load_upsampler(gfpgan_checkpoint)
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_upsampler(bad)
    assert str(bad) in str(err.value)
    net = RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("conv_hr")}
    with pytest.raises(CheckpointError, match="missing keys"):
        load_upsampler(save_gfpgan(state, tmp_path / "cut.pth"))
