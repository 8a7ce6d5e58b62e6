"""What the pipeline benchmarks share: test clips cut from the corpus, the random-initialised
checkpoint, and building/running one backend variant through :func:`vidrestore.pipeline.restore_video`.

Imported by :mod:`benchmarks.pipeline_throughput`, :mod:`benchmarks.scaling` and
:mod:`benchmarks.startup`; imports none of them (no cycle).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
GFLOP_PER_FACE = 395.5           # /work/shared/notes/gfpgan-reference-facts.md, one 512x512 face


def make_clip(src: Path, dst: Path, *, frames: int, size: tuple[int, int] | None = None, tile: int = 1,
              crf: int = 18, preset: str = "veryfast") -> Path:
    """Re-encode the first ``frames`` frames of ``src`` as H.264 (no audio) into ``dst``.

    ``size`` = (width, height) rescales (bicubic, swscale); ``tile`` > 1 repeats each frame in a grid of
    ``tile`` cells (1x2, 2x2, 2x4: the real face appears ``tile`` times, every copy the same size).
    """
    import av
    import numpy as np

    rows, cols = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4), 16: (4, 4)}[tile]
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or 25
        stream = None
        n = 0
        for frame in inp.decode(vin):
            if n >= frames:
                break
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1], interpolation="BICUBIC")
            rgb = frame.to_ndarray(format="rgb24")
            if tile > 1:
                rgb = np.tile(rgb, (rows, cols, 1))
            h, w = rgb.shape[:2]
            rgb = rgb[: h - h % 2, : w - w % 2]
            if stream is None:
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts = n
            vf.time_base = Fraction(1) / Fraction(rate)
            for p in stream.encode(vf):
                out.mux(p)
            n += 1
        if stream is not None:
            for p in stream.encode(None):
                out.mux(p)
    return dst


def parse_variants(text: str) -> list[tuple[str, str]]:
    """'onnxruntime:fp32,torch' -> [('onnxruntime','fp32'), ('torch','fp32')]; 'identity' stays identity."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        backend, _, precision = item.partition(":")
        out.append((backend, precision or "fp32"))
    return out


def variant_label(backend: str, precision: str) -> str:
    return "identity" if backend == "identity" else f"{backend}:{precision}"


def build_variant(backend: str, precision: str, *, weights: Path, batch: int, threads: int,
                  warmup_clip: Path | None = None):
    """(RestoreBackend, reason, setup seconds, ModelConfig); raises BackendUnavailable / ConfigError.

    ``warmup_clip``: a discarded restore_video run on it with the new backend, counted in the setup
    time. It carries the first-call costs (memory arenas, kernel selection) and, for onnxruntime int8,
    the calibration, which takes the crops of the backend's FIRST restore() call: so the warm-up must
    be real faces (a clip of ``batch`` one-face frames makes that first call a full batch, as in a run)."""
    from vidrestore.backends.factory import create_backend
    from vidrestore.config import ModelConfig

    fields = dict(batch=batch, threads=threads, device="cpu", cache_dir=CACHE / "engines")
    if backend == "identity":
        config = ModelConfig(restorer="identity", **fields)
    else:
        config = ModelConfig(weights=str(weights), backend=backend, precision=precision, **fields)
    t0 = time.perf_counter()
    be, reason = create_backend(config)
    if warmup_clip is not None:
        from vidrestore.config import RestoreConfig
        from vidrestore.pipeline import restore_video

        out = warmup_clip.with_name(warmup_clip.stem + "-out.mp4")
        restore_video(warmup_clip, out, RestoreConfig(model=config, overwrite=True), backend=be,
                      backend_reason=reason)
        out.unlink(missing_ok=True)
    return be, reason, time.perf_counter() - t0, config


def run_ours(clip: Path, out_path: Path, backend, reason: str, *, model_config, label: str,
             restore_config=None) -> dict:
    """One timed restore_video run with a ready backend; a "pipeline" entry of plot.py's schema."""
    from vidrestore.config import RestoreConfig
    from vidrestore.pipeline import restore_video

    cfg = replace(restore_config or RestoreConfig(), model=model_config, overwrite=True)
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    rep = restore_video(clip, out_path, cfg, backend=backend, backend_reason=reason)
    cpu = time.process_time() - cpu0
    stages = {k: float(v) for k, v in rep.stage_seconds.items()}
    faces = int(rep.faces_restored)
    restore_s = stages.get("restore", 0.0)
    return {"label": f"vidrestore {label}", "backend": rep.backend.name, "precision": rep.backend.precision,
            "device": rep.backend.device, "batch": rep.backend.max_batch, "frames": rep.frames_written,
            "faces": faces, "faces_detected": rep.faces_detected, "faces_skipped_small": rep.faces_skipped_small,
            "fps": rep.fps, "seconds_per_frame": rep.wall_seconds / max(rep.frames_written, 1),
            "seconds": {**stages, "total": rep.wall_seconds}, "process_cpu_seconds": cpu,
            "restore_seconds_per_face": restore_s / faces if faces else None,
            "gflops_per_s": faces * GFLOP_PER_FACE / restore_s if faces and restore_s > 0 and
            rep.backend.name not in ("identity", "callable") else None,
            "backend_reason": reason, "input": str(clip),
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}


def ensure_checkpoint(path: Path | None) -> Path:
    from .reference_loop import save_random_checkpoint

    if path is not None:
        return path
    ckpt = CACHE / "gfpgan_clean_random_seed0.pth"
    if not ckpt.is_file():
        save_random_checkpoint(ckpt)
    return ckpt
