"""Tiling: equal windows, batched across frames; seamless (tiled == untiled) when the overlap covers
the network's receptive radius."""
from __future__ import annotations

import pytest
import torch

from vidrestore.models.realesrgan import RRDBNet, SRVGGNetCompact
from vidrestore.upscale.tiling import plan_axis, upscale_tiled

TOL = 1e-5     # stated tolerance: max abs difference on [0, 1] images


def _net(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in ** -0.5 if p.ndim > 1 else 0.05))
    return model.eval()


def _run(net, x, **kw):
    with torch.inference_mode():
        return upscale_tiled(x, net, **kw)


def test_plan_gives_equal_windows_covering_every_pixel() -> None:
    for length, tile, pad in [(100, 32, 8), (97, 30, 10), (64, 64, 4), (50, 16, 0)]:
        size, windows = plan_axis(length, tile=tile, pad=pad)
        covered = []
        for w in windows:
            assert 0 <= w.start and w.start + size <= length
            assert w.start <= w.cell and w.cell_end <= w.start + size
            # the cell has `pad` pixels of context inside the window unless it touches the frame border
            assert w.cell - w.start >= pad or w.start == 0
            assert w.start + size - w.cell_end >= pad or w.start + size == length
            covered += range(w.cell, w.cell_end)
        assert covered == list(range(length))


@pytest.mark.parametrize("kind", ["srvgg-x4-32conv", "rrdb-x4", "rrdb-x2"])
def test_tiled_equals_untiled_when_pad_covers_the_receptive_field(kind) -> None:
    """Narrow networks with the released depth where it sets the radius (SRVGGNetCompact: 32 convs,
    radius 34) and one RRDB block (radius 20 at x4, 40 at x2): the width does not change the geometry."""
    g = torch.Generator().manual_seed(0)
    if kind == "srvgg-x4-32conv":
        net, align, tile = _net(SRVGGNetCompact(num_feat=8, num_conv=32, upscale=4), 1), 1, 72
        x = torch.rand(1, 3, 141, 143, generator=g)
    elif kind == "rrdb-x4":
        net, align, tile = _net(RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4), 2), 1, 46
        x = torch.rand(1, 3, 87, 91, generator=g)
    else:                                 # pixel-unshuffle: odd frame sizes are reflect-padded
        net, align, tile = _net(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4), 3), 2, 86
        x = torch.rand(1, 3, 167, 171, generator=g)
    s, pad = net.scale, net.receptive_radius
    for side in x.shape[2:]:              # really tiled: several windows along both axes
        assert len(plan_axis(side + side % align, tile=tile, pad=pad)[1]) >= 2
    whole = _run(net, x, scale=s, align=align)
    tiled = _run(net, x, scale=s, tile=tile, pad=pad, align=align, max_batch=8)
    assert tiled.shape == whole.shape == (1, 3, x.shape[2] * s, x.shape[3] * s)
    assert (tiled - whole).abs().max().item() <= TOL
    # negative control: an overlap below the receptive radius is visibly not seamless
    short = _run(net, x, scale=s, tile=tile, pad=align, align=align, max_batch=8)
    assert (short - whole).abs().max().item() > 100 * TOL


def test_windows_of_several_frames_share_a_batch() -> None:
    net = _net(SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4), 4)
    calls = []

    def spy(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return net(t)

    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    out = _run(spy, x, scale=4, tile=16, pad=6, max_batch=8)
    assert calls == [8, 8, 8, 3]                  # 3 frames x 9 windows, 8 per call
    alone = torch.cat([_run(net, x[i:i + 1], scale=4, tile=16, pad=6) for i in range(3)])
    assert (out - alone).abs().max().item() <= TOL
