"""Training-state checkpoints: save (rank 0 only), resume, and ``--init-from`` for fine-tuning.

A state holds everything needed to continue bit-exactly: networks, EMA, optimisers, schedulers, grad
scaler, RNG states (torch, CUDA, numpy, python), the iteration and the number of training draws
consumed, which fixes the data order. Every rank keeps identical networks and optimiser states (the
gradients are averaged), so one file describes the whole run and can be resumed with any number of
ranks: the data continue at the same draw; only the batch grouping follows the new configuration.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidrestore.errors import CheckpointError

from .config import to_dict
from .pretrained import load_torch

if TYPE_CHECKING:
    from .loop import Trainer

CHECKPOINT_VERSION = 2          # 2: + samples_seen, world_size, accumulate (1 is still read)
NETWORKS = ("g", "g_ema", "d", "comps")


def state_dict(tr: "Trainer") -> dict[str, Any]:
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                           "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "version": CHECKPOINT_VERSION, "iteration": tr.iteration, "samples_seen": tr.samples_seen,
        "config": to_dict(tr.cfg), "batch_size": tr.cfg.data.batch_size,
        "world_size": tr.dist.world_size, "accumulate": tr.cfg.train.accumulate,
        "g": tr.g.state_dict(), "g_ema": tr.g_ema.state_dict(), "d": tr.d.state_dict(),
        "comps": tr.comps.state_dict() if tr.comps is not None else None,
        "optimizers": [o.state_dict() for o in tr.optimizers],
        "schedulers": [s.state_dict() for s in tr.schedulers],
        "scaler": tr.scaler.state_dict(), "rng": rng,
    }


def save_checkpoint(tr: "Trainer", path: str | Path | None = None) -> Path:
    """Training state (``checkpoints/state_<iter>.pt``, written atomically) plus the EMA generator in
    release format (``models/net_g_ema_<iter>.pth``); keeps the newest ``logging.keep_checkpoints``."""
    from .export import export_generator
    ckdir = tr.out_dir / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    path = Path(path) if path is not None else ckdir / f"state_{tr.iteration:08d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state_dict(tr), tmp)
    tmp.replace(path)
    (tr.out_dir / "models").mkdir(exist_ok=True)
    export_generator(tr.g_ema, tr.out_dir / "models" / f"net_g_ema_{tr.iteration:08d}.pth")
    keep = tr.cfg.logging.keep_checkpoints
    if keep > 0:
        for old in sorted(ckdir.glob("state_*.pt"))[:-keep]:
            old.unlink()
    return path


def _read(path: Path) -> dict[str, Any]:
    st = load_torch(path, what="training checkpoint", numpy=True)   # weights-only; the numpy RNG state is admitted
    if not isinstance(st, dict) or st.get("version") not in (1, CHECKPOINT_VERSION):
        raise CheckpointError("not a training-state checkpoint of this version", path=path)
    return st


def _load_networks(tr: "Trainer", st: dict[str, Any], path: Path) -> None:
    try:
        tr.g.load_state_dict(st["g"])
        tr.g_ema.load_state_dict(st["g_ema"])
        tr.d.load_state_dict(st["d"])
        if tr.comps is not None:
            if st["comps"] is None:
                raise ValueError("the checkpoint has no component discriminators")
            tr.comps.load_state_dict(st["comps"])
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"does not match this configuration: {str(exc)[:300]}", path=path) from None


def load_checkpoint(tr: "Trainer", path: str | Path) -> None:
    """Restore everything saved by :func:`save_checkpoint` (any world size). Loads a pickle: only your
    own files."""
    path = Path(path)
    st = _read(path)
    _load_networks(tr, st, path)
    try:
        for o, s in zip(tr.optimizers, st["optimizers"], strict=True):
            o.load_state_dict(s)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"does not match this configuration: {str(exc)[:300]}", path=path) from None
    for s, ss in zip(tr.schedulers, st["schedulers"]):
        s.load_state_dict(ss)
    tr.scaler.load_state_dict(st["scaler"])
    rng = st["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    tr.iteration = int(st["iteration"])
    tr.samples_seen = int(st.get("samples_seen", tr.iteration * st["batch_size"]))
    tr.resumed_from = {"world_size": int(st.get("world_size", 1)), "accumulate": int(st.get("accumulate", 1)),
                       "batch_size": int(st["batch_size"])}


def init_from(tr: "Trainer", path: str | Path) -> None:
    """Fine-tuning start: the generator, its EMA and every discriminator of a training state; the
    optimisers, schedules, iteration and data order start afresh."""
    path = Path(path)
    _load_networks(tr, _read(path), path)
