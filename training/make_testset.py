"""Command line: a synthetic test set made as the paper's CelebA-Test (GFP-GAN, Sec. 4.1): every
ground-truth face (e.g. the 3,000 test-partition CelebA-HQ images) resized to 512x512 and degraded with
the training model y = [(x * k_sigma) downsampled by r + n_delta]_JPEG_q (resized back), the parameters
drawn from sigma in [0.2, 10], r in [1, 8], delta in [0, 15], q in [60, 100] (isotropic/anisotropic
kernels as in training; no colour jitter or gray conversion).

    python -m training.make_testset --src celeba_hq_test/ --out celeba_test/ --seed 0

writes ``<out>/gt/<stem>.png``, ``<out>/lq/<stem>.png`` and ``<out>/degradations.json`` (each image's
parameters). Deterministic: image i (in sorted file order) uses ``numpy.random.default_rng([seed, i])``,
so the same seed gives byte-identical files. The set is built in a temporary folder beside ``--out`` and
renamed into place; an existing non-empty ``--out`` is refused (exit 3).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidrestore.errors import OutputError, VidRestoreError

from .config import DegradationConfig
from .dataset import list_images, read_image
from .degradations import apply_degradation, sample_params

CELEBA_TEST = DegradationConfig(blur_sigma=(0.2, 10.0), downsample_range=(1.0, 8.0), noise_range=(0.0, 15.0),
                                jpeg_range=(60.0, 100.0), color_jitter_prob=0.0, color_jitter_pt_prob=0.0,
                                gray_prob=0.0)


def _write_png(path: Path, img: np.ndarray) -> None:
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(path), np.ascontiguousarray(u8[..., ::-1])):
        raise OutputError("cannot write image", path=path)


def make_testset(src: Path, out: Path, *, seed: int, size: int = 512, limit: int | None = None,
                 degradation: DegradationConfig = CELEBA_TEST) -> int:
    """Build the set; returns the number of faces."""
    paths = list_images(src)[:limit]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError("output folder exists and is not empty", path=out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", path=out) from None
    try:
        (tmp / "gt").mkdir()
        (tmp / "lq").mkdir()
        record = {"seed": seed, "size": size, "protocol": "GFP-GAN CelebA-Test", "images": {}}
        for i, p in enumerate(paths):
            rng = np.random.default_rng([seed, i])
            gt = read_image(p, size)
            params = sample_params(degradation, rng)
            lq = apply_degradation(gt, params, rng)
            _write_png(tmp / "gt" / f"{p.stem}.png", gt)
            _write_png(tmp / "lq" / f"{p.stem}.png", lq)
            sx, sy, theta = params.sigma
            record["images"][p.stem] = {"sigma": [sx, sy, theta], "scale": params.scale,
                                        "noise": params.noise_sigma, "jpeg_quality": params.jpeg_quality}
        (tmp / "degradations.json").write_text(json.dumps(record, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(paths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.make_testset", description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, type=Path, help="folder of ground-truth faces (CelebA-HQ / FFHQ)")
    ap.add_argument("--out", required=True, type=Path, help="new folder for gt/, lq/ and degradations.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    args = ap.parse_args(argv)
    try:
        n = make_testset(args.src, args.out, seed=args.seed, size=args.size, limit=args.limit)
    except VidRestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"wrote {n} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
