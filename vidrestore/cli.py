"""Command line: argument parsing, progress display, exit codes. The only module that exits.

    vidrestore INPUT -o OUTPUT [options]          restore a video (or a still image)
    vidrestore weights download [NAME] | list     manage the released GFP-GAN (and parsenet) weights
    vidrestore engines build --weights ...        prebuild a TensorRT engine
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import VidRestoreError

SUBCOMMANDS = ("weights", "engines")


def _restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidrestore",
        description="Restore every face in a video with GFP-GAN, keeping length, timestamps, "
                    "rotation and audio. Sub-commands: 'vidrestore weights --help', "
                    "'vidrestore engines --help'.")
    p.add_argument("input", nargs="+",
                   help="input video or image, '-' (standard input), an image sequence ('frames/%%06d.png', "
                        "a folder of images, or a quoted glob); several files or a folder of videos: OUTPUT "
                        "is a folder")
    p.add_argument("-o", "--output", required=True,
                   help="output video or image, '-' (standard output, with -f), an image sequence "
                        "('out/%%06d.png' or a folder ending in '/'), or a folder for several inputs")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace OUTPUT if it exists")
    r = p.add_argument_group("range and scale-out")
    r.add_argument("--start", help="restore from this time: seconds, HH:MM:SS.mmm or a frame number (300f)")
    r.add_argument("--end", help="restore up to (not including) this time, same forms as --start")
    r.add_argument("--keep-outside", action="store_true",
                   help="write the whole video; only [--start, --end) is restored, the rest re-encoded as is")
    r.add_argument("--workers", type=int, default=1,
                   help="parallel workers (Ray actors); 1 = this process; N > 1 starts a local Ray runtime")
    r.add_argument("--ray-address", help="join a Ray cluster (ADDR, or 'auto' for $RAY_ADDRESS)")
    r.add_argument("--chunk-seconds", type=float, default=90.0, help="length of a chunk with --workers")
    r.add_argument("--job-dir", type=Path, help="chunks and manifest (default: a hidden folder beside OUTPUT)")
    r.add_argument("--resume", action="store_true", help="reuse the finished chunks of an interrupted run")
    m = p.add_argument_group("model")
    m.add_argument("--weights", default="GFPGANv1.4",
                   help="release name (GFPGANv1.3, GFPGANv1.4; downloaded on first use) or a .pth path")
    m.add_argument("--restorer", choices=["gfpgan", "identity"], default="gfpgan",
                   help="identity: run everything except the network (inspect alignment and paste)")
    m.add_argument("--backend", default="auto",
                   choices=["auto", "torch", "onnxruntime", "tensorrt", "torch-tensorrt"])
    m.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    m.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8"],
                   help="fp16 on CUDA; bf16 on CPUs with AVX-512 BF16/AMX; int8: onnxruntime on the CPU, "
                        "calibrated on the first faces of the video and cached (never chosen silently)")
    m.add_argument("--batch", type=int, default=0,
                   help="faces per network call (default: 1 on the CPU, where batching is slower per face; "
                        "8 on a GPU)")
    m.add_argument("--threads", type=int, default=0, help="CPU threads for the network (0 = all)")
    m.add_argument("--kernels", default="auto", choices=["auto", "cupy", "torch"],
                   help="custom CUDA kernels (CuPy) or plain torch ops on the GPU")
    f = p.add_argument_group("faces")
    f.add_argument("--strength", type=float, default=1.0, help="blend of restored (1) and original (0)")
    f.add_argument("--mask", default="face", choices=["face", "parse", "box"],
                   help="what is pasted back: the template face outline (face), a face-parsing network's "
                        "face classes on each restored face (parse; weights downloaded on first use), or "
                        "the whole aligned square (box)")
    f.add_argument("--mask-blur", type=float, default=0.03,
                   help="face/parse mask edge softness: Gaussian sigma as a fraction of the face size")
    f.add_argument("--mask-erode", type=float, default=0.02,
                   help="face/parse mask shrink before blurring, as a fraction of the face size")
    f.add_argument("--color-match", default="none", choices=["none", "lab"],
                   help="lab: match the restored face's Lab mean and spread to the original's")
    f.add_argument("--parse-weights", default="parsenet",
                   help="face parser for --mask parse: 'parsenet' (downloaded on first use) or a .pth path")
    f.add_argument("--smoothing", type=float, default=1.0, help="temporal smoothing strength, 0 = off")
    f.add_argument("--smoothing-method", default="rts", choices=["rts", "poly"],
                   help="fixed-lag Kalman (RTS) smoother, or the earlier local polynomial fit")
    f.add_argument("--interpolation", default="lanczos", choices=["linear", "cubic", "lanczos"],
                   help="resampling of the warp to the crop and back (lanczos: sharpest)")
    f.add_argument("--faces", default="all", choices=["all", "largest", "center"],
                   help="restore every face, or per frame only the largest / most central track")
    f.add_argument("--track-ids", default="",
                   help="restore only these tracks, e.g. 1,4 (IDs as the report's tracks list them)")
    f.add_argument("--aligned", action="store_true",
                   help="input frames are aligned face crops: restore each whole frame, no detection")
    f.add_argument("--min-face", type=int, default=32, help="leave faces smaller than this (pixels)")
    f.add_argument("--detect-every", type=int, default=1, help="detect on every k-th frame")
    f.add_argument("--det-threshold", type=float, default=0.8, help="detector score threshold")
    f.add_argument("--max-faces", type=int, default=50,
                   help="restore at most this many faces per frame, the largest (bounded work)")
    f.add_argument("--max-misses", type=int, default=10, help="frames a track survives unseen")
    u = p.add_argument_group("output resolution")
    u.add_argument("--upscale", type=float, default=1.0, metavar="S",
                   help="output size = S x input (any S >= 1: 1.5, 2, 4); faces are pasted into the enlarged frame")
    u.add_argument("--bg-upsampler", default=None,
                   choices=["lanczos", "realesrgan-x2", "realesrgan-x4", "realesr-general-x4v3", "none"],
                   help="what enlarges the background (default: lanczos when S > 1; none = bilinear); the "
                        "Real-ESRGAN networks run on the --backend/--device chosen for GFP-GAN")
    u.add_argument("--bg-weights", default=None, help="a .pth for the --bg-upsampler network instead of its release")
    u.add_argument("--tile", type=int, default=0, metavar="N",
                   help="upsampler tiles of N input pixels (0 = auto 384, -1 = whole frames)")
    u.add_argument("--tile-pad", type=int, default=None, metavar="P",
                   help="tile overlap (default: the network's receptive radius, at most 40)")
    u.add_argument("--bg-batch", type=int, default=0, help="frames per upsampler call (default 1 CPU, 4 GPU)")
    e = p.add_argument_group("encoding")
    e.add_argument("--codec", default="libx264",
                   help="video encoder (libx264, libx265, ffv1, prores_ks, ...) or an intermediate: "
                        "prores_hq, prores_4444, dnxhr_hq, dnxhr_hqx, dnxhr_444")
    e.add_argument("--crf", type=float, default=18.0, help="quality for x264/x265 (0 = lossless)")
    e.add_argument("--preset", default="medium", help="encoder preset")
    e.add_argument("--pix-fmt", default=None,
                   help="output pixel format (e.g. yuv422p10le); default from codec and source depth")
    e.add_argument("-f", "--format", default=None, choices=["y4m", "nut", "matroska", "mpegts"],
                   help="stream format for '-o -'")
    e.add_argument("--fps", type=float, default=25.0, help="frame rate of an image-sequence input")
    o = p.add_argument_group("output")
    o.add_argument("--report", type=Path, help="write the run report as JSON")
    o.add_argument("--strict", action="store_true",
                   help="fail (exit 2, no output) if any input frame is lost to damage or truncation")
    o.add_argument("--progress", action="store_true", help="show progress even when not a terminal")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    o.add_argument("--verbose", action="store_true", help="tracebacks on errors")
    p.add_argument("--version", action="version", version=f"vidrestore {__version__}")
    return p


def _sub_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidrestore")
    p.add_argument("--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("weights", help="download or list release weights (GFP-GAN, Real-ESRGAN, 'parsenet')")
    wsub = w.add_subparsers(dest="action", required=True)
    d = wsub.add_parser("download", help="fetch a release into the cache ($VIDRESTORE_HOME)")
    d.add_argument("name", nargs="?", default="GFPGANv1.4")
    d.add_argument("--force", action="store_true", help="download again even if cached")
    wsub.add_parser("list", help="show known releases and what is cached")
    g = sub.add_parser("engines", help="TensorRT engines")
    gsub = g.add_subparsers(dest="action", required=True)
    b = gsub.add_parser("build", help="build (or reuse) a TensorRT engine in the engine cache")
    b.add_argument("--weights", default="GFPGANv1.4")
    b.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    b.add_argument("--min-batch", type=int, default=1)
    b.add_argument("--opt-batch", type=int, default=8)
    b.add_argument("--max-batch", type=int, default=32)
    b.add_argument("--workspace-gib", type=float, default=4.0)
    return p


def _track_ids(text: str) -> tuple[int, ...]:
    """"1,4" -> (1, 4); "" -> ()."""
    from .errors import ConfigError
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"--track-ids must be comma-separated track IDs like 1,4, got {text!r}")
    return tuple(sorted({int(p) for p in parts}))


def _config_from(args: argparse.Namespace):
    from .config import (AlignConfig, DecodeConfig, DetectConfig, EncodeConfig, ModelConfig, PasteConfig,
                         RestoreConfig, SelectConfig, SmoothConfig, TrackConfig, UpscaleConfig)
    return RestoreConfig(
        detect=DetectConfig(every=args.detect_every, score_threshold=args.det_threshold,
                            max_faces=args.max_faces),
        decode=DecodeConfig(strict=args.strict, fps=args.fps),
        track=TrackConfig(max_misses=args.max_misses),
        smooth=SmoothConfig(strength=args.smoothing, method=args.smoothing_method),
        align=AlignConfig(min_face=args.min_face, interpolation=args.interpolation),
        select=SelectConfig(faces=args.faces, track_ids=_track_ids(args.track_ids)),
        aligned=args.aligned,
        paste=PasteConfig(strength=args.strength, mask=args.mask, mask_blur=args.mask_blur,
                          mask_erode=args.mask_erode, color_match=args.color_match,
                          parse_weights=args.parse_weights),
        encode=EncodeConfig(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt,
                            format=args.format),
        model=ModelConfig(weights=args.weights, backend=args.backend, device=args.device,
                          precision=args.precision, batch=args.batch, restorer=args.restorer,
                          threads=args.threads, kernels=args.kernels),
        upscale=UpscaleConfig(scale=args.upscale, upsampler=args.bg_upsampler, weights=args.bg_weights,
                              tile=args.tile, tile_pad=args.tile_pad, batch=args.bg_batch),
        overwrite=args.overwrite)


class _ProgressLine:
    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        total = f"/{p.frames_total}" if p.frames_total else ""
        pct = f" {100 * p.frames_done / p.frames_total:3.0f}%" if p.frames_total else ""
        eta = f" ETA {_hms(p.eta_s)}" if p.eta_s is not None else ""
        self.stream.write(f"\r{p.frames_done}{total} frames{pct}  {p.fps:.2f} fps{eta}   ")
        self.stream.flush()

    def close(self) -> None:
        if self.last:
            self.stream.write("\n")


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _run_restore(args: argparse.Namespace) -> int:
    from .pipeline import restore_video
    config = _config_from(args)
    show = not args.quiet and (args.progress or sys.stderr.isatty())
    bar = _ProgressLine(sys.stderr) if show else None
    many = len(args.input) > 1 or _is_video_folder(args.input[0]) or args.workers > 1 or args.ray_address
    if many or args.resume:
        return _run_many(args, config, bar)
    try:
        report = restore_video(args.input[0], args.output, config, progress=bar,
                               frame_range=_frame_range(args, config))
    finally:
        if bar:
            bar.close()
    if args.report:
        report.write_json(args.report)
    if not args.quiet:
        for line in report.summary_lines():
            print(line, file=sys.stderr)
    return 0


def _is_video_folder(spec: str) -> bool:
    """A folder holding videos is a batch of inputs; a folder of images is an image sequence."""
    from .scale.runner import VIDEO_SUFFIXES
    folder = Path(spec)
    return folder.is_dir() and any(f.suffix.lower() in VIDEO_SUFFIXES for f in folder.iterdir() if f.is_file())


def _frame_range(args: argparse.Namespace, config):
    from .errors import ConfigError
    if args.start is None and args.end is None:
        if args.keep_outside:
            raise ConfigError("--keep-outside needs --start and/or --end")
        return None
    from .media.index import scan_frames
    from .ranges import parse_time, resolve
    start = None if args.start is None else parse_time(args.start, option="--start")
    end = None if args.end is None else parse_time(args.end, option="--end")
    return resolve(scan_frames(args.input[0]), config, start=start, end=end, keep_outside=args.keep_outside)


def _run_many(args: argparse.Namespace, config, bar) -> int:
    from .errors import ConfigError
    from .scale import restore_videos
    if args.start is not None or args.end is not None:
        raise ConfigError("--start/--end work with one input and --workers 1")
    try:
        report = restore_videos(args.input, args.output, config, workers=args.workers,
                                ray_address=args.ray_address, chunk_seconds=args.chunk_seconds,
                                job_dir=args.job_dir, resume=args.resume, progress=bar)
    finally:
        if bar:
            bar.close()
    if args.report:
        report.write_json(args.report)
    for r in report.failures:
        print(f"vidrestore: error: {r.error}", file=sys.stderr)
    if not args.quiet:
        for line in report.summary_lines():
            print(line, file=sys.stderr)
    return report.exit_code


def _run_weights(args: argparse.Namespace) -> int:
    from .models.weights import KNOWN_WEIGHTS, download_weights, list_cached
    if args.action == "download":
        def show(done: int, total: int | None) -> None:
            if sys.stderr.isatty():
                tot = f"/{total / 1e6:.0f}" if total else ""
                sys.stderr.write(f"\r{done / 1e6:.0f}{tot} MB")
        path = download_weights(args.name, force=args.force, progress=show)
        print(path)
        return 0
    cached = {name: (path, size) for name, path, size in list_cached()}
    for name, spec in KNOWN_WEIGHTS.items():
        where = f"{cached[name][0]} ({cached[name][1] / 1e6:.1f} MB)" if name in cached \
            else f"not cached ({spec.url})"
        print(f"{name:20s} {where}")
    for name, (path, size) in cached.items():
        if name not in KNOWN_WEIGHTS:
            print(f"{name:12s} {path} ({size / 1e6:.1f} MB)")
    return 0


def _run_engines(args: argparse.Namespace) -> int:
    from engines.build_trt import build_engine
    path = build_engine(args.weights, precision=args.precision, min_batch=args.min_batch,
                        opt_batch=args.opt_batch, max_batch=args.max_batch,
                        workspace_gib=args.workspace_gib)
    print(path)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run; returns the exit code (raises nothing but SystemExit from argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_sub = bool(argv) and argv[0] in SUBCOMMANDS
    args = (_sub_parser() if is_sub else _restore_parser()).parse_args(argv)
    try:
        if not is_sub:
            return _run_restore(args)
        return _run_weights(args) if args.command == "weights" else _run_engines(args)
    except VidRestoreError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"vidrestore: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"vidrestore: interrupted by {signal.Signals(signum).name}; stopped, temporary output "
              "removed", file=sys.stderr)
        return 128 + signum
    except Exception as err:  # a bug: say so plainly, keep the traceback for --verbose
        if args.verbose:
            traceback.print_exc()
        print(f"vidrestore: internal error: {type(err).__name__}: {err} (rerun with --verbose)",
              file=sys.stderr)
        return 70


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: raised in the main thread so the run unwinds like a
    Ctrl-C (threads stop, the temporary output is deleted); the exit code is 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopOnSignal:
    """Signal handler: the first signal raises :class:`Interrupted`, a second exits at once."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.seen:  # a second signal while unwinding: leave at once
            os.write(2, b"vidrestore: interrupted again; exiting at once\n")
            os._exit(128 + signum)
        self.seen = True
        raise Interrupted(signum)


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def main(argv: Sequence[str] | None = None) -> None:
    """Run and exit. SIGINT/SIGTERM/SIGHUP stop the run cleanly (exit 130/143/129); a second one
    exits at once."""
    handler = _StopOnSignal()
    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    code = run(argv)
    for s in STOP_SIGNALS:   # finished (or cleaned up): a late signal must not turn the exit code into a kill
        signal.signal(s, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    main()
