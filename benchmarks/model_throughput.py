"""Faces per second of the GFP-GAN network: our implementation vs the authors', same weights, one run.

    python -m benchmarks.model_throughput                       # torch CPU fp32, batches 1, 4, 8
    python -m benchmarks.model_throughput --batches 1,4 --repeats 2 --threads 2
    python -m benchmarks.model_throughput --profile --batches 1 # top ops via torch.profiler

Backends are plain functions ``build(ctx) -> run(batch) -> output`` collected in a dict built at call
time by :func:`available_backends`; add one there to compare it in the same run. ``ort-fp32`` and
``ort-int8`` are onnxruntime on the CPU (FP32, and static INT8 calibrated on real faces):

    python -m benchmarks.model_throughput --backends authors-torch,ours-torch,ort-fp32,ort-int8 --batches 1
Timings interleave backends within each repeat so that load from other processes hits all alike.
Writes JSON to stdout and to ``benchmarks/results/model_throughput-<date>-<host>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
RunFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class BenchContext:
    checkpoint: Path        # official-format .pth shared by every backend
    size: int               # face crop size (the model's out_size)
    device: str             # "cpu" (backends may add "cuda")
    threads: int


def _ours_torch(ctx: BenchContext) -> RunFn:
    from vidrestore.models import load_gfpgan

    model = load_gfpgan(ctx.checkpoint, device=ctx.device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)
    return run


def _authors_torch(ctx: BenchContext) -> RunFn:
    from tests.support.reference import load_reference

    ref = load_reference()
    model = ref.GFPGANv1Clean(out_size=ctx.size, num_style_feat=512, channel_multiplier=2,
                              decoder_load_path=None, fix_decoder=False, num_mlp=8,
                              input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    state = torch.load(ctx.checkpoint, map_location="cpu", weights_only=True)["params_ema"]
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False).to(ctx.device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x, return_rgb=False, randomize_noise=False)[0]
    return run


def _ort(ctx: BenchContext, precision: str) -> RunFn:
    """onnxruntime on the CPU; int8 calibrates on the testdata's two aligned photos when
    $VIDRESTORE_TESTDATA is set (else on the warm-up batch, like a run's first faces)."""
    from vidrestore.backends.onnxruntime import OnnxRuntimeBackend

    cache = Path(tempfile.mkdtemp(prefix="bench-ort-"))
    backend = OnnxRuntimeBackend.from_weights(ctx.checkpoint, precision=precision, threads=ctx.threads,
                                              max_batch=64, cache_dir=cache,
                                              calibration_source="benchmarks.model_throughput")
    testdata = os.environ.get("VIDRESTORE_TESTDATA")
    if precision == "int8" and testdata:
        from tests.support.checkpoints import load_face

        names = ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png")
        backend.restore(torch.cat([load_face(Path(testdata) / "images" / n, ctx.size) for n in names]))
    return backend.restore


def available_backends() -> dict[str, Callable[[BenchContext], RunFn]]:
    """Name -> builder. Built per call (no global registry); extend here."""
    return {"ours-torch": _ours_torch, "authors-torch": _authors_torch,
            "ort-fp32": lambda ctx: _ort(ctx, "fp32"), "ort-int8": lambda ctx: _ort(ctx, "int8")}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _random_checkpoint(folder: Path, size: int) -> Path:
    from tests.support.checkpoints import write_checkpoint

    return write_checkpoint(folder / f"random_{size}.pth", size, seed=0)


def _profile(run: RunFn, x: torch.Tensor, name: str, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.is_cuda else [])
    with profile(activities=activities) as prof:
        run(x)
    print(f"\n== {name}, batch {x.shape[0]}: top ops by self time ==", file=sys.stderr)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows), file=sys.stderr)


def benchmark(*, backends: list[str], batches: list[int], repeats: int, threads: int, size: int,
              device: str, checkpoint: Path | None, profile: bool = False) -> dict:
    if threads > 0:
        torch.set_num_threads(threads)
    builders = available_backends()
    unknown = [b for b in backends if b not in builders]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; known: {sorted(builders)}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint or _random_checkpoint(Path(tmp), size)
        ctx = BenchContext(checkpoint=ckpt, size=size, device=device, threads=torch.get_num_threads())
        runs = {name: builders[name](ctx) for name in backends}
        gen = torch.Generator().manual_seed(0)
        times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in backends for b in batches}
        cpu: dict[tuple[str, int], list[float]] = {(n, b): [] for n in backends for b in batches}
        max_diff: dict[int, float] = {}
        warm = (torch.rand(1, 3, size, size, generator=gen) * 2 - 1).to(device)
        for run in runs.values():                                        # one warm-up call each
            run(warm)
        for batch in batches:
            x = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
            outs: dict[str, torch.Tensor] = {}
            for _ in range(repeats):
                for name, run in runs.items():
                    _sync(device)
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = run(x)
                    _sync(device)
                    times[(name, batch)].append(time.perf_counter() - t0)
                    cpu[(name, batch)].append(time.process_time() - c0)
                    outs.setdefault(name, out)
            first = outs[backends[0]]                                    # agreement check
            max_diff[batch] = max((o - first).abs().max().item() for o in outs.values())
            if profile:
                for name, run in runs.items():
                    _profile(run, x, name, rows=15)
    results = []
    for (name, batch), ts in times.items():
        med = statistics.median(ts)
        cpu_med = statistics.median(cpu[(name, batch)])
        results.append({"backend": name, "batch": batch, "times_s": [round(t, 4) for t in ts],
                        "median_s": round(med, 4), "faces_per_s": round(batch / med, 4),
                        "cpu_s": [round(t, 4) for t in cpu[(name, batch)]],
                        "faces_per_cpu_s": round(batch / cpu_med, 4)})
    ratio, ratio_cpu = {}, {}
    by_key = {(r["backend"], r["batch"]): r for r in results}
    for b in batches:
        ours, theirs = by_key.get(("ours-torch", b)), by_key.get(("authors-torch", b))
        if ours and theirs:
            ratio[str(b)] = round(ours["faces_per_s"] / theirs["faces_per_s"], 3)
            ratio_cpu[str(b)] = round(ours["faces_per_cpu_s"] / theirs["faces_per_cpu_s"], 3)
    return {
        "benchmark": "model_throughput",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "device": device,
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "size": size,
        "repeats": repeats,
        "weights": "random (realistic init)" if checkpoint is None else str(checkpoint),
        "max_abs_diff_vs_first_backend": {str(b): d for b, d in max_diff.items()},
        "results": results,
        "ratio_ours_over_authors": ratio,
        # process CPU time is less disturbed by other processes on a shared machine than wall time
        "ratio_ours_over_authors_cpu_time": ratio_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="1,4,8", help="comma-separated batch sizes (default 1,4,8)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per backend and batch")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    p.add_argument("--backends", default="ours-torch,authors-torch", help="comma-separated names")
    p.add_argument("--size", type=int, default=512, help="face size / model out_size (default 512)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights (default: random, realistic)")
    p.add_argument("--profile", action="store_true", help="print the top ops of each backend")
    p.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = p.parse_args(argv)
    report = benchmark(backends=[b for b in args.backends.split(",") if b],
                       batches=[int(b) for b in args.batches.split(",") if b], repeats=args.repeats,
                       threads=args.threads, size=args.size, device=args.device,
                       checkpoint=args.checkpoint, profile=args.profile)
    report["note"] = args.note
    text = json.dumps(report, indent=2)
    print(text)
    out = args.out or RESULTS / (f"model_throughput-{dt.date.today().isoformat()}-"
                                 f"{socket.gethostname()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    for batch, r in report["ratio_ours_over_authors"].items():
        r_cpu = report["ratio_ours_over_authors_cpu_time"][batch]
        print(f"batch {batch}: ours/authors faces/s = {r:.3f} (per CPU second: {r_cpu:.3f})",
              file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
