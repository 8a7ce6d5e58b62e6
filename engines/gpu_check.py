"""One-shot engine check for a GPU machine: export, onnxruntime, TensorRT FP16, precision and speed.

``gpu_engine_check(weights_path, out_dir)`` returns (and writes to ``out_dir/gpu_engine_check.json``) a
JSON-able dict: environment, export timings, and per runner (torch CUDA fp32/fp16, onnxruntime on each
available provider, TensorRT fp16 when ``tensorrt`` imports) the faces/s at a fixed batch and the PSNR
and max-abs difference against torch FP32 on real face crops. A failing runner is recorded with its
error and does not stop the others. Meant for benchmarks/gpu_check.sh (about 2 minutes on an H100).

``python -m engines.gpu_check (--weights PATH | --random-weights) --out DIR [--testdata DIR] [--batch 8] [--no-cpu]``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

FACE_FILES = ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two [-1, 1] image batches after clamping (peak-to-peak 2)."""
    mse = float(((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(4.0 / mse)


def load_faces(n: int, size: int = 512, testdata: Path | None = None) -> torch.Tensor:
    """``n`` real aligned face crops (the GFP-GAN samples, alternately mirrored) in [-1, 1]; smooth
    deterministic noise when the test media are not there."""
    folder = testdata or (Path(os.environ["VIDRESTORE_TESTDATA"]) if os.environ.get("VIDRESTORE_TESTDATA")
                          else None)
    crops = []
    if folder is not None and all((folder / "images" / f).is_file() for f in FACE_FILES):
        import cv2
        import numpy as np

        for i in range(n):
            bgr = cv2.imread(str(folder / "images" / FACE_FILES[i % 2]), cv2.IMREAD_COLOR)
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
            if (i // 2) % 2:
                bgr = bgr[:, ::-1]
            rgb = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 127.5 - 1.0
            crops.append(torch.from_numpy(rgb).permute(2, 0, 1))
        return torch.stack(crops)
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(n, 3, size // 16, size // 16, generator=gen) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def _time_run(fn: Callable[[], torch.Tensor], *, batch: int, cuda: bool, warmup: int = 2,
              min_seconds: float = 2.0, max_iters: int = 50) -> dict:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    iters, start = 0, time.perf_counter()
    while iters < max_iters:
        fn()
        iters += 1
        if cuda:
            torch.cuda.synchronize()
        if time.perf_counter() - start >= min_seconds:
            break
    seconds = time.perf_counter() - start
    return {"batch": batch, "iters": iters, "seconds_per_batch": round(seconds / iters, 5),
            "faces_per_s": round(batch * iters / seconds, 2)}


def _compare(out: torch.Tensor, ref: torch.Tensor) -> dict:
    out, ref = out.float().cpu(), ref.float().cpu()
    return {"psnr_vs_torch_fp32_db": round(psnr(out, ref), 2),
            "max_abs_vs_torch_fp32": round(float((out - ref).abs().max()), 5)}


def _guard(results: dict, name: str, fn: Callable[[], dict], save: Callable[[], None] | None = None) -> None:
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as err:  # one broken runner must not hide the others' numbers
        results[name] = {"error": f"{type(err).__name__}: {err}",
                         "traceback": traceback.format_exc(limit=4)}
    results[name]["wall_s"] = round(time.perf_counter() - start, 2)
    if save is not None:       # after every runner: a run killed by a timeout keeps what finished
        save()


def gpu_engine_check(weights_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                     batch: int = 8, testdata: Path | None = None, tensorrt_max_batch: int = 16,
                     include_cpu: bool = True) -> dict:
    """Run every engine path this machine supports; see the module docstring. Never raises for a
    missing optional backend: it is recorded as ``"not installed"``."""
    from vidrestore.models import load_gfpgan

    from .export_onnx import ensure_onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    report: dict = {"environment": {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "cpu_count": os.cpu_count()}}
    try:
        import onnxruntime

        report["environment"]["onnxruntime"] = onnxruntime.__version__
        providers = list(onnxruntime.get_available_providers())
    except ImportError:
        providers = []
    report["environment"]["onnxruntime_providers"] = providers

    def save() -> None:
        (out_dir / "gpu_engine_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    save()
    device = "cuda" if cuda else "cpu"
    model = load_gfpgan(weights_path, device=device, dtype=torch.float32)
    faces = load_faces(batch, size=model.out_size, testdata=testdata)
    with torch.no_grad():
        ref = model(faces.to(device)).float().cpu()
    runs: dict = {}
    report["runs"] = runs

    def torch_run(dtype: torch.dtype) -> dict:
        m = model if dtype == torch.float32 else load_gfpgan(weights_path, device=device, dtype=dtype)
        x = faces.to(device, dtype)
        with torch.no_grad():
            out = m(x)
            result = _compare(out, ref) | _time_run(lambda: m(x), batch=batch, cuda=cuda)
        return result

    if cuda:
        _guard(runs, "torch_cuda_fp32", lambda: torch_run(torch.float32), save)
        _guard(runs, "torch_cuda_fp16", lambda: torch_run(torch.float16), save)

    export: dict = {}
    report["export"] = export
    onnx_paths: dict[str, Path] = {}
    for precision in ("fp32", "fp16"):
        def do_export(precision=precision) -> dict:
            start = time.perf_counter()
            path = ensure_onnx(weights_path, fp16=precision == "fp16", cache_dir=out_dir)
            onnx_paths[precision] = path
            return {"path": str(path), "seconds": round(time.perf_counter() - start, 2),
                    "bytes": path.stat().st_size}
        _guard(export, precision, do_export, save)

    from vidrestore.backends.onnxruntime import OnnxRuntimeBackend

    ort_targets = []
    if "CUDAExecutionProvider" in providers and cuda:
        ort_targets += [("cuda", "fp32"), ("cuda", "fp16")]
    if include_cpu and "CPUExecutionProvider" in providers:
        ort_targets += [("cpu", "fp32")]
    for ort_device, precision in ort_targets:
        def ort_run(ort_device=ort_device, precision=precision) -> dict:
            backend = OnnxRuntimeBackend(onnx_paths[precision], device=ort_device, precision=precision,
                                         max_batch=batch)
            n = batch if ort_device == "cuda" else 1  # CPU: one face keeps the check short
            x = faces[:n].to(ort_device)
            out = backend.restore(x)
            return (_compare(out, ref[:n]) | _time_run(lambda: backend.restore(x), batch=n,
                                                       cuda=ort_device == "cuda", warmup=1,
                                                       min_seconds=1.0 if ort_device == "cpu" else 2.0,
                                                       max_iters=3 if ort_device == "cpu" else 50)
                    | {"providers": list(backend.providers)})
        _guard(runs, f"onnxruntime_{ort_device}_{precision}", ort_run, save)
    if "CUDAExecutionProvider" not in providers:
        runs["onnxruntime_cuda"] = {"skipped": "onnxruntime build without CUDAExecutionProvider"}

    from .build_trt import import_tensorrt

    try:
        trt = import_tensorrt()
        report["environment"]["tensorrt"] = trt.__version__
    except Exception as err:
        trt = None
        runs["tensorrt_fp16"] = {"skipped": "tensorrt: not installed", "detail": str(err)}
    if trt is not None and cuda:
        def trt_run() -> dict:
            from vidrestore.backends.tensorrt import TensorRTBackend

            from .build_trt import build_engine

            start = time.perf_counter()
            engine = build_engine(str(weights_path), precision="fp16", min_batch=1, opt_batch=batch,
                                  max_batch=tensorrt_max_batch, cache_dir=out_dir)
            build_s = time.perf_counter() - start
            backend = TensorRTBackend(engine, device="cuda", precision="fp16")
            x = faces.to("cuda")
            out = backend.restore(x)
            odd = backend.restore(x[:3])  # a batch inside the profile but not the opt size
            bigger = backend.restore(torch.cat([x] * (tensorrt_max_batch // batch + 1)))  # split
            return (_compare(out, ref) | _time_run(lambda: backend.restore(x), batch=batch, cuda=True)
                    | {"engine": str(engine), "build_s": round(build_s, 1),
                       "batch3_max_abs_vs_batch": round(float((odd - out[:3]).abs().max()), 5),
                       "split_batch_max_abs_vs_batch": round(float((bigger[:batch] - out).abs().max()), 5)})
        _guard(runs, "tensorrt_fp16", trt_run, save)

    save()
    return report


def random_weights(folder: Path) -> Path:
    """A random-initialised 512 px GFP-GAN checkpoint in ``folder`` (speed does not depend on weights)."""
    from vidrestore.models import GFPGAN, save_gfpgan

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    return save_gfpgan(GFPGAN(512), folder / "gfpgan_random_512.pth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.gpu_check", description=__doc__.split("\n")[0])
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--weights", type=Path)
    weights.add_argument("--random-weights", action="store_true",
                         help="write a random-initialised 512 px checkpoint into --out and use it")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--testdata", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-cpu", action="store_true", help="skip the onnxruntime CPU run")
    args = parser.parse_args(argv)
    weights_path = random_weights(args.out) if args.random_weights else args.weights
    report = gpu_engine_check(weights_path, args.out, batch=args.batch, testdata=args.testdata,
                              include_cpu=not args.no_cpu)
    json.dump(report, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
