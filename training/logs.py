"""Run logs: a CSV of scalars (always), TensorBoard (when installed), sample grids as PNG."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from .metrics import to_uint8_image


class RunLog:
    """Append scalars per iteration to ``<dir>/log.csv`` (one column per key, fixed at construction;
    an empty cell when a term was not computed that iteration) and to TensorBoard when available."""

    def __init__(self, out_dir: str | Path, keys: list[str], *, tensorboard: bool = True,
                 resume_at: int | None = None) -> None:
        """``resume_at``: drop rows logged after that iteration (a resumed run rewrites them)."""
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keys = ["iter", *keys]
        self.path = self.dir / "log.csv"
        if self.path.exists():
            with self.path.open() as f:
                rows = list(csv.reader(f))
            if rows and rows[0] != self.keys:
                self.path.rename(self.path.with_suffix(".old.csv"))
            elif rows and resume_at is not None:
                kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_at]
                with self.path.open("w", newline="") as f:
                    csv.writer(f).writerows(kept)
        new = not self.path.exists()
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.keys)
            self._file.flush()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.dir / "tb"))
            except ImportError:                      # tensorboard not installed: CSV only
                self._tb = None

    def write(self, iteration: int, values: dict[str, float]) -> None:
        unknown = set(values) - set(self.keys)
        if unknown:
            raise KeyError(f"log keys not declared: {sorted(unknown)}")
        self._csv.writerow([iteration] + [_fmt(values.get(k)) for k in self.keys[1:]])
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, iteration)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return repr(float(v)) if math.isfinite(v) else str(float(v))


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The CSV back as dicts (empty cells dropped)."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def save_grid(path: str | Path, rows: list[list[torch.Tensor]]) -> Path:
    """Write images (3, H, W) in [-1, 1], row by row (e.g. [lq, restored, gt] per face), as one PNG."""
    tiles = [np.concatenate([to_uint8_image(t) for t in row], axis=1) for row in rows]
    grid = np.concatenate(tiles, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(grid[..., ::-1])):
        raise OSError(f"cannot write {path}")
    return path
