"""Paste-back masks: seam visibility and mask flicker, measured on real frames.

Seam (a restorer that brightens every crop by +20 levels, so the change itself draws the mask):
for each paste, ``D = gray(out) - gray(in)`` and the mask as it landed in the frame is ``a = D / 20``.
In the boundary band (0.05 < a < 0.95) the seam energy is the mean ``|grad D|^2``; it is reported
relative to the frame's own mean ``|grad in|^2`` inside the face (a = 1), so 0.1 means the paste adds
edges with a tenth of the face's own detail energy along its boundary. Also: the mean |grad D| in the band
(levels per pixel: how sharp the step is), the band's width, how much of the crop square changed, and the
largest change at the crop's corners and edge middles (hair / background / a neighbour's face).

Modes: ``box``, ``face``, ``parse`` and facexlib's ``FaceRestoreHelper.paste_faces_to_input_image``
(``use_parse=False``, the square with its erode/blur, and ``use_parse=True``). No released parse weights
are available offline, so ``parse`` (ours and facexlib's) gets a synthetic parse map instead of ParseNet's:
skin-coloured pixels (YCrCb rule, Chai & Ngan 1999) inside the dilated template face, as class 1 (skin),
everything else class 0 (background; excluded by both tables, so facexlib's pasting of class 13, hair,
does not show here). It stands in for a parser, it is not one.

Flicker (a real talking-head clip, the real detector/tracker/smoother): soft IoU (sum of minima over sum of
maxima) of consecutive frames' masks, both warped into the frame (motion included) and in crop coordinates
(parse only: the synthetic parse map of each frame's crop, raw and with the per-track EMA).

    python -m benchmarks.masks [--frames 40] [--json benchmarks/results/masks-DATE.json] [--plots DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore.config import ModelConfig, PasteConfig, RestoreConfig
from vidrestore.faces.masks import face_mask, hard_face_mask, soften, static_mask
from vidrestore.faces.parse import TemporalMaskSmoother
from vidrestore.faces.paste import paste_faces
from vidrestore.pipeline import Restorer

REPO = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("VIDRESTORE_TESTDATA", REPO.parent / "shared" / "testdata"))
SEAM_CLIPS = ("clips/lp_s18_interview_1280x720_audio.mp4", "clips/lp_d19_glasses_480_silentaudio.mp4",
              "clips/lp_d11_child_512_audio.mp4")
FLICKER_CLIP = "clips/lp_d0_talking_512.mp4"
BRIGHTEN = 20.0
OUTSIDE = np.array([[26, 26], [486, 26], [26, 486], [486, 486], [26, 256], [486, 256]], np.float64)


def synthetic_labels(crop_rgb: np.ndarray) -> np.ndarray:
    """(S, S) labels: skin (1) where the YCrCb skin rule holds inside the dilated template face, else background (0)."""
    s = crop_rgb.shape[0]
    ycc = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2YCrCb)
    skin = (ycc[..., 1] >= 133) & (ycc[..., 1] <= 173) & (ycc[..., 2] >= 77) & (ycc[..., 2] <= 127)
    near = cv2.dilate(hard_face_mask(s), np.ones((s // 16, s // 16), np.uint8)) > 0.5
    lab = np.where(skin & near, 1, 0).astype(np.int64)
    return cv2.morphologyEx(lab.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).astype(np.int64)


def first_face(path: Path, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frame RGB, (2, 3) frame->crop matrix of its largest face) from the real detector."""
    import av

    from vidrestore.faces.align import similarity_from_landmarks
    from vidrestore.faces.detect import RetinaFaceDetector
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                frame = f.to_ndarray(format="rgb24")
                break
    faces = RetinaFaceDetector().detect([frame])[0]
    face = max(faces, key=lambda f: f.size)
    return frame, similarity_from_landmarks(face.landmarks)


def brighten(crops: np.ndarray, amount: float = BRIGHTEN) -> np.ndarray:
    return np.clip(crops.astype(np.float32) + amount, 0, 255).astype(np.uint8)


def paste_mode(mode: str, frame: np.ndarray, m: np.ndarray, amount: float = BRIGHTEN) -> np.ndarray:
    from vidrestore.faces.align import warp_crops
    crops = warp_crops(frame, m[None])
    restored = brighten(crops, amount)
    if mode in ("box", "face"):
        return paste_faces(frame, restored, m[None], config=PasteConfig(mask=mode), originals=crops)
    if mode == "parse":
        cfg = PasteConfig(mask="parse")
        hard = (synthetic_labels(restored[0]) == 1).astype(np.float32)[None]
        masks = soften(hard, blur=cfg.mask_blur, erode=cfg.mask_erode)
        return paste_faces(frame, restored, m[None], config=cfg, originals=crops, masks=masks)
    return facexlib_paste(frame, m, restored[0], use_parse=(mode == "facexlib-parse"))


def facexlib_paste(frame: np.ndarray, m: np.ndarray, restored: np.ndarray, *, use_parse: bool) -> np.ndarray:
    """facexlib's own paste_faces_to_input_image (BGR in, BGR out) on one restored face."""
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper
    h = FaceRestoreHelper.__new__(FaceRestoreHelper)          # no detector/parser download: set what paste reads
    h.upscale_factor, h.face_size, h.use_parse, h.device = 1, (512, 512), use_parse, torch.device("cpu")
    h.input_img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    h.restored_faces = [cv2.cvtColor(restored, cv2.COLOR_RGB2BGR)]
    h.inverse_affine_matrices = [cv2.invertAffineTransform(m.astype(np.float64))]

    def parse(x: torch.Tensor):                              # the synthetic parse map as one-hot logits
        rgb = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        lab = torch.from_numpy(synthetic_labels(rgb))
        return (torch.nn.functional.one_hot(lab, 19).permute(2, 0, 1)[None].float(),)
    h.face_parse = parse
    return cv2.cvtColor(h.paste_faces_to_input_image(), cv2.COLOR_BGR2RGB)


def seam_stats(frame: np.ndarray, out: np.ndarray, m: np.ndarray) -> dict[str, float]:
    g_in = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    d = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32) - g_in
    unclipped = g_in < 255 - BRIGHTEN
    a = np.where(unclipped, d / BRIGHTEN, np.nan)
    gx, gy = np.gradient(d)
    gd2 = gx ** 2 + gy ** 2
    ix, iy = np.gradient(g_in)
    gi2 = ix ** 2 + iy ** 2
    band = (a > 0.05) & (a < 0.95)
    inside = a > 0.999
    inv = cv2.invertAffineTransform(m.astype(np.float64))
    pts = np.round(OUTSIDE @ inv[:, :2].T + inv[:, 2]).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < frame.shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < frame.shape[0])
    outside = np.abs(out.astype(int) - frame.astype(int)).max(axis=2)[pts[ok, 1], pts[ok, 0]]
    face_area = float(np.abs(np.linalg.det(inv[:, :2])) * hard_face_mask(512).sum())
    return {"seam_energy_vs_face_detail": round(float(gd2[band].mean() / max(gi2[inside].mean(), 1e-9)), 4),
            "band_mean_step_levels_per_px": round(float(np.sqrt(gd2[band]).mean()), 3),
            "band_max_step_levels_per_px": round(float(np.sqrt(gd2[band]).max()), 3),
            "band_pixels_vs_face_area": round(float(band.sum() / face_area), 3),
            "changed_pixels_vs_face_area": round(float((np.abs(d) > 0.5).sum() / face_area), 3),
            "max_change_outside_face_levels": int(outside.max()) if len(outside) else None}


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-9))


def flicker(path: Path, frames: int) -> dict[str, dict[str, float]]:
    import av
    with av.open(str(path)) as c:
        rgb = [f.to_ndarray(format="rgb24") for f, _ in zip(c.decode(video=0), range(frames))]
    mats: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    r = Restorer(RestoreConfig(model=ModelConfig(restorer="identity")))
    warp = r.ops.warp

    def record(frame, matrices, *, crop_size):
        out = warp(frame, matrices, crop_size=crop_size)
        mats.append(np.asarray(matrices)[0].astype(np.float64))
        crops.append(out[0])
        return out
    r.ops.warp = record
    list(r.restore_frames(iter(rgb)))
    h, w = rgb[0].shape[:2]
    cfg = PasteConfig(mask="parse")
    raw = [soften((synthetic_labels(c) == 1).astype(np.float32), blur=cfg.mask_blur, erode=cfg.mask_erode)
           for c in crops]
    sm = TemporalMaskSmoother()
    ema_hard = [sm.update(torch.from_numpy((synthetic_labels(c) == 1).astype(np.float32))[None], [0], [i])[0]
                .numpy() for i, c in enumerate(crops)]
    ema = [soften(x, blur=cfg.mask_blur, erode=cfg.mask_erode) for x in ema_hard]
    masks = {"box": [static_mask(512, PasteConfig(mask="box"))] * len(mats),
             "face": [face_mask(512, 0.03, 0.02)] * len(mats), "parse_raw": raw, "parse_ema": ema}
    out: dict[str, dict[str, float]] = {}
    for name, ms in masks.items():
        framed = [cv2.warpAffine(mk, cv2.invertAffineTransform(m), (w, h), flags=cv2.INTER_LINEAR)
                  for mk, m in zip(ms, mats)]
        fr = [soft_iou(a, b) for a, b in zip(framed, framed[1:])]
        cr = [soft_iou(a, b) for a, b in zip(ms, ms[1:])]
        out[name] = {"frame_iou_mean": round(float(np.mean(fr)), 4), "frame_iou_min": round(float(np.min(fr)), 4),
                     "crop_iou_mean": round(float(np.mean(cr)), 4), "crop_iou_min": round(float(np.min(cr)), 4)}
    out["frames"] = {"count": len(mats)}
    return out


def pictures(folder: Path) -> list[str]:
    """Mask overlays for each mode and a before/after seam, small PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    frame, m = first_face(TESTDATA / SEAM_CLIPS[0])
    inv = cv2.invertAffineTransform(m.astype(np.float64))
    x0, y0 = np.floor((np.array([[0, 0], [512, 512]]) @ inv[:, :2].T + inv[:, 2]).min(0)).astype(int)
    x1, y1 = np.ceil((np.array([[0, 0], [512, 512]]) @ inv[:, :2].T + inv[:, 2]).max(0)).astype(int)
    pad = 20
    x0, y0, x1, y1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, frame.shape[1]), min(y1 + pad, frame.shape[0])
    tiles, names = [], []
    for mode in ("box", "face", "parse", "facexlib-box", "facexlib-parse"):
        out = paste_mode(mode, frame, m, amount=60.0)          # stronger than the measurement, to be seen
        tile = cv2.resize(out[y0:y1, x0:x1], (240, int(240 * (y1 - y0) / (x1 - x0))), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, mode, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    before = cv2.resize(frame[y0:y1, x0:x1], tiles[0].shape[1::-1], interpolation=cv2.INTER_AREA)
    cv2.putText(before, "input", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([before] + tiles, axis=1)
    p = folder / "masks_brighten_modes.png"
    cv2.imwrite(str(p), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    names.append(p.name)
    # the masks themselves in crop coordinates
    from vidrestore.faces.align import warp_crops
    crop = warp_crops(frame, m[None])[0]
    parse = soften((synthetic_labels(crop) == 1).astype(np.float32), blur=0.03, erode=0.02)
    mtiles = []
    for name, mk in (("box", static_mask(512, PasteConfig(mask="box"))), ("face", face_mask(512, 0.03, 0.02)),
                     ("parse (synthetic map)", parse)):
        t = (crop * (0.35 + 0.65 * mk[..., None])).astype(np.uint8)
        t = cv2.resize(t, (200, 200), interpolation=cv2.INTER_AREA)
        cv2.putText(t, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        mtiles.append(t)
    p = folder / "masks_in_crop.png"
    cv2.imwrite(str(p), cv2.cvtColor(np.concatenate(mtiles, 1), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    names.append(p.name)
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.masks")
    ap.add_argument("--frames", type=int, default=40, help="frames of the flicker clip")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--plots", type=Path, help="write the README pictures into this folder")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    seams: dict[str, dict[str, dict]] = {}
    for rel in SEAM_CLIPS:
        frame, m = first_face(TESTDATA / rel)
        seams[rel] = {mode: seam_stats(frame, paste_mode(mode, frame, m), m)
                      for mode in ("box", "face", "parse", "facexlib-box", "facexlib-parse")}
    result = {"benchmark": "masks", "date": time.strftime("%Y-%m-%d"), "host": platform.node(),
              "load_1min_before": round(os.getloadavg()[0], 2), "brighten_levels": BRIGHTEN,
              "parse_map": "synthetic: YCrCb skin rule inside the dilated template face (no ParseNet weights offline)",
              "seam": seams, "flicker_clip": FLICKER_CLIP, "flicker": flicker(TESTDATA / FLICKER_CLIP, args.frames)}
    if args.plots:
        result["pictures"] = pictures(args.plots)
    result["load_1min_after"] = round(os.getloadavg()[0], 2)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
