"""Whole-pipeline throughput: the authors' per-frame loop vs vidrestore, same clip, same weights, one run.

    python -m benchmarks.pipeline_throughput                          # 6 frames, onnxruntime:fp32,torch:fp32
    python -m benchmarks.pipeline_throughput --frames 3 --variants onnxruntime:fp32,onnxruntime:int8
    python -m benchmarks.pipeline_throughput --frames 2 --variants identity --no-reference   # seconds
    python -m benchmarks.pipeline_throughput --scaling                # + faces/resolution/skip study
    python -m benchmarks.pipeline_throughput --profile-only           # cProfile of the non-network stages

Quiet 2-core machine (AVX2, ~2.4 GHz), expected durations:

- default run (reference + onnxruntime:fp32 + torch:fp32, 6 frames of the one-face talking head): about
  3 min; the first run also exports the ONNX file once (about 1 min, cached in .cache/bench/engines);
- ``--no-reference --variants onnxruntime:fp32 --frames 3 --scaling --profile``: about 6-9 min (the
  faces study restores (1+2+4+8) x 3 frames x 2 batches = 90 faces, about 2.2 s each).

Both sides read the first ``--frames`` frames of ``--clip`` (re-encoded once into a temporary clip so that
both decode exactly the same frames) and load one random-initialised authors' checkpoint
(``.cache/bench/gfpgan_clean_random_seed0.pth``, written on first use). Every variant ``backend:precision``
(``identity`` = the pass-through restorer: the pipeline without the network) is built BEFORE its timed run
(model load, ONNX export, INT8 calibration are one-time costs, reported as ``setup_seconds``) and passed
to :func:`vidrestore.pipeline.restore_video` as ``backend=``. A variant whose backend is not available
(BackendUnavailable / ConfigError) is skipped with a note; one that raises anything else is recorded under
"failed" (and printed) and the other variants still run.

Reported per run: frames/s, busy seconds per stage, the speed-up over the reference (fps ratio), and the
restore stage's achieved GFLOP/s (faces x 395.5 GFLOP / restore seconds) against this machine's FP32
peak: cores x cpu MHz x 2 FMA units x 8 FP32 lanes (AVX2) x 2 flops. The 1-minute load average is
recorded before and after; above 1.5 at the start every headline carries a warning.
JSON (benchmarks/plot.py's schema, "pipeline" and "scaling" sections) goes to stdout and to
``benchmarks/results/pipeline-<date>-<host>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

from .pipeline_runs import (CACHE, GFLOP_PER_FACE, build_variant, ensure_checkpoint, make_clip,  # noqa: F401
                            parse_variants, run_ours, variant_label)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LOAD_LIMIT = 1.5                 # 1-min load average above which headline numbers are flagged
DEFAULT_CLIP = "clips/lp_d0_talking_512.mp4"
DEFAULT_VARIANTS = "onnxruntime:fp32,torch:fp32"


# ---------------------------------------------------------------------------------------------
# machine facts


def testdata_root() -> Path:
    """$VIDRESTORE_TESTDATA, else ../shared/testdata next to the repository, else /work/shared/testdata."""
    env = os.environ.get("VIDRESTORE_TESTDATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "testdata",
                                                  REPO.parent.parent / "shared" / "testdata"]:
        if cand.is_dir():
            return cand
    return Path("/work/shared/testdata")


def cpu_mhz() -> tuple[float, str]:
    """(MHz, where it came from): /proc/cpuinfo's first 'cpu MHz', else lscpu's max MHz, else 2000."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return float(line.split(":")[1]), "/proc/cpuinfo 'cpu MHz'"
    except (OSError, ValueError):
        pass
    return 2000.0, "assumed 2000 MHz (no /proc/cpuinfo)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fp32_peak_gflops(cores: int, mhz: float, *, fma_units: int = 2, lanes: int = 8) -> float:
    """cores x GHz x FMA units x FP32 lanes (AVX2: 8) x 2 flops per FMA."""
    return cores * mhz / 1000.0 * fma_units * lanes * 2


def machine_info(threads: int) -> dict:
    mhz, src = cpu_mhz()
    cores = os.cpu_count() or 1
    return {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_count": cores, "threads": threads,
            "cpu_mhz": mhz, "cpu_mhz_source": src,
            "fp32_peak_gflops": fp32_peak_gflops(min(threads, cores), mhz),
            "fp32_peak_formula": f"{min(threads, cores)} cores x {mhz / 1000:.4g} GHz x 2 FMA x 8 lanes x 2",
            "python": sys.version.split()[0], "platform": platform.platform()}


# ---------------------------------------------------------------------------------------------
# variants and runs


def run_reference_entry(clip: Path, out_path: Path, *, weights: Path, threads: int,
                        warmup_clip: Path | None = None) -> dict:
    """The authors' loop on ``clip``; with ``warmup_clip`` a discarded run on it first (first-call costs
    of torch and the detector), reported as ``warmup_seconds``."""
    from .reference_loop import ensure_detector_weights, run_reference

    warm = None
    if warmup_clip is not None:
        t0 = time.perf_counter()
        run_reference(warmup_clip, None, gfpgan_weights=weights, detector_weights=ensure_detector_weights(),
                      threads=threads)
        warm = time.perf_counter() - t0
    rep = run_reference(clip, out_path, gfpgan_weights=weights, detector_weights=ensure_detector_weights(),
                        threads=threads)
    rep.update(backend="torch", precision="fp32", device="cpu", batch=1, warmup_seconds=warm)
    restore_s = rep["seconds"].get("restore", 0.0)
    rep["restore_seconds_per_face"] = restore_s / rep["faces"] if rep["faces"] else None
    rep["gflops_per_s"] = rep["faces"] * GFLOP_PER_FACE / restore_s if rep["faces"] and restore_s else None
    return rep


def compare(ours: dict, ref: dict | None, peak: float) -> dict:
    """Speed-up (fps ratio ours/reference), per-stage seconds ratio, fraction of the FP32 peak."""
    out: dict = {"label": ours["label"], "fps": ours["fps"]}
    if ours.get("gflops_per_s"):
        out["gflops_per_s"] = ours["gflops_per_s"]
        out["fraction_of_fp32_peak"] = ours["gflops_per_s"] / peak
    if ref and ref.get("fps"):
        out["speedup_fps_ours_over_reference"] = ours["fps"] / ref["fps"]
        out["stage_seconds_ratio_ours_over_reference"] = {
            k: ours["seconds"][k] / v for k, v in ref["seconds"].items()
            if v > 0 and k in ours["seconds"]}
    return out


def _stage_line(run: dict) -> str:
    n = max(run.get("frames") or 1, 1)
    parts = [f"{k} {1000 * v / n:.0f}" for k, v in run["seconds"].items() if k != "total" and v * 1000 / n >= 0.5]
    return f"  {run['label']}: ms/frame (busy) " + ", ".join(parts) + f"; wall {1000 * run['seconds']['total'] / n:.0f}"


def _headline(lines: list[str], data: dict, ref: dict | None, warn: str | None, peak: float) -> None:
    if ref:
        lines.append(f"reference: {ref['fps']:.3f} fps, {ref['seconds_per_frame']:.2f} s/frame, "
                     f"restore {ref['gflops_per_s'] or 0:.1f} GFLOP/s ({(ref['gflops_per_s'] or 0) / peak:.0%} "
                     f"of {peak:.0f} GFLOP/s FP32 peak)")
    for s in data["summary"]:
        text = f"{s['label']}: {s['fps']:.3f} fps"
        if "speedup_fps_ours_over_reference" in s:
            text += f", {s['speedup_fps_ours_over_reference']:.2f}x the reference"
        if "gflops_per_s" in s:
            text += f", restore {s['gflops_per_s']:.1f} GFLOP/s ({s['fraction_of_fp32_peak']:.0%} of peak)"
        lines.append(text)
    lines += [_stage_line(run) for run in data["pipeline"]]
    lines += [f"setup (not timed) {k}: {v:.1f} s" for k, v in data["setup_seconds"].items() if v is not None]
    if warn:
        lines.insert(0, "WARNING: " + warn)
        lines.append("WARNING: " + warn)


def result_path(out: Path | None, *, tag: str = "") -> Path:
    """``out``, else benchmarks/results/pipeline-<date>-<host>[-<tag>].json."""
    tag = f"-{tag}" if tag else ""
    return out or RESULTS / f"pipeline-{dt.date.today().isoformat()}-{socket.gethostname()}{tag}.json"


def write_results(data: dict, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, out)
    return out


def _section(data: dict, lines: list[str], name: str, fn) -> None:
    """data[name] = fn(), its "lines" printed; a failure is recorded under data["failed"][name]."""
    try:
        data[name] = fn()
    except Exception as exc:
        data["failed"][name] = f"{type(exc).__name__}: {exc}"
        lines.append(f"FAILED {name}: {type(exc).__name__}: {exc}")
        return
    lines += data[name].get("lines", []) if name != "scaling" else []


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_throughput", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=DEFAULT_CLIP, help="path, or relative to the test data folder")
    p.add_argument("--frames", type=int, default=6, help="frames of the clip to run (default 6)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="comma-separated backend:precision, e.g. onnxruntime:fp32,torch:fp32,onnxruntime:int8,"
                        "identity")
    p.add_argument("--batch", type=int, default=0,
                   help="faces per network call (default 0: the pipeline's default, 1 on the CPU)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: all cores)")
    p.add_argument("--weights", type=Path, help="GFPGANv1Clean checkpoint (default: random, seed 0)")
    p.add_argument("--no-reference", action="store_true", help="skip the authors' loop")
    p.add_argument("--no-warmup", action="store_true",
                   help="time the first calls too (default, outside the timed runs: each backend restores the "
                        "first --batch frames of the clip once, the reference its first frame)")
    p.add_argument("--scaling", action="store_true", help="also run the faces/resolution/skip study")
    p.add_argument("--scaling-frames", type=int, default=3)
    p.add_argument("--scaling-variant", default=None,
                   help="backend:precision for the faces study (default: first variant that built)")
    p.add_argument("--scaling-batches", default="1,4", help="batches compared in the faces study")
    p.add_argument("--resolutions", default="480p,720p,1080p,4K")
    p.add_argument("--face-counts", default="1,2,4,8")
    p.add_argument("--cold", action="store_true",
                   help="only: reference loop vs vidrestore from process start, empty then warm cache")
    p.add_argument("--profile", action="store_true", help="also cProfile the identity pipeline on 720p")
    p.add_argument("--profile-only", action="store_true", help="only the cProfile (no model runs)")
    p.add_argument("--profile-frames", type=int, default=12)
    p.add_argument("--ab-fixes", action="store_true",
                   help="identity pipeline at 720p and 4K with the current and the proposed CPU image ops")
    p.add_argument("--json", type=Path, help="result file (default benchmarks/results/pipeline-<date>-<host>.json)")
    p.add_argument("--no-save", action="store_true", help="print only, write no result file")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from vidrestore.errors import BackendUnavailable, ConfigError

    threads = args.threads or (os.cpu_count() or 1)
    machine = machine_info(threads)
    peak = machine["fp32_peak_gflops"]
    load_start = os.getloadavg()
    warn = (f"1-min load average was {load_start[0]:.2f} (> {LOAD_LIMIT}) at the start: the CPU was shared, "
            f"ratios and GFLOP/s are not trustworthy") if load_start[0] > LOAD_LIMIT else None
    data: dict = {"meta": {**machine, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "argv": sys.argv[1:] if argv is None else list(argv),
                           "loadavg_start": list(load_start), "load_warning": warn,
                           "gflop_per_face": GFLOP_PER_FACE},
                  "pipeline": [], "setup_seconds": {}, "skipped": {}, "failed": {}, "summary": []}
    lines: list[str] = []
    root = testdata_root()
    clip_src = Path(args.clip) if Path(args.clip).is_file() else root / args.clip
    from . import scaling

    with tempfile.TemporaryDirectory(prefix="vr-bench-") as tmpd:
        tmp = Path(tmpd)
        if args.cold:   # fresh processes timed from their start (benchmarks/startup.py)
            from .startup import cold_comparison
            clip = make_clip(clip_src, tmp / "clip.mp4", frames=args.frames)
            data["cold"] = cold_comparison(clip, tmp, frames=args.frames, weights=ensure_checkpoint(args.weights))
            c = data["cold"]
            lines.append(f"from process start, {args.frames} frames: reference {c['reference_s']:.1f} s, ours "
                         f"cold {c['ours_cold_s']:.1f} s ({c['speedup_cold']:.2f}x), warm {c['ours_warm_s']:.1f} s "
                         f"({c['speedup_warm']:.2f}x)")
        elif args.profile_only:
            data["profile"] = scaling.profile_identity(root, tmp, frames=args.profile_frames)
            lines += data["profile"]["lines"]
            if args.ab_fixes:
                data["ab_fixes"] = scaling.ab_fixes(root, tmp, frames=args.profile_frames)
                lines += data["ab_fixes"]["lines"]
        else:
            weights = ensure_checkpoint(args.weights)
            clip = make_clip(clip_src, tmp / "clip.mp4", frames=args.frames)
            ref = None
            if not args.no_reference:
                warm = make_clip(clip_src, tmp / "warmup1.mp4", frames=1) if not args.no_warmup else None
                ref = run_reference_entry(clip, tmp / "reference.mp4", weights=weights, threads=threads,
                                          warmup_clip=warm)
                ref["input"] = f"{clip_src} (first {args.frames} frames)"
                data["pipeline"].append(ref)
                data["setup_seconds"]["reference"] = ref.get("setup_seconds")
            built = {}
            warm_ours = None if args.no_warmup else make_clip(clip_src, tmp / "warmup.mp4",
                                                              frames=max(args.batch, 1))
            for backend_name, precision in parse_variants(args.variants):
                label = variant_label(backend_name, precision)
                try:
                    be, reason, setup, mc = build_variant(backend_name, precision, weights=weights,
                                                          batch=args.batch, threads=threads,
                                                          warmup_clip=warm_ours)
                except (BackendUnavailable, ConfigError) as exc:
                    data["skipped"][label] = f"{type(exc).__name__}: {exc}"
                    lines.append(f"skipped {label}: {exc}")
                    continue
                except Exception as exc:  # a broken variant must not cost the other measurements
                    data["failed"][label] = f"setup/warm-up: {type(exc).__name__}: {exc}"
                    lines.append(f"FAILED {label} during setup/warm-up: {type(exc).__name__}: {exc}")
                    continue
                data["setup_seconds"][label] = setup
                try:
                    entry = run_ours(clip, tmp / f"ours-{len(built)}.mp4", be, reason, model_config=mc,
                                     label=label)
                except Exception as exc:
                    data["failed"][label] = f"timed run: {type(exc).__name__}: {exc}"
                    lines.append(f"FAILED {label} in the timed run: {type(exc).__name__}: {exc}")
                    continue
                entry["setup_seconds"] = setup
                entry["input"] = f"{clip_src} (first {args.frames} frames)"
                data["pipeline"].append(entry)
                data["summary"].append(compare(entry, ref, peak))
                built[label] = (be, reason, mc, entry)
            _headline(lines, data, ref, warn, peak)
            if args.scaling:
                _section(data, lines, "scaling",
                         lambda: scaling.run_scaling(root, tmp, built=built, args=args, lines=lines))
            if args.profile:
                _section(data, lines, "profile", lambda: scaling.profile_identity(root, tmp, frames=args.profile_frames))
            if args.ab_fixes:
                _section(data, lines, "ab_fixes", lambda: scaling.ab_fixes(root, tmp, frames=args.profile_frames))
    data["meta"]["loadavg_end"] = list(os.getloadavg())
    if not args.no_save:
        tag = "-".join(t for t, on in (("scaling", args.scaling), ("profile", args.profile or args.profile_only),
                                       ("cold", args.cold))
                       if on)
        path = result_path(args.json, tag=tag)
        data["meta"]["written_to"] = str(path)
        write_results(data, path)
    print(json.dumps(data, indent=2, default=str))
    print("\n".join(lines), file=sys.stderr)
    return data


if __name__ == "__main__":
    main()
