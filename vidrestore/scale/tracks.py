"""Track IDs across chunks: one face keeps one ID.

Every chunk numbers its tracks from 0. Chunk k+1's warm-up re-analyses the last frames chunk k wrote,
and after warm-up both reach the same tracker state, so the same face has the same alignment matrix in
both on those frames (``Report.seam_faces``). IDs are matched there (latest frames first); a track not
found in the overlap is new and gets the next free ID. Tracks that only lived in a chunk's warm-up or
look-ahead belong to the neighbouring chunk and are left out.
"""
from __future__ import annotations

from typing import Any

_TOL = 0.05          # matrix entries are rounded to 1e-3; identical state gives identical matrices


def reconcile(results: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """``[(start, end, chunk result)]`` in order -> merged track summaries with global IDs."""
    merged: dict[int, dict[str, Any]] = {}
    prev: dict[int, list[tuple[int, list[float]]]] = {}
    next_id = 0
    for start, end, res in results:
        seam = {int(f): [(int(t), m) for t, m in faces] for f, faces in res.get("seam_faces", {}).items()}
        mapping: dict[int, int] = {}
        for f in sorted(set(seam) & set(prev), reverse=True):
            for tid, m in seam[f]:
                if tid in mapping:
                    continue
                for gid, pm in prev[f]:
                    if gid not in mapping.values() and max(abs(a - b) for a, b in zip(m, pm)) < _TOL:
                        mapping[tid] = gid
                        break
        for t in sorted(res.get("tracks", []), key=lambda t: (t["first_frame"], t["track_id"])):
            if t["last_frame"] < start or t["first_frame"] >= end:
                continue                                   # warm-up or look-ahead only
            gid = mapping.get(t["track_id"])
            if gid is None:
                gid = mapping[t["track_id"]] = next_id
            next_id = max(next_id, gid + 1)
            m = merged.setdefault(gid, {"track_id": gid, "first_frame": max(t["first_frame"], start),
                                        "last_frame": -1, "frames": 0, "raw_jitter_px": None,
                                        "smoothed_jitter_px": None, "chunks": []})
            m["last_frame"] = max(m["last_frame"], min(t["last_frame"], end - 1))
            m["frames"] += t["frames"]
            m["chunks"].append(start)
            for k in ("raw_jitter_px", "smoothed_jitter_px"):
                if t.get(k) is not None:
                    m[k] = max(m[k] or 0.0, t[k])
        prev = {f: [(mapping[tid], m) for tid, m in faces if tid in mapping] for f, faces in seam.items()}
    return [merged[k] for k in sorted(merged)]
