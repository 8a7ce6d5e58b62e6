"""Start-up cost: seconds from process start to the first restored frame, with an empty and a warm cache.

    python -m benchmarks.startup                 # onnxruntime FP32: split + pipeline, cold then warm
    python -m benchmarks.startup --int8          # + the INT8 calibration (cold) / cached INT8 load (warm)
                                                 #   in the split child; the pipeline child stays FP32
    python -m benchmarks.startup --trt           # + the TensorRT engine build and timing-cache reuse (GPU)
    python -m benchmarks.startup --overlap       # + could torch restore faces while the export runs?

Every measurement runs in a fresh Python process (``--child``) started by this one; "from process start"
is the parent's clock just before it starts the child, so interpreter start-up counts. The children:

- **split**: each one-time cost alone, in order - ``imports`` (torch, onnxruntime, PyAV, vidrestore),
  ``weights_load`` (the authors' checkpoint into our module: what the export and the torch backend
  need), ``export`` (:func:`engines.export_onnx.ensure_onnx`: cold = SHA-256 + load + trace + save,
  warm = SHA-256 + lookup), ``session`` (onnxruntime session: cold = graph optimisation + writing the
  optimised graph, warm = opening the cached graph), ``detector`` (RetinaFace session + one detection),
  ``first_call`` (one 512 px face through the network), ``int8`` (``--int8``: calibration + INT8
  session, or the cached INT8 file), ``trt_engine`` (``--trt``: engine build or cache hit);
- **pipeline**: ``restore_video`` on the first ``--frames`` frames of the clip, as a user runs it (the
  backend is built in the restore thread while decode/detect/align run); reports process start -> first
  restored frame written, and -> all frames written;
- **overlap** (``--overlap``): the export alone, one face through the torch model on one thread alone,
  then both at once - how many faces torch would restore on the idle core before the export is done
  (the issue's "restore with torch while the export runs, then switch").

Cold = an empty cache folder ($VIDRESTORE_HOME), warm = the same folder again. Weights: the authors'
GFPGANv1Clean architecture, random-initialised, in the authors' file format
(``.cache/bench/gfpgan_clean_random_seed0.pth``), full size (speed does not depend on the values).
JSON goes to ``benchmarks/results/startup-<date>-<host>.json``; the 1-min load average is recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_CLIP = "clips/lp_d0_talking_512.mp4"
FACE = "images/gfpgan_cropped_Adele_512.png"


def testdata_root() -> Path:
    env = os.environ.get("VIDRESTORE_TESTDATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "testdata",
                                                  Path("/work/shared/testdata")]:
        if cand.is_dir():
            return cand
    raise SystemExit("test media not found: set VIDRESTORE_TESTDATA")


# ---------------------------------------------------------------------------------------------
# children (fresh processes)


def _child_split(args) -> dict:
    t = {"start": time.time()}
    import av  # noqa: F401
    import numpy as np
    import onnxruntime  # noqa: F401
    import torch

    import engines.export_onnx  # noqa: F401
    import vidrestore.pipeline  # noqa: F401
    from vidrestore.backends.onnxruntime import OnnxRuntimeBackend
    from vidrestore.config import DetectConfig
    from vidrestore.faces.detect import RetinaFaceDetector
    from vidrestore.models import load_gfpgan
    t["imports"] = time.time()
    model = load_gfpgan(args.weights, device="cpu")    # what the export (and the torch backend) pays
    del model
    t["weights_load"] = time.time()
    from engines.export_onnx import ensure_onnx
    onnx_path = ensure_onnx(args.weights, cache_dir=args.cache)
    t["export"] = time.time()
    backend = OnnxRuntimeBackend(onnx_path, max_batch=1)
    t["session"] = time.time()
    import cv2
    face = cv2.imread(str(args.face))[:, :, ::-1]
    detector = RetinaFaceDetector(config=DetectConfig())
    detector.detect([np.ascontiguousarray(face)])
    t["detector"] = time.time()
    x = torch.from_numpy(face.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None].contiguous()
    backend.restore(x)
    t["first_call"] = time.time()
    out = {"stamps": t, "graph_cache": backend.graph_cache_use.state if backend.graph_cache_use else None,
           "onnx": onnx_path.name}
    if args.int8:
        int8 = OnnxRuntimeBackend(onnx_path, precision="int8", max_batch=1)   # as the CPU pipeline: batch 1
        int8.restore(x)                  # calibrates on the first call's faces (or loads the cached file)
        t["int8"] = time.time()
        out["int8_calibrated_now"] = int8.calibrated_now
    if args.trt:
        from vidrestore.backends.select import detect_capabilities
        if detect_capabilities().cuda:
            from engines.build_trt import build_engine
            build_engine(str(args.weights), precision="fp16", cache_dir=args.cache)
            t["trt_engine"] = time.time()
        else:
            out["trt"] = "skipped: no CUDA GPU"
    return out


def _child_pipeline(args) -> dict:
    t0 = time.time()
    from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig
    from vidrestore.pipeline import restore_video
    first: list[float] = []
    config = RestoreConfig(model=ModelConfig(weights=str(args.weights), cache_dir=args.cache,
                                             backend=args.backend, device="cpu"),   # FP32: the default
                           encode=EncodeConfig(preset="veryfast"), overwrite=True)
    imported = time.time()
    rep = restore_video(args.clip, args.out, config,
                        progress=lambda p: first.append(time.time()) if not first else None)
    end = time.time()
    return {"stamps": {"start": t0, "imports": imported, "first_frame": first[0] if first else None,
                       "end": end},
            "frames": rep.frames_written, "faces": rep.faces_restored, "backend": rep.backend.name,
            "stage_seconds": {k: round(v, 3) for k, v in rep.stage_seconds.items()}}


def _child_overlap(args) -> dict:
    """Would restoring with torch while the export runs pay? The export (model loaded) alone, one 512 px
    face through the torch model on one thread alone, then both at once (export here, torch in a thread
    on the other core): how many faces torch finishes before the export is done."""
    stamps = {"start": time.time()}
    import threading

    import torch

    from engines.export_onnx import export_onnx
    from vidrestore.models import load_gfpgan
    stamps["imports"] = time.time()
    torch.set_num_threads(1)              # the other core runs the export (single-threaded)
    model = load_gfpgan(args.weights, device="cpu")
    x = torch.zeros(1, 3, 512, 512)

    def export() -> float:
        t = time.time()
        export_onnx(model, Path(tempfile.mkdtemp(dir=args.cache)) / "m.onnx")
        return time.time() - t

    def faces(stop: threading.Event, out: list) -> None:
        with torch.no_grad():
            while not stop.is_set():
                t = time.time()
                model(x)
                out.append((t, time.time()))

    export()                              # first export pays one-time imports: not counted
    alone = [export() for _ in range(2)]
    stop, solo = threading.Event(), []
    worker = threading.Thread(target=faces, args=(stop, solo))
    worker.start()
    time.sleep(11)
    stop.set()
    worker.join()
    stop, beside = threading.Event(), []
    worker = threading.Thread(target=faces, args=(stop, beside))
    worker.start()
    t0 = time.time()
    together = export()
    stop.set()
    worker.join()
    return {"export_alone_s": [round(v, 2) for v in alone],
            "torch_face_1_thread_alone_s": [round(e - b, 2) for b, e in solo],
            "export_beside_torch_s": round(together, 2),
            "torch_first_face_beside_export_s": round(beside[0][1] - beside[0][0], 2),
            "torch_faces_done_during_export": sum(1 for _, e in beside if e <= t0 + together),
            "stamps": stamps}


def run_child(kind: str, *, weights: Path, cache: Path, clip: Path | None = None, out: Path | None = None,
              int8: bool = False, trt: bool = False, backend: str = "auto") -> dict:
    """Start a fresh process for one measurement; times are seconds since just before its start."""
    cmd = [sys.executable, "-m", "benchmarks.startup", "--child", kind, "--weights", str(weights),
           "--cache", str(cache), "--backend", backend]
    cmd += ["--clip", str(clip), "--out", str(out)] if clip is not None else []
    cmd += ["--int8"] if int8 else []
    cmd += ["--trt"] if trt else []
    env = dict(os.environ, PYTHONPATH=str(REPO), VIDRESTORE_HOME=str(cache.parent))
    launched = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.time() - launched
    if p.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    data = json.loads(p.stdout.strip().splitlines()[-1])
    stamps = data.pop("stamps")
    data["since_process_start"] = {k: (round(v - launched, 3) if v is not None else None)
                                   for k, v in stamps.items() if k != "start"}
    data["interpreter_start"] = round(stamps["start"] - launched, 3)
    keys = [k for k in stamps if stamps[k] is not None]
    data["phase_seconds"] = {b: round(stamps[b] - stamps[a], 3) for a, b in zip(keys, keys[1:])}
    data["phase_seconds"]["imports"] = round(stamps["imports"] - launched, 3)   # with interpreter start
    data["process_wall"] = round(wall, 3)
    return data


# ---------------------------------------------------------------------------------------------
# from process start, side by side with the reference loop (pipeline_throughput --cold)


def _timed_process(cmd: list[str], env: dict | None = None) -> float:
    launched = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({p.returncode}): {p.stderr.strip()[-1500:]}")
    return time.time() - launched


def cold_comparison(clip: Path, tmp: Path, *, frames: int, weights: Path) -> dict:
    """The authors' loop and ``vidrestore`` (CLI, default options) on the same clip, each in a fresh
    process and timed from its start: ours with an empty cache (export, session, everything), then
    again with the cache it left (warm). Ratios are reference seconds / our seconds."""
    from .reference_loop import ensure_detector_weights

    det = ensure_detector_weights()                      # converted once, outside the timing
    home = tmp / "cold-home"
    home.mkdir()
    load = [list(os.getloadavg())]
    ref_s = _timed_process([sys.executable, "-m", "benchmarks.reference_loop", str(clip), "-o",
                            str(tmp / "ref.mp4"), "--max-frames", str(frames), "--gfpgan-weights",
                            str(weights), "--detector-weights", str(det)])
    load.append(list(os.getloadavg()))
    runs = {}
    for temp in ("cold", "warm"):
        report = tmp / f"report-{temp}.json"
        runs[temp] = _timed_process([sys.executable, "-m", "vidrestore", str(clip), "-o", str(tmp / f"{temp}.mp4"),
                                     "-y", "-q", "--weights", str(weights), "--report", str(report)],
                                    env={"VIDRESTORE_HOME": str(home)})
        rep = json.loads(report.read_text())
        runs[f"{temp}_stage_seconds"] = {k: round(v, 2) for k, v in rep["stage_seconds"].items()}
        runs[f"{temp}_backend"] = rep["backend"]["name"]
        load.append(list(os.getloadavg()))
    return {"frames": frames, "reference_s": round(ref_s, 2), "ours_cold_s": round(runs["cold"], 2),
            "ours_warm_s": round(runs["warm"], 2),
            "speedup_cold": round(ref_s / runs["cold"], 3), "speedup_warm": round(ref_s / runs["warm"], 3),
            "goal_cold": 1.2, "details": runs, "loadavg": load,
            "note": "each side a fresh process timed from its start; reference = benchmarks.reference_loop "
                    "(authors' GFPGANv1Clean + facexlib, torch FP32), ours = `vidrestore` CLI defaults"}


# ---------------------------------------------------------------------------------------------
# parent


def measure(*, frames: int, int8: bool, trt: bool, clip_rel: str = DEFAULT_CLIP, overlap: bool = False) -> dict:
    from .pipeline_runs import ensure_checkpoint, make_clip

    root = testdata_root()
    weights = ensure_checkpoint(None)
    out: dict = {"meta": {"host": socket.gethostname(), "cpu_count": os.cpu_count(),
                          "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          "loadavg_start": list(os.getloadavg()), "frames": frames, "clip": clip_rel,
                          "weights": "random-initialised GFPGANv1Clean (authors' format, full size)"}}
    with tempfile.TemporaryDirectory(prefix="vr-startup-") as tmpd:
        tmp = Path(tmpd)
        clip = make_clip(root / clip_rel, tmp / "clip.mp4", frames=frames)
        for name, kind in (("split", "split"), ("pipeline", "pipeline")):
            cache = tmp / f"home-{name}" / "engines"      # own empty cache per kind
            cache.mkdir(parents=True)
            for temp in ("cold", "warm"):
                kw = dict(weights=weights, cache=cache, int8=int8, trt=trt and kind == "split")
                if kind == "pipeline":
                    kw.update(clip=clip, out=tmp / f"out-{temp}.mp4")
                out.setdefault(name, {})[temp] = run_child(kind, **kw)
                print(f"{name} {temp}: {json.dumps(out[name][temp]['phase_seconds'])}", file=sys.stderr)
        if overlap:
            (tmp / "overlap").mkdir()
            out["overlap"] = run_child("overlap", weights=weights, cache=tmp / "overlap")
            print(f"overlap: {json.dumps({k: v for k, v in out['overlap'].items() if 'torch' in k or 'export' in k})}",
                  file=sys.stderr)
    out["meta"]["loadavg_end"] = list(os.getloadavg())
    out["goals"] = goals(out)
    return out


def goals(data: dict) -> dict:
    """Warm: process start -> first restored frame minus one network call, against 3 s."""
    warm = data["pipeline"]["warm"]["since_process_start"]["first_frame"]
    call = data["split"]["warm"]["phase_seconds"]["first_call"]
    return {"warm_first_frame_s": warm, "one_network_call_s": call,
            "warm_first_frame_minus_one_call_s": round(warm - call, 3) if warm is not None else None,
            "warm_goal_s": 3.0,
            "cold_first_frame_s": data["pipeline"]["cold"]["since_process_start"]["first_frame"]}


def table(data: dict) -> str:
    rows = ["| phase (s) | cold | warm |", "|---|---|---|"]
    split = data["split"]
    for phase in split["cold"]["phase_seconds"]:
        rows.append(f"| {phase} | {split['cold']['phase_seconds'][phase]:.2f} | "
                    f"{split['warm']['phase_seconds'].get(phase, float('nan')):.2f} |")
    for key in ("first_frame", "end"):
        c = data["pipeline"]["cold"]["since_process_start"][key]
        w = data["pipeline"]["warm"]["since_process_start"][key]
        rows.append(f"| pipeline: process start -> {key.replace('_', ' ')} | {c:.2f} | {w:.2f} |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--clip", default=DEFAULT_CLIP)
    p.add_argument("--int8", action="store_true", help="also the INT8 calibration / cached INT8 model")
    p.add_argument("--trt", action="store_true", help="also the TensorRT engine build (needs a GPU)")
    p.add_argument("--overlap", action="store_true",
                   help="also: could torch restore faces on the idle core while the export runs?")
    p.add_argument("--json", type=Path)
    p.add_argument("--no-save", action="store_true")
    child = p.add_argument_group("internal (one measurement in a fresh process)")
    child.add_argument("--child", choices=("split", "pipeline", "overlap"))
    child.add_argument("--weights", type=Path)
    child.add_argument("--cache", type=Path)
    child.add_argument("--out", type=Path)
    child.add_argument("--backend", default="auto")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        args.face = testdata_root() / FACE
        child = {"split": _child_split, "pipeline": _child_pipeline, "overlap": _child_overlap}[args.child]
        result = child(args)
        print(json.dumps(result, default=str))
        return 0
    data = measure(frames=args.frames, int8=args.int8, trt=args.trt, clip_rel=args.clip, overlap=args.overlap)
    print(table(data), file=sys.stderr)
    print(json.dumps(data["goals"], indent=2), file=sys.stderr)
    if not args.no_save:
        path = args.json or RESULTS / f"startup-{dt.date.today().isoformat()}-{socket.gethostname()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
