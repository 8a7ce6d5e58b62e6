"""The upscale stage: whole frames (numpy on the CPU, uint8 tensors on a GPU) to the output size.

``lanczos``/``none``: one resize (Lanczos-4 / bilinear, :mod:`vidrestore.upscale.resize`). A network
(``realesrgan-x2``, ``realesrgan-x4``, ``realesr-general-x4v3``): frames of one call are batched,
tiled (:mod:`vidrestore.upscale.tiling`) and run at the network's own factor; when that is not the
requested size (``--upscale 1.5`` or ``3`` with a x2/x4 network, or rounding) the network's output is
resized once more (Lanczos-4 up, area down). A network smaller than ``S`` (x2 for ``--upscale 4``) runs
once and Lanczos does the rest. The alpha plane, when there is one, is resized with Lanczos; a high-depth frame's 16-bit plane
(``rgb_hi``) is resized the same way, or goes through the network at its precision, so 10/12-bit
sources keep their depth through ``--upscale``.

Faces are pasted afterwards straight into the upscaled frame (the pipeline composes each frame->crop
matrix with the scale, :func:`vidrestore.upscale.resize.upscaled_matrices`), so a restored face is
resampled once.
"""
from __future__ import annotations

import queue
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from ..config import ModelConfig, UpscaleConfig
from ..stages import END, RunControl, StageClock, get, put, start_worker
from ..types import Frame, VideoInfo
from .resize import output_size, resize_rgb, upscaled_matrices  # noqa: F401 - re-exported for the pipeline

AUTO_TILE = 384          # input pixels per tile side for --tile 0
MAX_AUTO_PAD = 40        # overlap cap: >= SRVGGNetCompact's radius (34), so its tiles are exact


@dataclass(frozen=True)
class UpscalePlan:
    """What the stage does; goes into the run report."""

    scale: float
    input_size: tuple[int, int]       # upright (width, height)
    output_size: tuple[int, int]
    size_rule: str                    # how output_size was rounded
    method: str                       # lanczos | none | realesrgan-x2 | realesrgan-x4 | realesr-general-x4v3
    network_scale: int | None = None
    then_resize: str | None = None    # e.g. "lanczos 1536x1536 -> 1152x1152"
    backend: str | None = None
    device: str | None = None
    precision: str | None = None
    reason: str | None = None         # why this backend
    tile: int | None = None
    tile_pad: int | None = None
    tiles_exact: bool | None = None   # pad >= receptive radius: tiled == untiled up to float rounding
    frames_per_call: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


def output_info(info: VideoInfo, size: tuple[int, int]) -> VideoInfo:
    """``info`` with the upright output size (stored size swapped back for ±90 degree rotations)."""
    w, h = size
    sw, sh = (h, w) if int(info.rotation) % 180 else (w, h)
    return replace(info, width=w, height=h, stored_width=sw, stored_height=sh)


class FrameUpscaler:
    """``upscale(frames)`` -> the same frames at ``plan.output_size``. Build once per video."""

    def __init__(self, config: UpscaleConfig, *, width: int, height: int, device: str = "cpu",
                 model: ModelConfig = ModelConfig(), probe=None) -> None:
        self.config = config
        self.device = device
        size = output_size(width, height, config.scale)
        rule = ("exactly S x input" if config.scale == int(config.scale)
                else "S x input rounded to even sides (4:2:0 chroma)")
        self.net = None
        plan = UpscalePlan(scale=config.scale, input_size=(width, height), output_size=size, size_rule=rule,
                           method=config.method)
        if config.method not in ("lanczos", "none"):
            plan = self._load_network(plan, model, probe)
        self.plan = plan

    def _load_network(self, plan: UpscalePlan, model: ModelConfig, probe) -> UpscalePlan:
        from ..models.realesrgan import UPSAMPLER_RELEASES
        from ..models.weights import resolve_weights
        from .backends import create_upsampler

        release, _ = UPSAMPLER_RELEASES[plan.method]
        weights = resolve_weights(self.config.weights or release)
        gpu = self.device.startswith("cuda")
        tile = AUTO_TILE if self.config.tile == 0 else max(self.config.tile, 0)
        self.frames_per_call = self.config.batch or (4 if gpu else 1)
        # windows per call: the frames of one call, up to 8 windows (16 on a GPU)
        self.max_windows = 16 if gpu else 8
        # the pad is only known once the network is loaded; the TensorRT profile needs the window
        pad_guess = self.config.tile_pad if self.config.tile_pad is not None else MAX_AUTO_PAD
        net, info, reason = create_upsampler(weights, model=model, device=self.device,
                                             window=_round(tile + 2 * pad_guess, 4), max_batch=self.max_windows,
                                             probe=probe)
        pad = self.config.tile_pad if self.config.tile_pad is not None else min(info.receptive_radius,
                                                                                 MAX_AUTO_PAD)
        self.net, self.info, self.tile, self.pad = net, info, tile, pad
        w, h = plan.input_size
        native = (w * info.scale, h * info.scale)
        then = None if native == plan.output_size else (
            f"{'lanczos' if plan.output_size[0] >= native[0] else 'area'} {native[0]}x{native[1]} -> "
            f"{plan.output_size[0]}x{plan.output_size[1]}")
        return replace(plan, network_scale=info.scale, then_resize=then, backend=net.name, device=net.device,
                       precision=net.precision, reason=reason, tile=tile, tile_pad=_round(pad, info.align),
                       tiles_exact=tile == 0 or _round(pad, info.align) >= info.receptive_radius,
                       frames_per_call=self.frames_per_call)

    @classmethod
    def for_video(cls, config, info: VideoInfo, *, device: str) -> FrameUpscaler | None:
        """The stage for a RestoreConfig and the input's VideoInfo; None when nothing is to upscale."""
        if not config.upscale.active:
            return None
        return cls(config.upscale, width=info.width, height=info.height, device=device, model=config.model)

    def start(self, q_in: queue.Queue, clock: StageClock, ctl: RunControl, threads: list) -> queue.Queue:
        """Start :func:`upscale_loop` in a worker thread (appended to ``threads``); returns its output queue."""
        q_out: queue.Queue = queue.Queue(q_in.maxsize)
        threads.append(start_worker(lambda: upscale_loop(q_in, q_out, self, clock, ctl), ctl))
        return q_out

    def output_info(self, info: VideoInfo) -> VideoInfo:
        return output_info(info, self.plan.output_size)

    @property
    def batch(self) -> int:
        return self.frames_per_call if self.net is not None else 1

    def upscale(self, frames: list[Frame]) -> list[Frame]:
        if not frames:
            return []
        size = self.plan.output_size
        if self.net is None:
            method = "lanczos" if self.plan.method == "lanczos" else "bilinear"
            rgbs = [resize_rgb(f.rgb, size, method=method) for f in frames]
            his = [None if f.rgb_hi is None else resize_rgb(f.rgb_hi, size, method=method) for f in frames]
        else:
            rgbs, his = self._network(frames)
        return [replace(f, rgb=rgb, rgb_hi=hi, alpha=None if f.alpha is None else resize_rgb(f.alpha, size))
                for f, rgb, hi in zip(frames, rgbs, his)]

    def _network(self, frames: list[Frame]) -> tuple[list, list]:
        """The network on a batch of frames. A high-depth input (``rgb_hi``, 16-bit) goes in at its
        precision and comes out twice: 8-bit ``rgb`` and a 16-bit ``rgb_hi`` (host numpy, where the
        16-bit paste and the encoder read it) from the same float output."""
        from .tiling import upscale_tiled

        on_host = not isinstance(frames[0].rgb, torch.Tensor)
        deep = all(f.rgb_hi is not None for f in frames)
        top = 65535.0 if deep and frames[0].rgb_hi.dtype == np.uint16 else 1.0   # float planes: 0..1
        if deep:
            x = torch.stack([torch.from_numpy(f.rgb_hi.astype(np.float32)) for f in frames])
            x = x.to(self.net.device).div_(top)
        else:
            x = torch.stack([torch.from_numpy(np.ascontiguousarray(f.rgb)) if on_host else f.rgb for f in frames])
            x = x.to(self.net.device).float().div_(255.0)
        x = x.permute(0, 3, 1, 2)
        y = upscale_tiled(x, self.net, scale=self.info.scale, tile=self.tile, pad=self.pad,
                          align=self.info.align, max_batch=self.max_windows)
        y = y.clamp_(0.0, 1.0).permute(0, 2, 3, 1)
        size = self.plan.output_size
        his: list = [None] * len(frames)
        if deep:   # host numpy at the input's precision, from the same float output as the 8-bit frame
            hi = (y.mul(65535.0).round_().to(torch.int32).cpu().numpy().astype(np.uint16) if top > 1
                  else y.cpu().numpy().astype(np.float32))
            his = [resize_rgb(h, size, method="lanczos") for h in hi]
        y = y.mul_(255.0).round_().to(torch.uint8)
        rgbs = [resize_rgb(img.cpu().numpy() if on_host else img.to(frames[0].rgb.device).contiguous(), size,
                           method="lanczos") for img in y]
        return rgbs, his


def upscale_loop(q_in: queue.Queue, q_out: queue.Queue, upscaler: FrameUpscaler, clock: StageClock,
                 ctl: RunControl) -> None:
    """The stage's thread: items with a ``frame`` (the pipeline's work items) in, the same items with
    the upscaled frame and ``source_size`` (the size their alignments refer to) out; ``upscaler.batch``
    frames per call (whatever is ready, at least one)."""
    done = False
    while not done:
        items = [get(q_in, ctl)]
        while items[-1] is not END and len(items) < upscaler.batch:
            nxt = get(q_in, ctl, block=False)
            if nxt is None:
                break
            items.append(nxt)
        if items[-1] is END:
            items.pop()
            done = True
        with clock.timed("upscale"):
            frames = upscaler.upscale([w.frame for w in items])
        for w, f in zip(items, frames):
            h, wd = w.frame.rgb.shape[:2]
            put(q_out, replace(w, frame=f, source_size=(wd, h)), ctl)
    put(q_out, END, ctl)


def _round(n: int, k: int) -> int:
    return -(-int(n) // k) * k
