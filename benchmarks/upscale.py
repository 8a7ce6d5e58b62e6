"""Cost of the background upsampler per frame (x2 and x4, per backend and frame size) and its share of
the pipeline, measured in one run; plus the README picture.

    python -m benchmarks.upscale                                   # sizes 64x64,128x72; torch + onnxruntime
    python -m benchmarks.upscale --sizes 96x54 --repeats 3 --picture benchmarks/results/plots/upscale_x2.png

Networks are the released architectures (RRDBNet 23 blocks x2/x4, SRVGGNetCompact 32 convs) with
random weights - speed does not depend on the weights. Backends and networks are interleaved within
each repeat so that load from other processes hits all alike; the 1-minute load average is recorded.
The pipeline part runs the real pipeline (identity restorer) on the first frames of a low-resolution
clip with ``--upscale 2`` Lanczos and ``realesr-general-x4v3`` and times one GFP-GAN face (torch,
random weights, 512 px) in the same process, so the shares are ratios of one run.
Writes JSON to ``benchmarks/results/upscale-<date>-<host>.json``.
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
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
NETWORKS = {"realesrgan-x2": ("rrdbnet", 2), "realesrgan-x4": ("rrdbnet", 4), "realesr-general-x4v3": ("srvgg", 4)}


def _checkpoint(name: str, folder: Path) -> Path:
    from vidrestore.models.checkpoints import save_gfpgan
    from vidrestore.models.realesrgan import RRDBNet, SRVGGNetCompact

    arch, scale = NETWORKS[name]
    torch.manual_seed(0)
    net = RRDBNet(scale=scale) if arch == "rrdbnet" else SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4)
    return save_gfpgan(net.state_dict(), folder / f"{name}.pth", key="params" if arch == "srvgg" else "params_ema")


def per_frame(sizes: list[tuple[int, int]], backends: list[str], repeats: int, folder: Path) -> list[dict]:
    from vidrestore.config import ModelConfig
    from vidrestore.upscale.backends import create_upsampler
    from vidrestore.upscale.resize import resize_rgb
    from vidrestore.upscale.tiling import upscale_tiled

    runners = {}
    for name in NETWORKS:
        path = _checkpoint(name, folder)
        for backend in backends:
            net, info, _ = create_upsampler(path, model=ModelConfig(backend=backend, cache_dir=folder),
                                            device="cpu", window=512, max_batch=4)
            runners[(name, backend)] = (net, info)
    times: dict[tuple, list[float]] = {}
    rng = np.random.default_rng(0)
    for rep in range(repeats + 1):                        # repeat 0 is the warm-up
        for w, h in sizes:
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            for factor in (2, 4):
                t0 = time.perf_counter()
                resize_rgb(rgb, (w * factor, h * factor))
                times.setdefault(("lanczos", "opencv", factor, w, h), []).append(time.perf_counter() - t0)
            for (name, backend), (net, info) in runners.items():
                t0 = time.perf_counter()
                with torch.inference_mode():
                    upscale_tiled(x, net, scale=info.scale, align=info.align)
                times.setdefault((name, backend, info.scale, w, h), []).append(time.perf_counter() - t0)
    out = []
    for (name, backend, factor, w, h), ts in times.items():
        best = ts[1:] or ts
        out.append({"upsampler": name, "backend": backend, "factor": factor, "width": w, "height": h,
                    "s_per_frame_median": round(statistics.median(best), 5), "s_per_frame_min": round(min(best), 5),
                    "us_per_input_pixel": round(1e6 * statistics.median(best) / (w * h), 3)})
    return out


def pipeline_share(clip: Path, frames: int, folder: Path) -> dict:
    from tests.support.clips import remux_head
    from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig, UpscaleConfig
    from vidrestore.models.gfpgan import GFPGAN
    from vidrestore.pipeline import restore_video

    short = remux_head(clip, folder / "clip.mkv", frames=frames, all_audio=True)
    runs = {}
    for method in ("lanczos", "realesr-general-x4v3"):
        weights = str(_checkpoint(method, folder)) if method != "lanczos" else None
        cfg = RestoreConfig(model=ModelConfig(restorer="identity", cache_dir=folder),
                            upscale=UpscaleConfig(scale=2, upsampler=method, weights=weights),
                            encode=EncodeConfig(preset="veryfast"), overwrite=True)
        r = restore_video(short, folder / f"out-{method}.mkv", cfg)
        runs[method] = {"frames": r.frames_written, "faces": r.faces_restored, "wall_s": round(r.wall_seconds, 3),
                        "stage_seconds": {k: round(v, 4) for k, v in r.stage_seconds.items()}, "plan": r.upscale}
    model = GFPGAN(out_size=512).eval()
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        model(x)
    face_s = time.perf_counter() - t0
    for run in runs.values():
        busy = {k: v for k, v in run["stage_seconds"].items() if k != "restore"}
        network = face_s * run["faces"]
        total = sum(busy.values()) + network
        run["gfpgan_torch_s_per_face"] = round(face_s, 3)
        run["upscale_share_of_busy_time_with_gfpgan"] = round(busy.get("upscale", 0.0) / total, 4)
        run["upscale_share_without_network"] = round(busy.get("upscale", 0.0) / sum(busy.values()), 4)
    return runs


def picture(clip: Path, out_png: Path, folder: Path) -> dict:
    """Left: the input frame (nearest x2, to show its pixels); right: vidrestore --upscale 2 (identity)."""
    import cv2

    from tests.support.clips import remux_head
    from vidrestore.media.decode import VideoReader
    from vidrestore import cli

    short = remux_head(clip, folder / "pic.mkv", frames=12, all_audio=True)
    out = folder / "pic_x2.mkv"
    cli.run([str(short), "-o", str(out), "--restorer", "identity", "--upscale", "2", "--codec", "ffv1", "-q", "-y"])
    def last_frame(path):
        with VideoReader(path) as reader:
            return list(reader)[-1].rgb
    a, b = last_frame(short), last_frame(out)
    left = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_NEAREST)
    img = np.concatenate([left, np.full((b.shape[0], 8, 3), 255, np.uint8), b], 1)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return {"path": str(out_png), "bytes": out_png.stat().st_size, "input": list(a.shape), "output": list(b.shape)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.upscale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="64x64,128x72", help="frame sizes WxH")
    p.add_argument("--backends", default="torch,onnxruntime")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clip", type=Path, default=Path("../shared/testdata/edge/degraded_mpeg2_192px_blocky_face.mpg"))
    p.add_argument("--frames", type=int, default=8, help="frames of the clip for the pipeline share")
    p.add_argument("--picture", type=Path, default=None, help="also write the README picture here")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {"benchmark": "upscale", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
                  "threads": args.threads, "torch": torch.__version__, "weights": "random (released architectures)",
                  "loadavg_1min_start": load_start[0],
                  "per_frame": per_frame(sizes, args.backends.split(","), args.repeats, folder),
                  "pipeline": pipeline_share(args.clip, args.frames, folder)}
        if args.picture is not None:
            result["picture"] = picture(args.clip, args.picture, folder)
    result["loadavg_1min_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    print(text)
    out = args.out or RESULTS / f"upscale-{dt.date.today().isoformat()}-{socket.gethostname()[:12]}.json"
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
