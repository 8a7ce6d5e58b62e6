"""GPU throughput of the whole pipeline and of the model alone, on one CUDA device.

    python -m benchmarks.gpu_pipeline [--out PATH] [--quick] [--clip CLIP] [--dry-run]

Measures, with a random-initialised 512 px GFP-GAN (default init, saved with save_gfpgan; the
speed does not depend on the weights):

* pipeline: ``restore_video`` on a real 1080p clip (default clips/lp_s32_interview_1080p_silentaudio.mp4,
  one face per frame) with the torch backend, batch 8, fp16 and fp32, kernels "cupy" and "torch"
  (GpuImageOps, the torch RetinaFace and the model hook all follow the choice): fps, wall seconds,
  busy ms per frame of every stage (Report.stage_seconds) and the CPU encoder's share of the wall time;
* model: faces/s of TorchBackend.restore at batch 1/8/16, fp16/fp32, kernels cupy/torch, with the
  fraction of the H100 SXM's dense FP16 tensor peak (989 TFLOP/s; 395.5 GFLOP per 512 px face);
* kernels: each CuPy kernel against its torch reference (engines.kernels_bench.benchmark_kernels).

Every section is guarded: a failure is recorded as {"error": ...} and the next section runs. The
JSON is rewritten after each section (so a timeout still leaves the finished parts) and printed at
the end. ``--dry-run`` (or no CUDA) runs nothing on a GPU and writes the skeleton with the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
CLIP = "clips/lp_s32_interview_1080p_silentaudio.mp4"
GFLOP_PER_FACE = 395.5
PEAK_FP16_TFLOPS = 989.0            # H100 SXM dense FP16/BF16 tensor peak
SECTIONS = ("environment", "pipeline", "model", "kernels")


def find_clip(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    for root in (os.environ.get("VIDRESTORE_TESTDATA"), REPO / ".gpudata", REPO.parent / "shared" / "testdata"):
        if root and (Path(root) / CLIP).is_file():
            return Path(root) / CLIP
    return None


def skeleton() -> dict[str, Any]:
    return {"benchmark": "gpu_pipeline", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), **{s: None for s in SECTIONS}}


def _guard(result: dict[str, Any], name: str, fn: Callable[[], Any], out: Path | None) -> None:
    t0 = time.perf_counter()
    try:
        result[name] = fn()
    except Exception as err:  # noqa: BLE001 - record and go on with the next section
        result[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
    print(f"[gpu_pipeline] {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    _write(result, out)


def _write(result: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str))


def environment() -> dict[str, Any]:
    import torch
    env: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__,
                           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                   memory_gib=round(p.total_memory / 2 ** 30, 1))
    for mod in ("cupy", "av", "cv2", "onnxruntime", "onnx", "PyNvVideoCodec"):
        try:
            m = __import__(mod)
            env[f"{mod}_version"] = getattr(m, "__version__", "?")
        except Exception as err:  # noqa: BLE001
            env[f"{mod}_version"] = f"missing ({type(err).__name__})"
    try:
        from vidrestore.models.retinaface import weights_path
        env["retinaface_weights"] = str(weights_path())
    except Exception as err:  # noqa: BLE001
        env["retinaface_weights"] = f"missing ({err})"
    return env


def make_checkpoint(folder: Path) -> Path:
    import torch
    from vidrestore.models import GFPGAN, save_gfpgan
    torch.manual_seed(0)
    path = folder / "gfpgan_random_512.pth"
    save_gfpgan(GFPGAN(512), path)
    return path


def pipeline(ckpt: Path, clip: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    import torch
    from vidrestore.backends.torch import TorchBackend
    from vidrestore.config import ModelConfig, RestoreConfig
    from vidrestore.pipeline import restore_video

    runs: dict[str, Any] = {}
    combos = [(p, k) for p in (("fp16",) if quick else ("fp16", "fp32")) for k in ("cupy", "torch")]
    warm = True
    for precision, kernels in combos:
        key = f"{precision}-{kernels}"
        try:
            backend = TorchBackend(ckpt, device="cuda", precision=precision, max_batch=8, kernels=kernels)
            cfg = RestoreConfig(model=ModelConfig(backend="torch", device="cuda", precision=precision,
                                                  batch=8, kernels=kernels), overwrite=True)
            if warm:       # cuDNN autotuning, NVRTC compiles, first CUDA allocations
                restore_video(clip, work / "warm.mp4", cfg, backend=backend)
                warm = False
            torch.cuda.synchronize()
            rep = restore_video(clip, work / f"{key}.mp4", cfg, backend=backend)
            frames = max(rep.frames_written, 1)
            runs[key] = {
                "frames": rep.frames_written, "faces_restored": rep.faces_restored,
                "wall_s": round(rep.wall_seconds, 3), "fps": round(rep.fps, 2),
                "stage_ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in rep.stage_seconds.items()},
                "encoder_share_of_wall": round(rep.stage_seconds.get("encode", 0.0) / rep.wall_seconds, 3),
                "backend_kernels": getattr(backend, "kernels", "?"), "warnings": rep.warnings,
            }
            del backend
            torch.cuda.empty_cache()
        except Exception as err:  # noqa: BLE001
            runs[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-1500:]}
    return {"clip": str(clip), "batch": 8, "runs": runs}


def model(ckpt: Path, *, quick: bool, device: str = "cuda", batches: tuple[int, ...] | None = None,
          precisions: tuple[str, ...] = ("fp16", "fp32"), kernel_choices: tuple[str, ...] = ("cupy", "torch"),
          reps: int | None = None) -> dict[str, Any]:
    import torch
    from vidrestore.backends.torch import TorchBackend

    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rows: dict[str, Any] = {}
    batches = batches or ((1, 8) if quick else (1, 8, 16))
    reps = reps or (5 if quick else 10)
    for precision in precisions:
        for kernels in kernel_choices:
            try:
                backend = TorchBackend(ckpt, device=device, precision=precision, max_batch=max(batches),
                                       kernels=kernels)
            except Exception as err:  # noqa: BLE001
                rows[f"{precision}-{kernels}"] = {"error": f"{type(err).__name__}: {err}"}
                continue
            for b in batches:
                key = f"{precision}-{kernels}-b{b}"
                try:
                    x = torch.rand(b, 3, 512, 512, device=device) * 2 - 1
                    for _ in range(1 if not cuda else 3):
                        backend.restore(x)
                    sync()
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        backend.restore(x)
                    sync()
                    ms = 1000.0 * (time.perf_counter() - t0) / reps
                    fps = 1000.0 * b / ms
                    rows[key] = {"ms_per_batch": round(ms, 3), "faces_per_s": round(fps, 2),
                                 "tflops": round(fps * GFLOP_PER_FACE / 1000, 2),
                                 "fraction_of_fp16_peak": round(fps * GFLOP_PER_FACE / 1000 / PEAK_FP16_TFLOPS, 5),
                                 "backend_kernels": backend.kernels}
                    if cuda:
                        rows[key]["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
                except Exception as err:  # noqa: BLE001
                    rows[key] = {"error": f"{type(err).__name__}: {err}"}
            del backend
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    return {"gflop_per_face": GFLOP_PER_FACE, "peak_fp16_tflops": PEAK_FP16_TFLOPS, "repeats": reps,
            "rows": rows}


def kernels(*, quick: bool) -> dict[str, Any]:
    from engines.kernels_bench import benchmark_kernels
    return benchmark_kernels("cuda", repeats=10 if quick else 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--clip", default=None, help=f"1080p clip (default: {CLIP} under the test data)")
    ap.add_argument("--quick", action="store_true", help="fp16 pipeline only, fewer batches and repeats")
    ap.add_argument("--dry-run", action="store_true", help="no GPU work: environment and the JSON skeleton")
    args = ap.parse_args(argv)

    result = skeleton()
    _guard(result, "environment", environment, args.out)
    env = result["environment"] or {}
    if args.dry_run or not env.get("cuda_available"):
        reason = "dry run" if args.dry_run else "no CUDA device"
        for s in SECTIONS[1:]:
            result[s] = {"skipped": reason}
        _write(result, args.out)
        print(json.dumps(result, indent=2, default=str))
        return 0

    clip = find_clip(args.clip)
    with tempfile.TemporaryDirectory(prefix="gpu_pipeline_") as tmp:
        work = Path(tmp)
        ckpt = make_checkpoint(work)
        if clip is None or not clip.is_file():
            result["pipeline"] = {"skipped": f"clip not found ({CLIP}); set VIDRESTORE_TESTDATA"}
        else:
            _guard(result, "pipeline", lambda: pipeline(ckpt, clip, work, quick=args.quick), args.out)
        _guard(result, "model", lambda: model(ckpt, quick=args.quick), args.out)
    _guard(result, "kernels", lambda: kernels(quick=args.quick), args.out)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(result, args.out)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
