"""Peak memory does not grow with video length: a 10 s and a 120 s clip, same content, same run.

    python -m benchmarks.memory [--source CLIP] [--short 10] [--long 120] [--restorer identity]

Builds both clips by looping a real clip (re-encoded with continuous timestamps), runs the full
pipeline on each in a fresh subprocess and reads the child's peak RSS (getrusage). Prints the
ratio long/short and writes JSON to stdout and benchmarks/results/memory-<date>-<host>.json.
The identity restorer is the default so the run takes minutes, not hours; every other stage
(decode, detect, track, smooth, align, paste, encode, queues) is the real one.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "testdata" / "clips" / "lp_d3_talking_512_silentaudio.mp4"


def make_looped_clip(source: Path, target: Path, seconds: float) -> int:
    """Loop `source`'s video until `seconds` long; returns the frame count (video only, x264)."""
    import av
    from vidrestore.media.decode import VideoReader
    with VideoReader(source) as r:
        frames = [f.rgb for f in r]
        rate = r.info.avg_rate or Fraction(25)
    n = int(round(seconds * rate))
    with av.open(str(target), "w") as out:
        st = out.add_stream("libx264", rate=rate)
        st.width, st.height = frames[0].shape[1], frames[0].shape[0]
        st.pix_fmt = "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(n):
            # ping-pong so the loop has no jump in face position
            k = i % (2 * len(frames) - 2)
            img = frames[k if k < len(frames) else 2 * len(frames) - 2 - k]
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            for p in st.encode(vf):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return n


def run_child(clip: Path, out: Path, restorer: str) -> dict:
    code = ("import json,resource,sys,time;from vidrestore.pipeline import restore_video;"
            "from vidrestore.config import *;"
            f"cfg=RestoreConfig(model=ModelConfig(restorer={restorer!r}),"
            "encode=EncodeConfig(preset='ultrafast'),overwrite=True);"
            f"t=time.perf_counter();r=restore_video({str(clip)!r},{str(out)!r},cfg);"
            "print(json.dumps({'frames':r.frames_written,'wall_s':time.perf_counter()-t,"
            "'peak_rss_mb':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--short", type=float, default=10.0)
    ap.add_argument("--long", type=float, default=120.0)
    ap.add_argument("--restorer", default="identity", choices=["identity", "gfpgan"])
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args(argv)
    res: dict = {"benchmark": "memory", "date": date.today().isoformat(), "host": platform.node(),
                 "python": platform.python_version(), "source": str(a.source), "restorer": a.restorer}
    with tempfile.TemporaryDirectory() as d:
        for label, secs in (("short", a.short), ("long", a.long)):
            clip = Path(d) / f"{label}.mp4"
            t = time.perf_counter()
            n = make_looped_clip(a.source, clip, secs)
            r = run_child(clip, Path(d) / f"{label}_out.mp4", a.restorer)
            r.update(seconds=secs, frames_in=n, make_s=time.perf_counter() - t - r["wall_s"])
            res[label] = r
    res["rss_ratio_long_over_short"] = res["long"]["peak_rss_mb"] / res["short"]["peak_rss_mb"]
    res["within_10_percent"] = res["rss_ratio_long_over_short"] <= 1.10
    # the parent's own peak must stay small too (it holds one looped source clip in memory)
    res["parent_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res, indent=2))
    if not a.no_save:
        out = REPO / "benchmarks" / "results" / f"memory-{res['date']}-{res['host']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
