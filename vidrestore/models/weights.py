"""Known GFP-GAN weight releases (and the face parser of ``--mask parse``), the local weights cache,
and verified downloads.

Weights live in ``weights_home() / "weights"`` (``$VIDRESTORE_HOME`` or ``~/.cache/vidrestore``).
Downloads go to a temporary file in that folder, are checked against the published size and
SHA-256 (when known), and are renamed into place only when they match.

Sizes and SHA-256 digests of the releases are not published by the authors; the values below are
the ones recorded independently by several projects that pin these files (download scripts and
model managers of Stable Diffusion UIs, ReActor, GFPGAN ONNX demos), all agreeing.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..errors import CheckpointError, WeightsUnavailable

ProgressFn = Callable[[int, int | None], None]   # (bytes done, total bytes or None)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightSpec:
    name: str            # release name, e.g. "GFPGANv1.4"
    url: str             # where the authors publish it
    filename: str        # file name in the cache folder
    size: int | None     # bytes, None when unknown (then not checked)
    sha256: str | None   # lowercase hex digest, None when unknown (then not checked)
    option: str = "--weights"   # the command-line option that takes a path instead


KNOWN_WEIGHTS: Mapping[str, WeightSpec] = MappingProxyType({
    "GFPGANv1.3": WeightSpec(
        name="GFPGANv1.3",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
        filename="GFPGANv1.3.pth",
        size=348_632_874,
        sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
    ),
    "GFPGANv1.4": WeightSpec(
        name="GFPGANv1.4",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth",
        filename="GFPGANv1.4.pth",
        size=348_632_874,
        sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
    ),
    # Real-ESRGAN background upsamplers (--bg-upsampler). The authors publish no checksums either; these
    # sizes and digests are the ones recorded independently by several projects that pin the release files
    # (model managers, download scripts, licence audits), all agreeing. Checkpoint keys: 'params_ema' in
    # RealESRGAN_x4plus, 'params' in realesr-general-x4v3 (x2plus: not recorded; the loader takes either).
    "RealESRGAN_x2plus": WeightSpec(
        name="RealESRGAN_x2plus",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
        filename="RealESRGAN_x2plus.pth",
        size=67_061_725,
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        option="--bg-weights",
    ),
    "RealESRGAN_x4plus": WeightSpec(
        name="RealESRGAN_x4plus",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        filename="RealESRGAN_x4plus.pth",
        size=67_040_989,
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        option="--bg-weights",
    ),
    "realesr-general-x4v3": WeightSpec(
        name="realesr-general-x4v3",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth",
        filename="realesr-general-x4v3.pth",
        size=4_885_111,
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        option="--bg-weights",
    ),
    # Face parsing for --mask parse (facexlib's ParseNet-512, what GFP-GAN's helper uses with use_parse).
    # Size and SHA-256 as recorded independently by several projects that pin this file (model
    # manifests, PKGBUILDs, download scripts), all agreeing; facexlib itself publishes neither.
    "parsenet": WeightSpec(
        name="parsenet",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
        filename="parsing_parsenet.pth",
        size=85_331_193,
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        option="--parse-weights",
    ),
    # Evaluation metrics (python -m training.evaluate; option names are its flags). Provenance of each value:
    # training/metrics/weights.py. arcface_resnet18: no published size or hash was found, left unchecked.
    "alexnet": WeightSpec(
        name="alexnet", url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        filename="alexnet-owt-7be5be79.pth", size=244_408_911,
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", option="--alexnet"),
    "inception_fid": WeightSpec(
        name="inception_fid",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        filename="pt_inception-2015-12-05-6726825d.pth", size=95_628_359,
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", option="--inception"),
    "arcface_resnet18": WeightSpec(
        name="arcface_resnet18",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",
        filename="arcface_resnet18.pth", size=None, sha256=None, option="--arcface"),           # unverified: none published
    "niqe_pris_params": WeightSpec(
        name="niqe_pris_params",
        url="https://raw.githubusercontent.com/XPixelGroup/BasicSR/v1.4.2/basicsr/metrics/niqe_pris_params.npz",
        filename="niqe_pris_params.npz", size=11_850,
        sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296", option="--niqe-params"),
})


def weights_home() -> Path:
    """``$VIDRESTORE_HOME`` or ``~/.cache/vidrestore`` (not created here)."""
    env = os.environ.get("VIDRESTORE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidrestore"


def weights_dir() -> Path:
    return weights_home() / "weights"


def _spec(name: str) -> WeightSpec:
    if name in KNOWN_WEIGHTS:
        return KNOWN_WEIGHTS[name]
    lowered = {k.lower(): v for k, v in KNOWN_WEIGHTS.items()}
    key = name.lower().removesuffix(".pth")
    if key in lowered:
        return lowered[key]
    known = ", ".join(KNOWN_WEIGHTS)
    raise CheckpointError(f"unknown weights {name!r}: not an existing file and not a known release "
                          f"(known: {known}); pass a path to a .pth file or one of the known names")


def _looks_like_path(text: str) -> bool:
    """A folder separator, or a .pth name that is not a known release's file name."""
    if os.sep in text or (os.altsep is not None and os.altsep in text):
        return True
    known = {k.lower() for k in KNOWN_WEIGHTS}
    return text.lower().endswith(".pth") and text[:-4].lower() not in known


def resolve_weights(name_or_path: str, *, download: bool = True) -> Path:
    """An existing file path -> that path; a known release name -> its cached file (downloaded when
    missing and ``download``); a missing path or unknown name -> CheckpointError."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise CheckpointError("weights path is not a file", path=path)
    if _looks_like_path(name_or_path):
        raise CheckpointError("weights file not found", path=path)
    spec = _spec(name_or_path)
    cached = weights_dir() / spec.filename
    if cached.is_file():
        return cached
    if not download:
        raise WeightsUnavailable(
            f"{spec.name} is not cached and downloading is disabled; fetch {spec.url} and save it as "
            f"{cached}, or pass {spec.option} PATH", path=cached)
    return download_weights(spec.name)


def _verify(spec: WeightSpec, path: Path, size: int, digest: str) -> None:
    if spec.size is not None and size != spec.size:
        raise WeightsUnavailable(
            f"download of {spec.url} is incomplete or wrong: {size} bytes, expected {spec.size}; "
            f"try again, or fetch it yourself and pass --weights PATH", path=path)
    if spec.sha256 is not None and digest != spec.sha256.lower():
        raise WeightsUnavailable(
            f"checksum mismatch for {spec.url}: SHA-256 {digest}, expected {spec.sha256}; the file "
            f"was not kept", path=path)


def download_weights(name: str | WeightSpec, *, force: bool = False, progress: ProgressFn | None = None) -> Path:
    """Download a known release (or any ``WeightSpec``, e.g. training's metric networks) into the
    cache (verified, atomic). Returns the cached path.

    Raises WeightsUnavailable (offline, HTTP error, size/checksum mismatch) with the exact URL and
    target path to fetch by hand, and CheckpointError for an unknown name.
    """
    spec = name if isinstance(name, WeightSpec) else _spec(name)
    folder = weights_dir()
    target = folder / spec.filename
    if target.is_file() and not force:
        return target
    manual = f"download {spec.url} yourself and save it as {target}, or pass {spec.option} PATH"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsUnavailable(f"cannot create the weights folder ({exc.strerror}); {manual}",
                                 path=folder) from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.sha256()
        done = 0
        try:
            request = urllib.request.Request(spec.url, headers={"User-Agent": "vidrestore"})
            with urllib.request.urlopen(request, timeout=30) as response, os.fdopen(fd, "wb") as out:
                fd = -1
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else spec.size
                if progress is not None:
                    progress(0, total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsUnavailable(f"cannot download {spec.name} ({reason}); {manual}",
                                     path=target) from exc
        finally:
            if fd != -1:
                os.close(fd)
        _verify(spec, target, done, hasher.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def list_cached() -> list[tuple[str, Path, int]]:
    """(name, path, size in bytes) of every .pth file in the cache folder, sorted by name; known
    releases are named as in KNOWN_WEIGHTS, other files by their stem. Partial downloads are skipped."""
    folder = weights_dir()
    if not folder.is_dir():
        return []
    by_file = {spec.filename: spec.name for spec in KNOWN_WEIGHTS.values()}
    found = [(by_file.get(p.name, p.stem), p, p.stat().st_size)
             for p in folder.glob("*.pth") if p.is_file() and not p.name.startswith(".")]
    return sorted(found)
