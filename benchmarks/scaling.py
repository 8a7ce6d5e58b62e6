"""Scaling study, profile and fix A/B for :mod:`benchmarks.pipeline_throughput` (``--scaling``,
``--profile``, ``--ab-fixes``).

Faces: the one-face talking head (clips/lp_d0_talking_512.mp4) tiled 1/2/4/8 times into a grid (1x1,
1x2, 2x2, 2x4 copies of the same real frame, so every face has the same size and the network cost per
face is constant); run with the network (the first variant that built, or ``--scaling-variant``) at
batch 1 and at the batch(es) in ``--scaling-batches``: seconds per face should not grow with batching.

Resolution: a real interview clip (clips/lp_s18_interview_1280x720_audio.mp4, one face) rescaled with
swscale (bicubic) to 480p/720p/1080p/4K and run with the identity restorer: this measures everything
but the network (decode, detect, align, paste, encode). The network's cost per face does not depend on
the frame size, so the estimate for a real run is the identity run's seconds per frame plus faces per
frame x the measured restore seconds per face (the stages share 2 cores, so they add up).

Skipping: the 720p clip with ``min_face`` larger than any face, and the no-face cartoon
(edge/no_faces_cartoon_landscape.mp4), both with the network: the restore stage must show about 0 s.

Profile: cProfile in every pipeline thread (``threading.Thread.run`` wrapped for the duration of the
run; stats merged) of the identity pipeline on the 720p clip; top 15 by own time and by cumulative time.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import threading
from pathlib import Path

from .pipeline_runs import make_clip

FACE_CLIP = "clips/lp_d0_talking_512.mp4"
RES_CLIP = "clips/lp_s18_interview_1280x720_audio.mp4"
NOFACE_CLIP = "edge/no_faces_cartoon_landscape.mp4"
RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
TILE = {1: "1x1", 2: "1x2", 4: "2x2", 8: "2x4"}


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _per_frame(entry: dict) -> dict[str, float]:
    n = max(entry["frames"], 1)
    return {k: v / n for k, v in entry["seconds"].items()}


def run_scaling(root: Path, tmp: Path, *, built: dict, args, lines: list[str]) -> dict:
    """The "scaling" section: {"faces": [...], "resolution": [...], "skip": [...], "notes": [...]}."""
    from vidrestore.config import AlignConfig, RestoreConfig

    from .pipeline_runs import build_variant, ensure_checkpoint, parse_variants, run_ours, variant_label

    frames = args.scaling_frames
    threads = args.threads or 0
    weights = Path(args.weights) if args.weights else None
    weights = ensure_checkpoint(weights)
    # the network variant for the faces and skip studies
    if args.scaling_variant:
        backend_name, precision = parse_variants(args.scaling_variant)[0]
    else:
        nets = [k for k in built if k != "identity"]
        backend_name, precision = (nets[0].split(":") if nets else ("identity", "fp32"))
    label = variant_label(backend_name, precision)
    out: dict = {"faces": [], "resolution": [], "skip": [], "notes": [], "variant": label}
    cache: dict[int, tuple] = {}

    def backend_for(batch: int):
        if batch not in cache:
            warm = None if args.no_warmup else make_clip(root / FACE_CLIP, tmp / f"warm-b{batch}.mp4",
                                                         frames=batch)
            be, reason, setup, mc = build_variant(backend_name, precision, weights=weights, batch=batch,
                                                  threads=threads, warmup_clip=warm)
            cache[batch] = (be, reason, mc)
        return cache[batch]

    # faces per frame
    for n in _ints(args.face_counts):
        clip = make_clip(root / FACE_CLIP, tmp / f"faces{n}.mp4", frames=frames, tile=n)
        for batch in _ints(args.scaling_batches):
            be, reason, mc = backend_for(batch)
            e = run_ours(clip, tmp / f"faces{n}-b{batch}-out.mp4", be, reason, model_config=mc,
                         label=f"{label} batch {batch}")
            row = {"label": f"vidrestore {label} batch {batch}", "faces_per_frame": n, "grid": TILE.get(n),
                   "faces_per_frame_measured": e["faces"] / max(e["frames"], 1), "batch": batch,
                   "fps": e["fps"], "seconds_per_frame": e["seconds_per_frame"],
                   "restore_seconds_per_face": e["restore_seconds_per_face"],
                   "wall_seconds_per_face": e["seconds"]["total"] / e["faces"] if e["faces"] else None,
                   "stage_seconds_per_frame": _per_frame(e), "loadavg_before": e["loadavg_before"]}
            out["faces"].append(row)
            lines.append(f"faces {n} ({TILE.get(n)}), batch {batch}: {row['fps']:.3f} fps, "
                         f"{row['faces_per_frame_measured']:.1f} faces/frame, restore "
                         f"{_fmt(row['restore_seconds_per_face'])} s/face, wall {_fmt(row['wall_seconds_per_face'])}"
                         f" s/face")
    out["batching"] = _batching_verdict(out["faces"], lines)
    # per-face network cost for the resolution estimate
    per_face = _per_face_cost(built, out["faces"], label)
    # resolution, identity restorer
    ident, ireason, _, imc = build_variant("identity", "fp32", weights=weights, batch=args.batch, threads=threads)
    for name in [r.strip() for r in args.resolutions.split(",") if r.strip()]:
        clip = make_clip(root / RES_CLIP, tmp / f"res-{name}.mp4", frames=frames, size=RESOLUTIONS[name])
        e = run_ours(clip, tmp / f"res-{name}-out.mp4", ident, ireason, model_config=imc, label="identity")
        pf = _per_frame(e)
        faces = e["faces"] / max(e["frames"], 1)
        row = {"label": "vidrestore identity (non-network stages)", "resolution": name, "fps": e["fps"],
               "faces_per_frame": faces, "stage_seconds_per_frame": pf, "loadavg_before": e["loadavg_before"]}
        out["resolution"].append(row)
        busiest = max((k for k in pf if k != "total"), key=pf.get)
        text = (f"{name}: identity {e['fps']:.2f} fps; per frame " +
                ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in pf.items() if k != "total"))
        if per_face:
            net = faces * per_face
            est = pf["total"] + net
            out["resolution"].append({"label": f"vidrestore {label} (estimate: identity + faces x s/face)",
                                      "resolution": name, "fps": 1.0 / est if est > 0 else 0.0,
                                      "estimated": True, "network_seconds_per_frame": net,
                                      "non_network_seconds_per_frame": pf["total"]})
            dom = "restore (network)" if net > pf.get(busiest, 0.0) else busiest
            text += f"; with {label}: restore {net:.2f} s/frame vs busiest other stage {busiest} " \
                    f"{pf[busiest]:.3f} s -> {dom} dominates, est. {1 / est:.3f} fps"
        lines.append(text)
    # skipping work
    be, reason, mc = backend_for(args.batch)
    clip720 = make_clip(root / RES_CLIP, tmp / "skip720.mp4", frames=frames)
    big = RestoreConfig(align=AlignConfig(min_face=100000))
    noface = make_clip(root / NOFACE_CLIP, tmp / "noface.mp4", frames=frames)
    for name, clip, rc in (("720p, min_face=100000 (every face too small)", clip720, big),
                           ("no-face clip (edge/no_faces_cartoon_landscape.mp4)", noface, None)):
        e = run_ours(clip, tmp / "skip-out.mp4", be, reason, model_config=mc, label=label, restore_config=rc)
        row = {"label": f"vidrestore {label}: {name}", "frames": e["frames"], "fps": e["fps"],
               "faces_detected": e["faces_detected"], "faces_restored": e["faces"],
               "faces_skipped_small": e["faces_skipped_small"], "seconds": e["seconds"]}
        out["skip"].append(row)
        lines.append(f"skip {name}: restore {e['seconds'].get('restore', 0.0):.4f} s, {e['faces']} faces "
                     f"restored, {e['faces_skipped_small']} skipped small, {e['fps']:.2f} fps")
    out["notes"].append(f"faces: {FACE_CLIP} tiled into 1x1/1x2/2x2/2x4 grids; resolution: {RES_CLIP} "
                        f"rescaled (bicubic) and run with the identity restorer; estimate rows add faces x "
                        f"{_fmt(per_face)} s/face measured with {label}")
    return out


def _batching_verdict(rows: list[dict], lines: list[str]) -> list[dict]:
    """Per face count: restore seconds per face at each batch relative to batch 1 (<= 1 = no worse)."""
    out = []
    for n in sorted({r["faces_per_frame"] for r in rows}):
        by_batch = {r["batch"]: r for r in rows if r["faces_per_frame"] == n}
        base = by_batch.get(1, {}).get("restore_seconds_per_face")
        for b, r in sorted(by_batch.items()):
            if b == 1 or not base or not r.get("restore_seconds_per_face"):
                continue
            ratio = r["restore_seconds_per_face"] / base
            out.append({"faces_per_frame": n, "batch": b, "restore_per_face_vs_batch1": ratio,
                        "no_worse": ratio <= 1.05})
            lines.append(f"batching, {n} faces/frame: batch {b} restore per face = {ratio:.2f}x batch 1 "
                         f"({'no worse' if ratio <= 1.05 else 'WORSE'}, 5% tolerance)")
    return out


def _per_face_cost(built: dict, face_rows: list[dict], label: str) -> float | None:
    """Restore seconds per face: from the main run of ``label`` if it ran, else the faces study (None for
    the identity restorer: it has no network cost to add)."""
    if label == "identity":
        return None
    if label in built and built[label][3].get("restore_seconds_per_face"):
        return built[label][3]["restore_seconds_per_face"]
    vals = [r["restore_seconds_per_face"] for r in face_rows if r.get("restore_seconds_per_face")]
    return min(vals) if vals and label != "identity" else None


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


class _ThreadProfiles:
    """cProfile in every thread started inside the block (``threading.Thread.run`` wrapped)."""

    def __enter__(self):
        self.profiles: list[cProfile.Profile] = []
        self._orig = threading.Thread.run
        profiles, orig = self.profiles, self._orig

        def run(thread):
            pr = cProfile.Profile()
            profiles.append(pr)
            pr.enable()
            try:
                orig(thread)
            finally:
                pr.disable()
        threading.Thread.run = run
        self.main = cProfile.Profile()
        self.main.enable()
        return self

    def __exit__(self, *exc):
        self.main.disable()
        threading.Thread.run = self._orig

    def stats(self) -> pstats.Stats:
        s = pstats.Stats(self.main)
        for p in self.profiles:
            s.add(p)
        return s


def profile_identity(root: Path, tmp: Path, *, frames: int = 12, top: int = 15) -> dict:
    """cProfile of the identity pipeline on a 720p one-face clip; top functions by own and cumulative time."""
    from vidrestore.config import ModelConfig, RestoreConfig
    from vidrestore.backends.factory import create_backend
    from vidrestore.pipeline import restore_video

    clip = make_clip(root / RES_CLIP, tmp / "profile720.mp4", frames=frames)
    mc = ModelConfig(restorer="identity", device="cpu")
    cfg = RestoreConfig(model=mc, overwrite=True)
    be, reason = create_backend(mc)
    plain = restore_video(clip, tmp / "profile-plain.mp4", cfg, backend=be, backend_reason=reason)
    with _ThreadProfiles() as prof:
        rep = restore_video(clip, tmp / "profile-out.mp4", cfg, backend=be, backend_reason=reason)
    stats = prof.stats()
    rows = [(fn, st[1], st[2], st[3]) for fn, st in stats.stats.items() if not _is_wait(fn)]
    tables = {key: _table(sorted(rows, key=lambda r: -r[col])[:top])
              for key, col in (("tottime", 2), ("cumulative", 3))}
    rows = sorted(rows, key=lambda r: -r[2])[:top]
    lines = [f"profile: identity pipeline, {RES_CLIP} first {frames} frames (720p), "
             f"unprofiled {plain.wall_seconds:.2f} s ({plain.fps:.2f} fps), stage seconds "
             + ", ".join(f"{k} {v:.3f}" for k, v in plain.stage_seconds.items()),
             "top by own time (all threads):", tables["tottime"], "top by cumulative time:", tables["cumulative"]]
    return {"clip": RES_CLIP, "frames": frames, "unprofiled_wall_seconds": plain.wall_seconds,
            "unprofiled_stage_seconds": dict(plain.stage_seconds),
            "profiled_wall_seconds": rep.wall_seconds, "profiled_stage_seconds": dict(rep.stage_seconds),
            "top_tottime": [{"function": _name(fn), "tottime": tt, "cumtime": ct, "calls": nc}
                            for fn, nc, tt, ct in rows],
            "tables": tables, "lines": lines}


_WAIT_FILES = ("threading.py", "queue.py")


def _is_wait(fn: tuple) -> bool:
    """Blocking waits between pipeline threads (lock acquire, queue get/put, Thread.run wrappers):
    idle time, not work; left out of the tables."""
    file, _, name = fn
    return file.endswith(_WAIT_FILES) or "_thread.lock" in name or "_thread.RLock" in name \
        or name in ("_get", "_put", "run") and file.endswith("pipeline.py") or name == "<built-in method time.sleep>"


def _name(fn: tuple) -> str:
    file, line, name = fn
    if file == "~":
        return name
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if "site-packages" not in parts else "/".join(parts[parts.index("site-packages") + 1:])
    return f"{short}:{line}({name})"


def _table(rows: list[tuple]) -> str:
    head = f"{'calls':>8} {'own s':>8} {'cum s':>8}  function"
    return "\n".join([head] + [f"{nc:>8} {tt:>8.3f} {ct:>8.3f}  {_name(fn)}" for fn, nc, tt, ct in rows])


# ---------------------------------------------------------------------------------------------
# proposed fixes, measured A/B (the pipeline's own modules are not changed here)


def proposed_cpu_ops():
    """CpuImageOps with the fixes proposed for vidrestore/faces/{align,ops}.py, for an A/B via image_ops=.

    - to_input/from_output in numpy instead of torch element-wise ops: torch runs each op on its
      intra-op thread pool, which fights the detector's onnxruntime threads and the encoder for the
      same 2 cores; numpy's single-threaded ops give bit-identical results;
    - paste in place: restore_video's frames are decoded by us and dropped after paste, so the full-frame
      copy in paste_faces is unnecessary (NOT safe for Restorer.restore_frames, whose input arrays belong
      to the caller).
    """
    import numpy as np
    import torch

    from vidrestore.faces.ops import CpuImageOps

    class ProposedCpuOps(CpuImageOps):
        def to_input(self, crops):
            x = np.asarray(crops, dtype=np.float32).transpose(0, 3, 1, 2)
            x = np.ascontiguousarray(x)
            x /= np.float32(127.5)
            x -= np.float32(1.0)
            return torch.from_numpy(x)

        def from_output(self, restored):
            a = restored.detach().to(torch.float32).cpu().numpy().transpose(0, 2, 3, 1)
            out = np.clip(a, -1.0, 1.0)
            out += np.float32(1.0)
            out *= np.float32(127.5)
            np.rint(out, out=out)
            return np.ascontiguousarray(out.astype(np.uint8))

    return ProposedCpuOps(paste_inplace=True)


def ab_fixes(root: Path, tmp: Path, *, frames: int = 12, sizes: tuple[str, ...] = ("720p", "4K"),
             repeats: int = 2) -> dict:
    """Identity pipeline with the current CpuImageOps (A) and :func:`proposed_cpu_ops` (B), interleaved
    ``repeats`` times per size; the best (minimum) of each stage's busy seconds and of the wall time."""
    from vidrestore.backends.factory import create_backend
    from vidrestore.config import ModelConfig, RestoreConfig
    from vidrestore.faces.ops import CpuImageOps
    from vidrestore.pipeline import restore_video

    mc = ModelConfig(restorer="identity", device="cpu")
    cfg = RestoreConfig(model=mc, overwrite=True)
    be, reason = create_backend(mc)
    rows, lines = [], []
    for name in sizes:
        clip = make_clip(root / RES_CLIP, tmp / f"ab-{name}.mp4", frames=frames, size=RESOLUTIONS[name])
        best: dict[str, dict[str, float]] = {"current": {}, "proposed": {}}
        for _ in range(repeats):
            for key, ops in (("current", CpuImageOps()), ("proposed", proposed_cpu_ops())):
                rep = restore_video(clip, tmp / "ab-out.mp4", cfg, backend=be, backend_reason=reason,
                                    image_ops=ops)
                for stage, sec in {**rep.stage_seconds, "wall": rep.wall_seconds}.items():
                    best[key][stage] = min(best[key].get(stage, float("inf")), sec)
        rows.append({"resolution": name, "frames": frames, "repeats": repeats, **best})
        ms = {k: {s: 1000 * v / frames for s, v in d.items()} for k, d in best.items()}
        lines.append(f"A/B {name} ({frames} frames, best of {repeats}), ms/frame current -> proposed: " +
                     ", ".join(f"{s} {ms['current'][s]:.1f} -> {ms['proposed'].get(s, 0.0):.1f}"
                               for s in ("restore", "paste", "wall") if s in ms["current"]))
    return {"rows": rows, "lines": lines}
