"""The baseline: GFP-GAN on video the way people run the authors' code today, timed per stage.

Per frame, exactly what ``GFPGANer.enhance`` (gfpgan 1.3.8, called by ``inference_gfpgan.py`` on BGR
images) does with ``has_aligned=False, only_center_face=False, paste_back=True``, except for the
settings below that the brief fixes:

1. facexlib ``FaceRestoreHelper(upscale, face_size=512, crop_ratio=(1, 1),
   det_model='retinaface_mobile0.25', save_ext='png', use_parse=False)`` (the authors use resnet50 and
   the face parser; neither weight file is available offline), ``clean_all``, ``read_image``,
   ``get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)``, ``align_warp_face``;
2. for each cropped face separately: ``img2tensor(face / 255, bgr2rgb=True)``, normalise to [-1, 1],
   the authors' ``GFPGANv1Clean`` forward in FP32 with ``return_rgb=False, weight=0.5`` and the default
   ``randomize_noise=True`` (fresh noise per face, as GFPGANer does), ``tensor2img(min_max=(-1, 1))``,
   ``add_restored_face``;
3. ``get_inverse_affine``, ``paste_faces_to_input_image``.

Offline adaptations, all in-process and only while the helper is constructed (site-packages untouched):
``face_restoration_helper.init_detection_model`` is replaced by :func:`build_detector` (facexlib's own
``RetinaFace`` class, loaded strictly with the weights converted by :mod:`benchmarks.facexlib_weights`),
``face_restoration_helper.init_parsing_model`` returns ``None`` (``use_parse=False`` never uses it), and
facexlib's ``download_url_to_file`` raises, so nothing can reach the network.
``basicsr.utils.tensor2img`` is re-implemented (:func:`tensor2img`) because basicsr does not import.

The driver decodes with PyAV (``bgr24``), restores frame by frame, encodes H.264 with PyAV, and times
decode / detect / align / restore / paste / encode with ``time.perf_counter``.

CLI (random-initialised authors' weights unless ``--gfpgan-weights`` is given):
``python -m benchmarks.reference_loop clip.mp4 [-o out.mp4] [--max-frames 3] [--json result.json]``
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from vidrestore.errors import CheckpointError, InputError

from .facexlib_weights import FACEXLIB_FILENAME, build_detector, convert
from .reference_arch import build_gfpgan_clean, load_reference_arch, GFPGAN_CLEAN_KWARGS

__all__ = ["ReferenceLoop", "run_reference", "tensor2img", "STAGES", "save_random_checkpoint"]

STAGES = ("decode", "detect", "align", "restore", "paste", "encode")
REPO = Path(__file__).resolve().parents[1]


def _now() -> tuple[float, float]:
    """(wall, process CPU) seconds; CPU time shows how much of the wall time was waiting for a shared CPU."""
    return time.perf_counter(), time.process_time()


def _add(acc: dict[str, float], stage: str, a: tuple[float, float], b: tuple[float, float]) -> None:
    acc[stage] = acc.get(stage, 0.0) + (b[0] - a[0])
    acc[f"cpu:{stage}"] = acc.get(f"cpu:{stage}", 0.0) + (b[1] - a[1])


def tensor2img(tensor, *, rgb2bgr: bool = True, min_max: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """basicsr.utils.tensor2img for one (3, H, W) or (1, 3, H, W) tensor with out_type=np.uint8."""
    import cv2

    t = tensor.squeeze(0).float().detach().cpu().clamp_(*min_max)
    t = (t - min_max[0]) / (min_max[1] - min_max[0])
    img = t.numpy().transpose(1, 2, 0)
    if rgb2bgr:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    return (img * 255.0).round().astype(np.uint8)


@contextlib.contextmanager
def _offline_facexlib(detector_weights: Path, device: str):
    """Patch facexlib (this process, this block only) so FaceRestoreHelper builds without downloads."""
    import facexlib.utils.face_restoration_helper as frh
    import facexlib.utils.misc as misc

    def init_detection_model(model_name, half=False, device=device, model_rootpath=None):
        if model_name != "retinaface_mobile0.25" or half:
            raise CheckpointError(f"only retinaface_mobile0.25 in FP32 is available offline, not {model_name}")
        return build_detector(detector_weights, device=str(device))

    def no_download(url, *args, **kwargs):
        raise CheckpointError(f"facexlib tried to download {url}; the benchmark runs offline")

    saved = (frh.init_detection_model, frh.init_parsing_model, misc.download_url_to_file)
    frh.init_detection_model = init_detection_model
    frh.init_parsing_model = lambda *a, **k: None
    misc.download_url_to_file = no_download
    try:
        yield frh.FaceRestoreHelper
    finally:
        frh.init_detection_model, frh.init_parsing_model, misc.download_url_to_file = saved


class ReferenceLoop:
    """The authors' per-frame GFPGAN + facexlib restore; ``restore_frame`` works on one BGR uint8 image."""

    def __init__(self, gfpgan_weights: str | os.PathLike[str], *, detector_weights: str | os.PathLike[str],
                 upscale: int = 1, device: str = "cpu", weight: float = 0.5) -> None:
        import torch

        self.device = torch.device(device)
        self.upscale = upscale
        self.weight = weight  # GFPGANer's `weight` argument; GFPGANv1Clean.forward ignores it (**kwargs)
        net = load_reference_arch().GFPGANv1Clean(**GFPGAN_CLEAN_KWARGS)
        try:
            ckpt = torch.load(Path(gfpgan_weights), map_location="cpu", weights_only=True)
            key = "params_ema" if "params_ema" in ckpt else "params"
            net.load_state_dict(ckpt[key], strict=True)
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"not a GFPGANv1Clean checkpoint ({exc})", path=gfpgan_weights) from exc
        self.net = net.eval().to(self.device)
        with _offline_facexlib(Path(detector_weights), str(self.device)) as helper_cls:
            self.helper = helper_cls(upscale, face_size=512, crop_ratio=(1, 1), det_model="retinaface_mobile0.25",
                                     save_ext="png", use_parse=False, device=self.device)

    def restore_frame(self, bgr: np.ndarray, seconds: dict[str, float] | None = None) -> tuple[np.ndarray, int]:
        """(restored BGR uint8 frame, faces restored).

        Adds wall seconds per stage (``detect``, ``align``, ``restore``, ``paste``) and process CPU seconds
        (``cpu:<stage>``) into ``seconds`` if given.
        """
        import torch
        from facexlib.utils.misc import img2tensor
        from torchvision.transforms.functional import normalize

        t = seconds if seconds is not None else {}
        h = self.helper
        marks = [_now()]
        h.clean_all()
        h.read_image(bgr)
        with torch.no_grad():  # get_face_landmarks_5 already runs the detector under no_grad
            h.get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)
        marks.append(_now())
        h.align_warp_face()
        marks.append(_now())
        with torch.no_grad():
            for cropped_face in h.cropped_faces:
                face_t = img2tensor(cropped_face / 255.0, bgr2rgb=True, float32=True)
                normalize(face_t, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
                face_t = face_t.unsqueeze(0).to(self.device)
                output = self.net(face_t, return_rgb=False, weight=self.weight)[0]
                restored = tensor2img(output.squeeze(0), rgb2bgr=True, min_max=(-1, 1))
                h.add_restored_face(restored.astype("uint8"))
        marks.append(_now())
        h.get_inverse_affine(None)
        out = h.paste_faces_to_input_image(upsample_img=None)
        marks.append(_now())
        for stage, a, b in zip(("detect", "align", "restore", "paste"), marks, marks[1:]):
            _add(t, stage, a, b)
        return out, len(h.cropped_faces)


def process_video(loop: ReferenceLoop, input_path: str | os.PathLike[str], output_path: str | os.PathLike[str] | None,
                  *, max_frames: int | None = None, crf: int = 18) -> dict:
    """Decode → restore each frame → encode; the per-stage timing report (see :func:`run_reference`).

    ``seconds`` is wall time per stage; ``cpu_seconds`` the process CPU time over the same spans (with
    n torch threads an unshared machine shows up to n x wall in the restore stage).
    """
    import av

    acc: dict[str, float] = {}
    frames = faces = 0
    faces_per_frame: list[int] = []
    load_before = os.getloadavg()
    start = _now()
    try:
        src = av.open(str(input_path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open the video ({exc})", path=input_path) from exc
    with contextlib.ExitStack() as stack:
        stack.enter_context(src)
        if not src.streams.video:
            raise InputError("no video stream", path=input_path)
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        dst = vout = None
        if output_path is not None:
            dst = stack.enter_context(av.open(str(output_path), "w"))
            vout = dst.add_stream("libx264", rate=vin.average_rate or 25)
            vout.width, vout.height = vin.codec_context.width * loop.upscale, vin.codec_context.height * loop.upscale
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": str(crf)}
        decoded = src.decode(vin)
        while max_frames is None or frames < max_frames:
            t0 = _now()
            frame = next(decoded, None)
            if frame is None:
                break
            bgr = frame.to_ndarray(format="bgr24")
            _add(acc, "decode", t0, _now())
            out, n = loop.restore_frame(bgr, acc)
            frames += 1
            faces += n
            faces_per_frame.append(n)
            if vout is not None:
                t0 = _now()
                new = av.VideoFrame.from_ndarray(out, format="bgr24")
                new.pts, new.time_base = frame.pts, frame.time_base
                for packet in vout.encode(new):
                    dst.mux(packet)
                _add(acc, "encode", t0, _now())
        if vout is not None:
            t0 = _now()
            for packet in vout.encode(None):
                dst.mux(packet)
            _add(acc, "encode", t0, _now())
    end = _now()
    total = end[0] - start[0]
    return {
        "label": "reference: GFPGAN 1.3.8 + facexlib, per face, torch FP32 " + str(loop.device),
        "frames": frames,
        "faces": faces,
        "faces_per_frame": faces_per_frame,
        "seconds": {**{s: acc.get(s, 0.0) for s in STAGES}, "total": total},
        "cpu_seconds": {**{s: acc.get(f"cpu:{s}", 0.0) for s in STAGES}, "total": end[1] - start[1]},
        "fps": frames / total if total > 0 else 0.0,
        "seconds_per_frame": total / frames if frames else None,
        "torch_threads": __import__("torch").get_num_threads(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }


def run_reference(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str] | None, *,
                  gfpgan_weights: str | os.PathLike[str], detector_weights: str | os.PathLike[str],
                  max_frames: int | None = None, threads: int | None = None, device: str = "cpu") -> dict:
    """Run the baseline on a video; returns per-stage seconds, frames, faces, fps (JSON-ready dict).

    ``threads`` sets torch's intra-op threads for the run (restored afterwards); None leaves torch's default.
    Model loading is not timed (``setup_seconds`` reports it separately).
    """
    import torch

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        loop = ReferenceLoop(gfpgan_weights, detector_weights=detector_weights, device=device)
        setup = time.perf_counter() - t0
        report = process_video(loop, input_path, output_path, max_frames=max_frames)
    finally:
        torch.set_num_threads(old_threads)
    report["setup_seconds"] = setup
    report["input"] = str(input_path)
    return report


def save_random_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A random-initialised authors' GFPGANv1Clean saved in the official ``{'params_ema': ...}`` layout."""
    import torch

    torch.manual_seed(seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": build_gfpgan_clean().state_dict()}, out)
    return out


def ensure_detector_weights(folder: str | os.PathLike[str] = REPO / ".cache" / "facexlib") -> Path:
    """The converted facexlib detector weights in ``folder``, converting them on first use."""
    path = Path(folder) / FACEXLIB_FILENAME
    return path if path.is_file() else convert(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference_loop", description=__doc__.splitlines()[0])
    p.add_argument("input")
    p.add_argument("-o", "--output", help="encoded result (omit to skip encoding)")
    p.add_argument("--gfpgan-weights", help="GFPGANv1Clean checkpoint; default: random weights, seed 0")
    p.add_argument("--detector-weights", help="converted facexlib RetinaFace-mobile0.25 .pth (default: convert)")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the report here (as the 'pipeline' section of a benchmark JSON)")
    args = p.parse_args(argv)
    cache = REPO / ".cache" / "bench"
    weights = args.gfpgan_weights or cache / "gfpgan_clean_random_seed0.pth"
    if not args.gfpgan_weights and not Path(weights).is_file():
        save_random_checkpoint(weights)
    det = args.detector_weights or ensure_detector_weights()
    report = run_reference(args.input, args.output, gfpgan_weights=weights, detector_weights=det,
                           max_frames=args.max_frames, threads=args.threads, device=args.device)
    text = json.dumps({"pipeline": [report]}, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    main()
