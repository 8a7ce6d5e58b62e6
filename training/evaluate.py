"""Command line: the paper's metrics of a folder of restored faces against a folder of ground truths.

    python -m training.evaluate --gt celeba_test/gt --restored results/ --metrics psnr,ssim,lpips,fid,niqe,deg,lmd \
        --json scores.json

Images are paired by file stem (``00001.png`` with ``00001.jpg``) and must have the same size. NIQE
looks at the restored image only. Network weights: the metric weights registry's cached files
(``python -m training.metrics.weights download ...``, or ``--download`` here), or explicit paths.
Exit codes: 2 bad input folders/images, 3 cannot write the JSON, 4 weights missing, 5 a metric's
package is not installed, 7 bad options.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from vidrestore.errors import InputError, OutputError, VidRestoreError

from .metrics.suite import LOWER_IS_BETTER, MetricSuite, MetricWeights, parse_names

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError("cannot read image", path=path)
    return np.ascontiguousarray(img[..., ::-1])


def pair_folders(gt: Path, restored: Path) -> list[tuple[str, Path, Path]]:
    """(stem, restored path, gt path) for every GT image; every one must have a restored counterpart."""
    def images(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            raise InputError("not a folder", path=folder)
        found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS}
        if not found:
            raise InputError(f"no images ({', '.join(IMAGE_EXTS)})", path=folder)
        return found
    g, r = images(gt), images(restored)
    missing = sorted(set(g) - set(r))
    if missing:
        raise InputError(f"{len(missing)} ground-truth images have no restored counterpart (e.g. {missing[0]})",
                         path=restored)
    return [(s, r[s], g[s]) for s in sorted(g)]


def evaluate(gt: Path, restored: Path, names: tuple[str, ...], *, weights: MetricWeights,
             device: str = "cpu") -> dict:
    pairs = pair_folders(gt, restored)
    suite = MetricSuite(names, weights=weights, device=device)
    for stem, rp, gp in pairs:
        a, b = read_rgb(rp), read_rgb(gp)
        if a.shape != b.shape:
            raise InputError(f"size {a.shape[1]}x{a.shape[0]} differs from the ground truth's "
                             f"{b.shape[1]}x{b.shape[0]}", path=rp)
        try:
            suite.add(a, b)
        except ValueError as exc:
            raise InputError(str(exc), path=rp) from None
    per = suite.per_image()
    return {"gt": str(gt), "restored": str(restored), "count": len(pairs), "metrics": suite.results(),
            "lower_is_better": {n: LOWER_IS_BETTER[n] for n in names},
            "per_image": {stem: {n: v[i] for n, v in per.items()} for i, (stem, _, _) in enumerate(pairs)}}


def _plain(v):
    """Strict JSON: infinite values (PSNR of identical images) become the string "inf"."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


def write_json(path: Path, data: dict) -> None:
    """Atomic: a temporary file in the same folder, renamed into place. PSNR of identical images is
    written as the string "inf"."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the JSON ({exc.strerror})", path=path) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description="Face-restoration metrics.")
    ap.add_argument("--gt", required=True, type=Path, help="folder of ground-truth faces")
    ap.add_argument("--restored", required=True, type=Path, help="folder of restored faces (same stems)")
    ap.add_argument("--metrics", default="psnr,ssim,lpips,fid,niqe,deg,lmd",
                    help="comma list of psnr, ssim, lpips, fid, niqe, deg, lmd")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (atomic)")
    ap.add_argument("--alexnet", default=None, help="LPIPS backbone (torchvision AlexNet .pth) or 'random'")
    ap.add_argument("--inception", default=None, help="FID Inception weights (pytorch-fid .pth) or 'random'")
    ap.add_argument("--arcface", default=None, help="arcface_resnet18.pth for Deg, or 'random'")
    ap.add_argument("--niqe-params", default=None, help="niqe_pris_params.npz")
    ap.add_argument("--download", action="store_true", help="download registry weights that are not cached")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        names = parse_names(args.metrics)
        weights = MetricWeights(alexnet=args.alexnet, inception_fid=args.inception, arcface_resnet18=args.arcface,
                                niqe_pris_params=args.niqe_params, download=args.download)
        result = evaluate(args.gt, args.restored, names, weights=weights, device=args.device)
        if args.json is not None:
            write_json(args.json, result)
        print(f"{result['count']} images: " + ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items()))
        return 0
    except VidRestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


if __name__ == "__main__":
    raise SystemExit(main())
