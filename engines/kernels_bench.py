"""Timing of every CUDA kernel against its plain-torch reference (CUDA events), for GPU benchmark scripts.

    from engines.kernels_bench import benchmark_kernels
    for name, row in benchmark_kernels("cuda").items():
        print(name, row)
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from engines import kernels as K
from engines import kernels_reference as R


def _time_ms(fn: Callable[[], object], repeats: int) -> float:
    """Mean milliseconds per call on the current stream, after two warm-up calls."""
    fn()
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def _alignments(k: int, size: int, height: int, width: int) -> np.ndarray:
    """k frame -> crop similarity matrices of faces about 300 px wide spread over the frame."""
    mats = []
    for i in range(k):
        scale, angle = size / 300.0, 0.2 * math.sin(i)
        cx, cy = width * (i + 0.5) / k, height / 2
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        mats.append([[c, -s, size / 2 - (c * cx - s * cy)], [s, c, size / 2 - (s * cx + c * cy)]])
    return np.asarray(mats)


def benchmark_kernels(device: torch.device | str = "cuda", *, repeats: int = 20, small: bool = False,
                      source: K.Source = "auto") -> dict[str, dict[str, float | str]]:
    """{kernel: {"kernel_ms", "torch_ms", "speedup", "shape"}} at GFP-GAN sizes (``small``: tiny ones)."""
    dev = torch.device(device)
    mc = K.ModConvKernels(dev, source=source)
    sft = K.SFTKernels(dev, source=source)
    warp = K.WarpKernels(dev, source=source)
    b, c, hw = (2, 32, 8) if small else (8, 512, 64)
    fh, fw, k, size = (60, 80, 2, 32) if small else (1080, 1920, 8, 512)
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(b, c, hw, hw, device=dev, generator=gen).half()
    s = torch.randn(b, c, device=dev, generator=gen) + 1
    wsq = torch.rand(c, c, device=dev, generator=gen)
    demod = R.style_demod(s, wsq)
    bias = torch.randn(c, device=dev, generator=gen)
    noise = torch.randn(1, 1, hw, hw, device=dev, generator=gen)
    scale, shift = torch.randn(2, b, c // 2, hw, hw, device=dev, generator=gen).half()
    y_feat, z_feat = x.clone(), x.clone()  # updated in place by the epilogue and the SFT
    frame = torch.randint(0, 256, (fh, fw, 3), dtype=torch.uint8, device=dev, generator=gen)
    y_plane, uv_plane = R.rgb_to_nv12(frame)
    fwd = _alignments(k, size, fh, fw)
    inv = R.invert_affine(fwd)
    crops = torch.rand(k, 3, size, size, device=dev, generator=gen).half() * 2 - 1
    mask = torch.ones(size, size, device=dev)
    feat = f"{b}x{c}x{hw}x{hw} fp16"
    cases = {
        "style_demod": (f"{b}x{c} -> {b}x{c}", lambda ops: ops.style_demod(s, wsq), mc, R),
        "modulate_input": (feat, lambda ops: ops.modulate_input(x, s), mc, R),
        "modconv_epilogue": (feat, lambda ops: ops.modconv_epilogue(y_feat, demod, bias, noise=noise,
                                                                     noise_strength=0.1), mc, R),
        "sft_half": (feat, lambda ops: ops.sft_half(z_feat, scale, shift), sft, R),
        "warp_crops_rgb": (f"{fh}x{fw} -> {k}x3x{size}x{size} fp16",
                           lambda ops: ops.warp_crops_rgb(frame, inv, size=size, dtype=torch.float16), warp, R),
        "warp_crops_nv12": (f"{fh}x{fw} -> {k}x3x{size}x{size} fp16",
                            lambda ops: ops.warp_crops_nv12(y_plane, uv_plane, inv, size=size, dtype=torch.float16),
                            warp, R),
        "paste_crops": (f"{k}x3x{size}x{size} -> {fh}x{fw}",
                        lambda ops: ops.paste_crops(frame, crops, fwd, mask, strength=0.5), warp, R),
        "nv12_to_rgb": (f"{fh}x{fw}", lambda ops: ops.nv12_to_rgb(y_plane, uv_plane), warp, R),
        "rgb_to_nv12": (f"{fh}x{fw}", lambda ops: ops.rgb_to_nv12(frame), warp, R),
    }
    results: dict[str, dict[str, float | str]] = {}
    for name, (shape, call, ops, reference) in cases.items():
        kernel_ms = _time_ms(lambda: call(ops), repeats)
        torch_ms = _time_ms(lambda: call(reference), repeats)
        results[name] = {"kernel_ms": kernel_ms, "torch_ms": torch_ms, "speedup": torch_ms / kernel_ms,
                         "shape": shape}
    return results
