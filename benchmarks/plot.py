"""PNG charts from benchmark JSON files (matplotlib, Agg backend).

``python -m benchmarks.plot benchmarks/results/*.json --out benchmarks/results/plots/``

Every input file is one JSON object; every section is optional and the sections of all files are
concatenated (a chart is drawn when at least one file has data for it)::

    {
      "pipeline": [                      # or one such object; benchmarks/reference_loop.py writes this
        {"label": "reference: GFPGAN + facexlib, torch FP32 cpu",   # default: file name
         "backend": "torch", "precision": "fp32", "device": "cpu",  # optional, appended to the label
         "frames": 3,
         "fps": 0.29,                    # default: frames / seconds.total
         "seconds": {"decode": 0.01, "detect": 0.5, "align": 0.01,  # wall seconds per stage, summed over
                     "restore": 9.8, "paste": 0.03, "encode": 0.02, # the run; other stage names are kept
                     "total": 10.4}}                                # in the order they appear
      ],
      "model": [                         # restorer throughput by batch size
        {"backend": "tensorrt", "precision": "fp16", "batch": 8, "faces_per_s": 310.0, "device": "H100"}
      ],
      "scaling": {
        "faces":      [{"label": "ours trt fp16", "faces_per_frame": 4, "fps": 45.0}],
        "resolution": [{"label": "ours trt fp16", "resolution": "1080p", "fps": 60.0}]
      }
    }

Charts written to ``--out``: ``pipeline_stages.png`` (per pipeline run: share of each stage in the time
per frame as stacked bars, and frames/s on a log axis), ``model_throughput.png`` (faces/s against batch,
one line per backend/precision/device), ``scaling.png`` (frames/s against faces per frame, 1/2/4/8, and
against resolution, 480p/720p/1080p/4K).
"""
from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path

from vidrestore.errors import InputError

__all__ = ["load_results", "plot_all", "plot_pipeline", "plot_model", "plot_scaling", "main"]

STAGE_ORDER = ("decode", "detect", "track", "smooth", "align", "restore", "paste", "encode")
RESOLUTION_ORDER = ("240p", "360p", "480p", "512p", "720p", "1080p", "1440p", "4K", "2160p")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_results(paths: list[str | os.PathLike[str]]) -> dict:
    """Merge benchmark JSON files into {"pipeline": [...], "model": [...], "scaling": {"faces", "resolution"}}."""
    merged: dict = {"pipeline": [], "model": [], "scaling": {"faces": [], "resolution": []}}
    for p in paths:
        path = Path(p)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable benchmark JSON file ({exc})", path=path) from exc
        if not isinstance(data, dict):
            raise InputError("a benchmark JSON file must hold one object", path=path)
        pipeline = data.get("pipeline") or []
        for run in [pipeline] if isinstance(pipeline, dict) else pipeline:
            merged["pipeline"].append({"label": path.stem, **run})
        merged["model"] += [dict(r) for r in data.get("model") or []]
        if data.get("benchmark") == "model_throughput":       # benchmarks/model_throughput.py's rows
            merged["model"] += [model_row(r, data) for r in data.get("results") or []]
        scaling = data.get("scaling") or {}
        for key in ("faces", "resolution"):
            merged["scaling"][key] += [{"label": path.stem, **r} for r in scaling.get(key) or []]
    return merged


def model_row(result: dict, data: dict) -> dict:
    """A row of model_throughput's ``results`` in the ``model`` schema (backend, precision, device,
    batch, faces_per_s); the precision is the file's dtype unless the backend name carries one."""
    backend = str(result.get("backend", "model"))
    dtype = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(data.get("dtype")), "")
    named = next((p for p in ("int8", "fp16", "fp32", "bf16") if p in backend), None)
    return {"backend": backend, "precision": named or dtype, "device": data.get("device", ""),
            "batch": result.get("batch"), "faces_per_s": result.get("faces_per_s")}


def _run_label(run: dict) -> str:
    extra = [str(run[k]) for k in ("backend", "precision", "device") if run.get(k) and str(run[k]) not in run["label"]]
    return run["label"] + (f" [{' '.join(extra)}]" if extra else "")


def latest_per_label(runs: list[dict]) -> list[dict]:
    """One run per label: a later run replaces an earlier one, in the earlier one's place."""
    return list({_run_label(r): r for r in runs}.values())


def plot_pipeline(runs: list[dict], out: Path) -> Path | None:
    """Stacked stage shares of the time per frame, and frames/s (log axis), one bar per run label (a
    later run replaces an earlier one of the same label: pass the newest file last)."""
    runs = latest_per_label([r for r in runs if r.get("seconds") and r.get("frames")])
    if not runs:
        return None
    plt = _pyplot()
    stages: list[str] = [s for s in STAGE_ORDER if any(s in r["seconds"] for r in runs)]
    stages += [s for r in runs for s in r["seconds"] if s not in stages and s != "total"
               and not s.startswith("cpu")]
    stages = list(dict.fromkeys(stages))
    labels = [textwrap.fill(_run_label(r), 44) for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 1.8 + 0.8 * len(runs)), squeeze=True,
                                   gridspec_kw={"width_ratios": [3, 2]})
    cmap = plt.get_cmap("tab10")
    left = [0.0] * len(runs)
    for i, stage in enumerate(stages):
        per_frame = [1000.0 * r["seconds"].get(stage, 0.0) / r["frames"] for r in runs]
        totals = [sum(1000.0 * v / r["frames"] for k, v in r["seconds"].items() if k in stages) or 1.0
                  for r in runs]
        share = [100.0 * v / t for v, t in zip(per_frame, totals)]
        ax1.barh(labels, share, left=left, color=cmap(i % 10), label=stage)
        left = [a + b for a, b in zip(left, share)]
    ax1.set_xlim(0, 100)
    ax1.set_xlabel("share of the time per frame (%)")
    ax1.invert_yaxis()
    ax1.legend(ncol=min(len(stages), 8), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fps = [r.get("fps") or r["frames"] / max(r["seconds"].get("total") or sum(r["seconds"].values()), 1e-12)
           for r in runs]
    bars = ax2.barh(labels, fps, color="tab:gray")
    ax2.set_xscale("log")
    ax2.set_xlabel("frames per second (log)")
    ax2.set_yticks([])
    ax2.invert_yaxis()
    for bar, f, r in zip(bars, fps, runs):
        per = (f"{1 / f:.3g} s/frame" if f < 1 else f"{1000 / f:.3g} ms/frame") if f > 0 else "no frames"
        ax2.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {f:.3g} fps\n {per}",
                 va="center", fontsize=8)
    low = min(f for f in fps if f > 0) / 3 if any(f > 0 for f in fps) else 1e-3
    ax2.set_xlim(low, max(max(fps) * 300, low * 1e4))
    fig.tight_layout()
    return _save(fig, out / "pipeline_stages.png")


def plot_model(rows: list[dict], out: Path) -> Path | None:
    """Faces/s against batch size, one line per backend/precision(/device)."""
    rows = [r for r in rows if r.get("batch") and r.get("faces_per_s") is not None]
    if not rows:
        return None
    plt = _pyplot()
    series: dict[str, dict[int, float]] = {}
    for r in rows:                          # a later row of the same series and batch replaces one
        backend = str(r.get("backend", ""))
        key = " ".join([backend] + [str(r[k]) for k in ("precision", "device") if r.get(k) and str(r[k]) not in backend])
        series.setdefault(key.strip() or "model", {})[int(r["batch"])] = float(r["faces_per_s"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, by_batch in sorted(series.items()):
        pts = sorted(by_batch.items())
        ax.plot([b for b, _ in pts], [f for _, f in pts], marker="o", label=key)
    batches = sorted({int(r["batch"]) for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_yscale("log")
    ax.set_xlabel("batch (faces per call)")
    ax.set_ylabel("faces per second (log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Restorer throughput by batch size")
    fig.tight_layout()
    return _save(fig, out / "model_throughput.png")


def _res_key(name: str) -> tuple[int, str]:
    return (RESOLUTION_ORDER.index(name) if name in RESOLUTION_ORDER else len(RESOLUTION_ORDER), name)


def plot_scaling(scaling: dict, out: Path) -> Path | None:
    """Frames/s against faces per frame and against resolution (one panel each, if present)."""
    faces = [r for r in scaling.get("faces", []) if r.get("faces_per_frame") and r.get("fps") is not None]
    res = [r for r in scaling.get("resolution", []) if r.get("resolution") and r.get("fps") is not None]
    panels = [p for p in (("faces", faces), ("resolution", res)) if p[1]]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (kind, rows) in zip(axes[0], panels):
        by_label: dict[str, list[dict]] = {}
        for r in rows:
            by_label.setdefault(str(r["label"]), []).append(r)
        if kind == "faces":
            for label, rs in sorted(by_label.items()):
                rs.sort(key=lambda r: r["faces_per_frame"])
                ax.plot([r["faces_per_frame"] for r in rs], [r["fps"] for r in rs], marker="o", label=label)
            ticks = sorted({int(r["faces_per_frame"]) for r in rows})
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlabel("faces per frame")
            ax.set_title("Scaling with faces per frame")
        else:
            names = sorted({str(r["resolution"]) for r in rows}, key=_res_key)
            for label, rs in sorted(by_label.items()):
                rs.sort(key=lambda r: _res_key(str(r["resolution"])))
                ax.plot([names.index(str(r["resolution"])) for r in rs], [r["fps"] for r in rs], marker="o",
                        label=label)
            ax.set_xticks(range(len(names)), names)
            ax.set_xlabel("resolution")
            ax.set_title("Scaling with resolution")
        ax.set_yscale("log")
        ax.set_ylabel("frames per second (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out / "scaling.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_all(paths: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Read the JSON files and write every chart their data allows; returns the PNG paths written."""
    data = load_results(paths)
    out = Path(out_dir)
    written = [plot_pipeline(data["pipeline"], out), plot_model(data["model"], out),
               plot_scaling(data["scaling"], out)]
    return [p for p in written if p is not None]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot", description="PNG charts from benchmark JSON")
    parser.add_argument("results", nargs="+", help="benchmark JSON files")
    parser.add_argument("--out", default="benchmarks/results/plots", help="folder for the PNG files")
    args = parser.parse_args(argv)
    written = plot_all(args.results, args.out)
    for p in written:
        print(p)
    if not written:
        print("no chartable data in", ", ".join(args.results))
    return written


if __name__ == "__main__":
    main()
