"""Run an upsampling network on whole frames through equal, overlapping tiles, batched across frames.

Plan (per axis): output cells of ``tile`` input pixels start at 0, tile, 2*tile, ...; each cell is
computed from a *window* of ``tile + 2 * pad`` pixels, shifted inwards at the frame border so that
every window has the same size (a frame smaller than the window is one window of the frame's size).
Only the cell's part of each window's output is kept, so a window's own borders (zero padding of the
convolutions) never reach the result. When ``pad`` >= the network's receptive radius, every kept
output pixel sees exactly the input it sees untiled: the tiled result equals the untiled one up to
float rounding (tests/vidrestore/upscale/test_tiling.py: <= 1e-5 on [0, 1] values). With a smaller
pad (the 23-block RRDBNets, whose radius is ~350 input pixels) it is an approximation, as in the
authors' own tiling (``tile_pad=10`` in RealESRGANer).

Because all windows have one shape, the windows of several frames go to the network in one batch.
Networks that pixel-unshuffle (RRDBNet x2: 2x2 blocks) need window positions on multiples of
``align``: frames are reflect-padded up to a multiple of ``align`` first (as RealESRGANer does) and
the output cropped back.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Network = Callable[[torch.Tensor], torch.Tensor]   # (N, 3, h, w) -> (N, 3, s*h, s*w)


@dataclass(frozen=True)
class Window:
    start: int          # first input pixel of the window
    cell: int           # first input pixel of the cell this window produces
    cell_end: int       # one past its last


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def plan_axis(length: int, *, tile: int, pad: int) -> tuple[int, list[Window]]:
    """(window size, windows) along one axis of ``length`` pixels."""
    size = tile + 2 * pad
    if tile <= 0 or size >= length:
        return length, [Window(0, 0, length)]
    out = []
    for cell in range(0, length, tile):
        start = min(max(cell - pad, 0), length - size)
        out.append(Window(start, cell, min(cell + tile, length)))
    return size, out


def upscale_tiled(frames: torch.Tensor, net: Network, *, scale: int, tile: int = 0, pad: int = 0,
                  align: int = 1, max_batch: int = 16) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] -> (N, 3, scale*H, scale*W), network output not clamped.

    ``tile`` 0 runs whole frames. ``tile`` and ``pad`` are rounded up to multiples of ``align``.
    Windows of all N frames are batched, ``max_batch`` per network call.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) frames, got {tuple(frames.shape)}")
    n, _, h, w = frames.shape
    tile, pad = _round_up(max(tile, 0), align), _round_up(max(pad, 0), align)
    ph, pw = _round_up(h, align) - h, _round_up(w, align) - w
    x = F.pad(frames, (0, pw, 0, ph), mode="reflect") if (ph or pw) else frames
    H, W = x.shape[-2:]
    wh, rows = plan_axis(H, tile=tile, pad=pad)
    ww, cols = plan_axis(W, tile=tile, pad=pad)
    windows = [(r, c) for r in rows for c in cols]
    crops = torch.stack([x[:, :, r.start:r.start + wh, c.start:c.start + ww] for r, c in windows], 1)
    crops = crops.reshape(n * len(windows), 3, wh, ww)           # frame-major: all windows of frame 0 first
    outs = [net(chunk) for chunk in crops.split(max(1, max_batch))]
    y = torch.cat(outs) if len(outs) > 1 else outs[0]
    if y.shape[-2:] != (wh * scale, ww * scale):
        raise ValueError(f"network returned {tuple(y.shape)} for {wh}x{ww} windows at scale {scale}")
    y = y.reshape(n, len(windows), 3, wh * scale, ww * scale)
    out = y.new_empty(n, 3, H * scale, W * scale)
    s = scale
    for k, (r, c) in enumerate(windows):
        r0, r1 = (r.cell - r.start) * s, (r.cell_end - r.start) * s
        c0, c1 = (c.cell - c.start) * s, (c.cell_end - c.start) * s
        out[:, :, r.cell * s:r.cell_end * s, c.cell * s:c.cell_end * s] = y[:, k, :, r0:r1, c0:c1]
    return out[:, :, :h * s, :w * s] if (ph or pw) else out
