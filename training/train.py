"""Command line: ``python -m training.train --config cfg.toml [--set a.b=value ...] [--resume state.pt]``.

``--set`` takes dotted option paths with values parsed like TOML literals (``losses.l1_weight=0.5``,
``degradation.blur_sigma=[0.2, 5]``, ``model.decoder_path=/w/sg2.pth``) and converted to the option's type.
``--resume`` continues a run bit-exactly from a training-state checkpoint; ``--resume auto`` picks the
newest one in ``<logging.out_dir>/checkpoints``. ``--init-from`` starts a fine-tuning run from a
training state's generator, EMA and discriminators (fresh optimisers, iteration 0).

Several GPUs or machines: ``torchrun --nproc_per_node N [--nnodes M ...] -m training.train ...``
(one process per GPU; see training/README.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidrestore.errors import VidRestoreError

from .config import dump_toml, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m training.train", description="Train GFP-GAN.")
    ap.add_argument("--config", required=True, help="TOML (or YAML) config file")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one option, e.g. --set losses.l1_weight=0.5 (repeatable)")
    ap.add_argument("--resume", default=None, help="training-state checkpoint, or 'auto'")
    ap.add_argument("--init-from", default=None, metavar="STATE",
                    help="training state whose G, EMA and discriminators start a fine-tuning run")
    ap.add_argument("--iters", type=int, default=None, help="stop after this many more iterations")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, overrides=args.overrides)
        if args.print_config:
            print(dump_toml(cfg), end="")
            return 0
        resume = args.resume
        if resume == "auto":
            found = sorted((Path(cfg.logging.out_dir) / "checkpoints").glob("state_*.pt"))
            resume = str(found[-1]) if found else None
        from . import distributed
        from .loop import Trainer
        from .networks import pick_device
        dist = distributed.setup(pick_device(cfg.device))
        try:
            trainer = Trainer(cfg, resume=resume, init_from=args.init_from, dist=dist)
            if dist.is_main:
                print(trainer.describe(), flush=True)
            try:
                last = trainer.fit(args.iters)
            finally:
                trainer.close()
        finally:
            distributed.shutdown()
        if last and dist.is_main:
            print("last: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))
        return 0
    except VidRestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


if __name__ == "__main__":
    raise SystemExit(main())
