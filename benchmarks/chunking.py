"""Chunked runs: warm-up overhead and 1 vs 2 workers at equal total threads.

    python -m benchmarks.chunking [--clip PATH] [--seconds S]

1. Overhead at the default chunk length (60 s) and default settings: frames analysed twice (each
   chunk's warm-up and look-ahead) as a share of all frames, counted from the real chunk plan of a
   10-minute 30 fps frame index; also frames only decoded (from the keyframe before a chunk's warm-up)
   for a GOP of 250 frames (x264's default keyint).
2. Scaling on this machine: the same clip, identity restorer, x264, single process with 2 threads vs
   ``restore_videos(workers=2)`` (two actors with 1 thread each), wall time with and without starting
   Ray. Ratios are measured in one run; the 1-min load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from vidrestore.config import DetectConfig, EncodeConfig, ModelConfig, RestoreConfig
from vidrestore.media.index import FrameIndex
from vidrestore.ranges import lookahead_frames, warmup_frames
from vidrestore.scale.plan import plan_chunks
from vidrestore.scale.runner import DEFAULT_CHUNK_SECONDS

RESULTS = Path(__file__).parent / "results"


def overhead(config: RestoreConfig, *, minutes: float = 10, fps: int = 30, gop: int = 250) -> dict:
    n = int(minutes * 60 * fps)
    pts = tuple(range(n))
    index = FrameIndex(pts=pts, keyframes=pts[::gop], time_base=Fraction(1, fps), exact=True)
    chunks = plan_chunks(index, config, DEFAULT_CHUNK_SECONDS)
    w, la = warmup_frames(config), lookahead_frames(config)
    analysed = sum(min(w, c.start) + (la if c.end < n else 0) for c in chunks)
    decoded_only = sum((max(c.start - w, 0) % gop) for c in chunks)
    return {"frames": n, "chunks": len(chunks), "chunk_seconds": DEFAULT_CHUNK_SECONDS,
            "warmup_frames": w, "lookahead_frames": la,
            "reanalysed_share": round(analysed / n, 5), "decoded_only_share_gop250": round(decoded_only / n, 5)}


def scaling(clip: Path, chunk_seconds: float) -> dict:
    import ray

    from vidrestore.pipeline import restore_video
    from vidrestore.scale import restore_videos
    cfg = RestoreConfig(model=ModelConfig(restorer="identity", threads=2), detect=DetectConfig(threads=2),
                        encode=EncodeConfig(codec="libx264", crf=18, preset="veryfast"), overwrite=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        single = restore_video(clip, Path(tmp) / "single.mp4", cfg)
        t_single = time.perf_counter() - t
        os.environ["RAY_AUTH_MODE"] = "disabled"
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        t_init = time.perf_counter() - t
        t = time.perf_counter()
        rep = restore_videos([clip], Path(tmp) / "two.mp4", cfg, workers=2, chunk_seconds=chunk_seconds)
        t_two = time.perf_counter() - t
        ray.shutdown()
    return {"clip": clip.name, "frames": single.frames_written, "chunk_seconds": chunk_seconds,
            "chunks": rep.chunks, "single_process_2_threads_s": round(t_single, 2),
            "two_workers_1_thread_each_s": round(t_two, 2), "ray_start_s": round(t_init, 2),
            "ratio_two_over_single": round(t_two / t_single, 3),
            "ratio_incl_ray_start": round((t_two + t_init) / t_single, 3),
            "stage_seconds_per_worker": rep.stage_seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path, default=Path(__file__).parents[1].parent / "shared" / "testdata"
                    / "edge" / "multi_face_group_zoompan.mp4")
    ap.add_argument("--seconds", type=float, default=1.0, help="chunk length for the scaling run")
    args = ap.parse_args()
    out = {"load_avg_1min_before": os.getloadavg()[0], "cpus": os.cpu_count(),
           "overhead_default": overhead(RestoreConfig()),
           "overhead_detect_every_2": overhead(RestoreConfig(detect=DetectConfig(every=2)))}
    out["scaling"] = scaling(args.clip, args.seconds)
    out["load_avg_1min_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"chunking-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
