"""Export a trained generator in the authors' release format (``{"params_ema": state_dict}``).

The file is written by ``vidrestore.models.save_gfpgan``, so ``vidrestore.models.load_gfpgan``, the ONNX
exporter and the TensorRT builder take it unchanged.

    python -m training.export experiments/run/checkpoints/state_00800000.pt GFPGAN_mine.pth [--raw]

``--raw`` exports the non-averaged generator (``g``) instead of the EMA one.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

from torch import Tensor, nn

from vidrestore.errors import CheckpointError

from .pretrained import load_torch


def export_generator(model_or_state: nn.Module | Mapping[str, Tensor], path: str | Path) -> Path:
    """Write a generator (module or state dict) as ``{"params_ema": ...}`` via save_gfpgan."""
    from vidrestore.models import save_gfpgan
    return save_gfpgan(model_or_state, path, key="params_ema")


def export_checkpoint(state_path: str | Path, out_path: str | Path, *, ema: bool = True) -> Path:
    """Training-state checkpoint (loop.Trainer.save_checkpoint) -> release-format generator file."""
    state_path = Path(state_path)
    st = load_torch(state_path, what="training checkpoint", numpy=True)
    key = "g_ema" if ema else "g"
    if not isinstance(st, dict) or key not in st:
        raise CheckpointError(f"not a training-state checkpoint (no {key!r})", path=state_path)
    return export_generator(st[key], out_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    ap.add_argument("state", help="training-state checkpoint (checkpoints/state_*.pt)")
    ap.add_argument("output", help="release-format .pth to write")
    ap.add_argument("--raw", action="store_true", help="export the raw generator instead of the EMA one")
    args = ap.parse_args(argv)
    out = export_checkpoint(args.state, args.output, ema=not args.raw)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
