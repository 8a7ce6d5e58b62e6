"""INT8 settings sweep: speed and PSNR vs FP32 of onnxruntime static INT8 on real aligned faces.

    python -m benchmarks.int8_quality --threads 2 [--configs baseline,reduce_range,...]

Weights: the realistic random-initialised 512 px checkpoint of tests/support/checkpoints.py.
Calibration: aligned crops from the first frame of two clips (plus flipped copies, like the backend).
Held out (PSNR and timing): the two aligned photos of the testdata and crops from later frames.
Torch FP32 (our model), onnxruntime FP32 and each INT8 variant run in this process with the same
thread count. Writes JSON to benchmarks/results/int8_quality-<date>-<host>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
CLIPS = ("clips/lp_d10_talking_512_audio.mp4", "clips/lp_s18_interview_1280x720_audio.mp4")


def clip_crops(testdata: Path, clip: str, frames: tuple[int, ...]) -> list[np.ndarray]:
    """(3, 512, 512) float32 crops in [-1, 1] of the largest face of each frame."""
    from tests.support.face_frames import read_frames
    from vidrestore.faces.align import crops_to_tensor, similarity_from_landmarks, warp_crops
    from vidrestore.faces.detect import RetinaFaceDetector

    det = RetinaFaceDetector()
    out = []
    for frame in read_frames(testdata / clip, frames):
        faces = det.detect([frame])[0]
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        m = similarity_from_landmarks(face.landmarks, crop_size=512)
        out.append(crops_to_tensor(warp_crops(frame, m[None]))[0].numpy())
    return out


def variants() -> dict[str, object]:
    from vidrestore.backends.int8 import DEFAULT_SETTINGS

    default = replace(DEFAULT_SETTINGS, calibration_faces=4)
    base = replace(default, fp32_decoder_below=0)      # onnxruntime's usual u8s8, every Conv INT8
    return {
        "default": default,
        "baseline": base,
        "decoder_fp32_below_32": replace(default, fp32_decoder_below=32),
        "decoder_fp32_below_128": replace(default, fp32_decoder_below=128),
        "default_percentile": replace(default, calibration="percentile"),
        "reduce_range": replace(base, reduce_range=True),
        "qoperator": replace(base, quant_format="qoperator"),
        "per_tensor": replace(base, per_channel=False),
        "s8s8": replace(base, activation_type="int8"),
        "u8u8": replace(base, weight_type="uint8"),
        "s8s8_qoperator": replace(base, activation_type="int8", quant_format="qoperator"),
        "keep_torgb_fp32": replace(base, exclude_patterns=("toRGB", "to_rgb")),
        "keep_first_last_fp32": replace(base, exclude_patterns=("conv_body_first", "toRGB", "to_rgb")),
        "percentile": replace(base, calibration="percentile"),
    }


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="default,baseline,u8u8,decoder_fp32_below_32,decoder_fp32_below_128",
                   help=",".join(variants()))
    p.add_argument("--testdata", type=Path, default=Path(os.environ.get("VIDRESTORE_TESTDATA", "")))
    p.add_argument("--work", type=Path, default=None, help="folder for checkpoint/ONNX (default: temp)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tests.support.checkpoints import load_face, psnr, write_checkpoint
    from vidrestore.backends.int8 import calibration_crops, quantize
    from vidrestore.backends.onnxruntime import OnnxRuntimeBackend, ensure_onnx
    from vidrestore.models import load_gfpgan

    work = args.work or Path(tempfile.mkdtemp(prefix="int8q-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "random_512.pth"
    if not ckpt.is_file():
        write_checkpoint(ckpt, 512, seed=0)
    fp32 = ensure_onnx(ckpt, cache_dir=work)
    td = args.testdata
    d10, s18 = (clip_crops(td, CLIPS[0], (0, 90)), clip_crops(td, CLIPS[1], (0, 90)))
    calib_first = np.stack([d10[0], s18[0]])
    held = {"Adele": load_face(td / "images/gfpgan_cropped_Adele_512.png")[0].numpy(),
            "Julia_Roberts": load_face(td / "images/gfpgan_cropped_Julia_Roberts_512.png")[0].numpy(),
            "lp_d10_f90": d10[1], "lp_s18_f90": s18[1]}
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    ref = OnnxRuntimeBackend(fp32, threads=args.threads)
    ref.restore(torch.from_numpy(held["Adele"][None]))  # warm-up
    fp32_out, fp32_t = {}, []
    for name, x in held.items():
        out, t = _timed(ref.restore, torch.from_numpy(x[None]))
        fp32_out[name], _ = out, fp32_t.append(t)
    log(f"onnxruntime fp32: {np.median(fp32_t):.2f} s/face")
    del ref
    model = load_gfpgan(ckpt, device="cpu")
    with torch.inference_mode():
        model(torch.from_numpy(held["Adele"][None]))
        torch_t = [_timed(model, torch.from_numpy(held[n][None]))[1] for n in ("Julia_Roberts", "lp_d10_f90")]
        torch_out = model(torch.from_numpy(held["Adele"][None]))
    log(f"torch fp32: {np.median(torch_t):.2f} s/face; torch vs ort fp32 "
        f"{psnr(torch_out, fp32_out['Adele']):.1f} dB")
    del model

    rows = []
    table = variants()
    for name in [c for c in args.configs.split(",") if c]:
        settings = table[name]
        crops, flipped = calibration_crops(calib_first, settings.calibration_faces)
        cache = work / f"calib-{settings.calibration}.json"
        path = work / f"int8-{name}.onnx"
        _, qt = _timed(quantize, fp32, path, crops, settings, calibration_cache=cache)
        be = OnnxRuntimeBackend(path, threads=args.threads, precision="int8")
        be.restore(torch.from_numpy(held["Adele"][None]))
        scores, times = {}, []
        for face, x in held.items():
            out, t = _timed(be.restore, torch.from_numpy(x[None]))
            times.append(t)
            scores[face] = round(psnr(out, fp32_out[face]), 2)
        row = {"config": name, "settings": asdict(settings), "quantize_s": round(qt, 1),
               "s_per_face": round(float(np.median(times)), 3), "psnr_db": scores,
               "min_psnr_db": min(scores.values()),
               "speedup_vs_ort_fp32": round(float(np.median(fp32_t) / np.median(times)), 2),
               "speedup_vs_torch_fp32": round(float(np.median(torch_t) / np.median(times)), 2)}
        rows.append(row)
        log(json.dumps(row))
        del be
    report = {"benchmark": "int8_quality", "host": socket.gethostname(), "threads": args.threads,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "load_avg_at_end": os.getloadavg(), "calibration": "lp_d10 f0 + lp_s18 f0 + flipped copies",
              "ort_fp32_s_per_face": round(float(np.median(fp32_t)), 3),
              "torch_fp32_s_per_face": round(float(np.median(torch_t)), 3), "int8": rows}
    text = json.dumps(report, indent=2)
    print(text)
    out = args.out or RESULTS / f"int8_quality-{dt.date.today().isoformat()}-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
