"""Sharper paste and steadier alignment, before/after in one run.

    python -m benchmarks.paste_quality [--testdata ../shared/testdata] [--quick]

1. Identity round trip (warp out to the 512 crop, paste back with the identity restorer and the ``box`` mask, so
   every pixel of the square is resampled; no encode) by face
   size: sharp photos scaled so the face box is 64/128/256/355/512 px, centred in a 512 x 512 frame (landmarks
   from the real detector on that frame), plus frames of the 512 x 512 test clips as they are. Whole-frame PSNR
   for bilinear (before), cubic and Lanczos-4 (after, the default). Also the time of one cv2 warp per kind.
2. Landmark smoothing on a real face photo moving up to 7 px/frame with scale and rotation changes, sensor noise
   and CRF 28, landmarks from the real detector (tests/support/noisy_faces.py): error above ~1.7 Hz (error minus
   a 15-frame Savitzky-Golay fit of itself) as a ratio of the raw detector's, lag (frames; shift of the true
   path best explaining the estimate) and RMS error against the true path, for the local polynomial
   smoother (before) and the fixed-lag RTS smoother (after, the default), both with a 4-frame look-ahead.

Writes benchmarks/results/paste_quality-<date>-<host>.json with the 1-min load average.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import socket
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PHOTOS = ("images/liveportrait_s10_three_quarter.jpg", "images/face_recognition_obama_and_biden.jpg")
CLIPS = ("clips/lp_d0_talking_512.mp4", "clips/st_aoc_talking_512_audio16k.mp4", "clips/lp_d3_talking_512_silentaudio.mp4")
SIZES = (64, 128, 256, 355, 512)
KINDS = ("linear", "cubic", "lanczos")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def round_trip(frame: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    from vidrestore.faces.align import similarity_from_landmarks, warp_crops
    from vidrestore.faces.paste import paste_faces
    from vidrestore.config import PasteConfig
    m = similarity_from_landmarks(landmarks)[None]
    box = PasteConfig(mask="box")    # the whole square: every resampled pixel counts (the mask before masks)
    return {k: round(_psnr(paste_faces(frame, warp_crops(frame, m, interpolation=k), m, config=box,
                                       interpolation=k), frame), 2) for k in KINDS}


def paste_by_size(testdata: Path) -> list[dict]:
    from tests.support.face_frames import face_frame
    from tests.support.face_frames import read_frames
    from vidrestore.faces.detect import RetinaFaceDetector
    det = RetinaFaceDetector()
    rows = []
    for rel in PHOTOS:
        photo = cv2.cvtColor(cv2.imread(str(testdata / rel)), cv2.COLOR_BGR2RGB)
        for n in SIZES:
            frame, lm = face_frame(photo, det, float(n))
            face = max(det.detect([frame])[0], key=lambda f: f.size)
            rows.append({"source": rel, "target_face_px": n, "face_px": round(face.size),
                         "psnr_db": round_trip(frame, lm)})
            print(f"{rel.split('/')[-1][:24]:24s} face {face.size:4.0f} px  " +
                  "  ".join(f"{k} {v:6.2f}" for k, v in rows[-1]["psnr_db"].items()))
    for rel in CLIPS:
        for frame in read_frames(testdata / rel, (0, 30)):
            frame = np.ascontiguousarray(frame)
            face = max(det.detect([frame])[0], key=lambda f: f.size)
            rows.append({"source": rel, "face_px": round(face.size), "psnr_db": round_trip(frame, face.landmarks)})
            print(f"{rel.split('/')[-1][:24]:24s} face {face.size:4.0f} px  " +
                  "  ".join(f"{k} {v:6.2f}" for k, v in rows[-1]["psnr_db"].items()))
    return rows


def warp_times() -> dict[str, float]:
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    m = np.array([[1.1, 0.2, -300.0], [-0.2, 1.1, -100.0]], np.float32)
    from vidrestore.faces.align import CV_INTERPOLATION
    out = {}
    for k in KINDS:
        t = time.perf_counter()
        for _ in range(10):
            cv2.warpAffine(frame, m, (512, 512), flags=CV_INTERPOLATION[k])
        out[k] = round((time.perf_counter() - t) / 10 * 1000, 2)
    print("one 512 crop warp (ms):", out)
    return out


def smoothing(testdata: Path, quick: bool) -> list[dict]:
    from tests.support.noisy_faces import best_lag, detected_path, high_band_rms
    from tests.support.synthetic_faces import tracked
    from vidrestore.config import SmoothConfig
    from vidrestore.faces.smooth import LandmarkSmoother

    def run(raw: np.ndarray, cfg: SmoothConfig) -> np.ndarray:
        sm, out = LandmarkSmoother(config=cfg), []
        for t in range(len(raw)):
            out += sm.push(t, [tracked(0, t, raw[t])])
        out += sm.flush()
        return np.stack([f[0].landmarks for _, f in out]).astype(np.float64)

    rows = []
    photos = PHOTOS[:1] + ("images/gfpgan_whole_Blake_Lively.jpg",)
    with tempfile.TemporaryDirectory() as tmp:
        for rel in photos[:1] if quick else photos:
            for seed in (0,) if quick else (0, 1):
                raw, true = detected_path(testdata / rel, Path(tmp), n=150, seed=seed)
                hp_raw = high_band_rms(raw - true)
                row = {"source": rel, "seed": seed, "frames": len(raw), "raw": {
                    "high_band_px": round(hp_raw, 4), "lag_frames": best_lag(raw, true),
                    "rms_error_px": round(float(np.sqrt(((raw - true) ** 2).sum(-1).mean())), 4)}}
                for name, cfg in (("poly_before", SmoothConfig(method="poly")), ("rts_after", SmoothConfig())):
                    est = run(raw, cfg)
                    row[name] = {"high_band_ratio": round(high_band_rms(est - true) / hp_raw, 4),
                                 "lag_frames": round(best_lag(est, true), 2),
                                 "rms_error_px": round(float(np.sqrt(((est - true) ** 2).sum(-1).mean())), 4),
                                 "lookahead_frames": cfg.lookahead}
                rows.append(row)
                print(f"{rel.split('/')[-1][:24]:24s} seed {seed}: above 1.7 Hz poly "
                      f"{row['poly_before']['high_band_ratio']:.3f}x -> rts {row['rts_after']['high_band_ratio']:.3f}x;"
                      f" lag {row['poly_before']['lag_frames']:+.1f} -> {row['rts_after']['lag_frames']:+.1f} "
                      f"(raw {row['raw']['lag_frames']:+.1f}); error {row['raw']['rms_error_px']:.3f} raw, "
                      f"{row['poly_before']['rms_error_px']:.3f} -> {row['rts_after']['rms_error_px']:.3f} px")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testdata", type=Path, default=Path(os.environ.get("VIDRESTORE_TESTDATA", "../shared/testdata")))
    ap.add_argument("--quick", action="store_true", help="one smoothing path instead of four")
    args = ap.parse_args()
    result = {"date": dt.date.today().isoformat(), "host": socket.gethostname(),
              "load_avg_1min_start": os.getloadavg()[0]}
    result["round_trip_psnr"] = paste_by_size(args.testdata)
    result["warp_ms_720p_to_512"] = warp_times()
    result["smoothing"] = smoothing(args.testdata, args.quick)
    result["load_avg_1min_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"paste_quality-{result['date']}-vm.json"
    path.write_text(json.dumps(result, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
