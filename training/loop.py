"""The training loop: a ``Trainer`` owns one run (networks, optimisers, data, logs) on one rank.

``Trainer(cfg).fit()`` trains until ``schedule.total_iters``; each iteration is ``step.train_step``
over this rank's ``train.accumulate`` micro-batches. Under torchrun every rank builds the same
Trainer; gradients are averaged in the step, and only rank 0 (``dist.is_main``) writes logs, samples,
validation results and checkpoints (``state.py``). See ``distributed.py`` for the data sharding.
"""
from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from vidrestore.errors import ConfigError

from . import distributed, state, step
from .config import TrainConfig, dump_toml
from .dataset import DrawSampler, FaceDataset, ValidationSet
from .logs import RunLog, save_grid
from .metrics import to_uint8_image
from .networks import PARTS, build_generator, build_networks, build_optimizers, pick_device  # noqa: F401

CHECKPOINT_VERSION = state.CHECKPOINT_VERSION


class Trainer:
    """Owns the networks, optimisers and data of one run on this rank. ``fit()`` trains;
    ``save_checkpoint()`` / ``Trainer(cfg, resume=path)`` stop and continue (with any world size);
    ``init_from`` starts a fine-tuning run from a training state's G, EMA and discriminators."""

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None,
                 init_from: str | Path | None = None, dist: distributed.Dist | None = None) -> None:
        self.cfg = cfg
        self.dist = dist if dist is not None else distributed.Dist()
        self.device = distributed.rank_device(pick_device(cfg.device), self.dist)
        self.out_dir = Path(cfg.logging.out_dir)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        torch.manual_seed(cfg.seed)

        nets = build_networks(cfg, self.device)
        self.g, self.g_ema, self.d, self.comps = nets.g, nets.g_ema, nets.d, nets.comps
        self.perceptual, self.arcface = nets.perceptual, nets.arcface
        self.log_size = int(np.log2(cfg.model.out_size))
        opts = build_optimizers(cfg, nets)
        self.opt_g, self.opt_d, self.opt_comps = opts.g, opts.d, opts.comps
        self.optimizers, self.schedulers = opts.all, opts.schedulers

        # mixed precision (CPU: always fp32)
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if self.device.type != "cuda":
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

        self.iteration = 0
        self.samples_seen = 0                   # training draws consumed by all ranks together
        self.resumed_from: dict[str, int] | None = None
        self.last_batch: tuple[torch.Tensor, ...] | None = None
        if resume is not None and init_from is not None:
            raise ConfigError("--resume and --init-from exclude each other")
        if resume is not None:
            state.load_checkpoint(self, resume)
        elif init_from is not None:
            state.init_from(self, init_from)
        for net in (self.g, self.g_ema, self.d, self.comps):       # one starting point on every rank
            if net is not None:
                distributed.broadcast_module(net, self.dist)

        self.dataset = FaceDataset(cfg.data, cfg.degradation, out_size=cfg.model.out_size, seed=cfg.seed,
                                   need_components=self.comps is not None)
        self.val_set = (ValidationSet(cfg.data, cfg.degradation, out_size=cfg.model.out_size)
                        if cfg.data.val_dir and self.dist.is_main else None)
        self._log: RunLog | None = None
        self._val_suite = None                  # built at the first validation (rank 0)

    # ------------------------------------------------------------------------------------------
    @property
    def global_batch(self) -> int:
        return self.cfg.data.batch_size * self.dist.world_size * self.cfg.train.accumulate

    def describe(self) -> str:
        """The first log line: where, how many ranks, the batch arithmetic, the starting point."""
        b, a, w = self.cfg.data.batch_size, self.cfg.train.accumulate, self.dist.world_size
        text = (f"training on {self.device}, world size {w}; global batch {self.global_batch} = {b} per rank "
                f"x {w} rank(s) x {a} accumulation step(s); from iteration {self.iteration}")
        if self.resumed_from is not None:
            r = self.resumed_from
            text += (f" (checkpoint written with world size {r['world_size']}, global batch "
                     f"{r['batch_size'] * r['world_size'] * r['accumulate']}; data continue at draw {self.samples_seen})")
        return text + f"; logs in {self.out_dir}"

    def loss_keys(self) -> list[str]:
        return step.loss_keys(self)

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Endless lists of ``train.accumulate`` micro-batches for this rank, continuing from the draws
        already consumed (the same order as an uninterrupted run, whatever the world size)."""
        b, a, d = self.cfg.data.batch_size, self.cfg.train.accumulate, self.dist
        if len(self.dataset) < b:
            raise ConfigError(f"data.batch_size {b} is larger than the dataset ({len(self.dataset)} faces)")
        sampler = DrawSampler(len(self.dataset), seed=self.cfg.seed, start=self.samples_seen,
                              rank=d.rank, world_size=d.world_size, per_rank=b * a)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=b, drop_last=True, num_workers=self.cfg.data.num_workers, sampler=sampler,
            generator=torch.Generator().manual_seed(self.cfg.seed),   # never draws from the global RNG
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        micro: list[dict[str, Any]] = []
        for batch in loader:
            micro.append(batch)
            if len(micro) == a:
                yield micro
                micro = []

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, micro: list[dict[str, Any]] | dict[str, Any]) -> dict[str, float]:
        """One iteration on a list of micro-batches (a single batch dict is one micro-batch)."""
        return step.train_step(self, micro if isinstance(micro, list) else [micro])

    def ema_update(self) -> None:
        step.ema_update(self.g_ema, self.g, self.cfg.ema.decay)

    # ------------------------------------------------------------------------------------------
    def fit(self, iterations: int | None = None, *, save_at_end: bool = True) -> dict[str, float]:
        """Train until ``schedule.total_iters`` (or ``iterations`` more, then save a checkpoint unless
        ``save_at_end`` is false). Validation and samples follow ``logging.*_every`` and the last iteration.
        Returns the last logged values (on every rank: they are averaged over the ranks)."""
        lg, main = self.cfg.logging, self.dist.is_main
        total = self.cfg.schedule.total_iters
        stop = total if iterations is None else min(total, self.iteration + iterations)
        if self._log is None and main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.toml").write_text(dump_toml(self.cfg))
            self._log = RunLog(self.out_dir, self.loss_keys(), tensorboard=lg.tensorboard,
                               resume_at=self.iteration)
        last: dict[str, float] = {}
        t0, n_timed = time.perf_counter(), 0
        if self.iteration >= stop:
            return last
        for micro in self.batches():
            values = self.train_step(micro)
            n_timed += 1
            it = self.iteration
            validate = self.val_set is not None and (it % lg.val_every == 0 or it == total)
            if validate:
                values.update(self.validate(save_samples=it % lg.sample_every == 0 or it == total))
            if main and self.val_set is None and (it % lg.sample_every == 0 or it == total):
                lq, out, gt = (t[:4].float().cpu() for t in self.last_batch)
                save_grid(self.out_dir / "samples" / f"train_{it:08d}.png", [list(r) for r in zip(lq, out, gt)])
            if it % lg.log_every == 0 or it == stop or validate:
                values["sec_per_iter"] = (time.perf_counter() - t0) / n_timed
                t0, n_timed = time.perf_counter(), 0
                if main:
                    self._log.write(it, values)
                last = values
            if it % lg.save_every == 0 or it == total or (it == stop and save_at_end):
                self.save_checkpoint()
            if it >= stop:
                break
        return last

    @torch.no_grad()
    def validate(self, *, save_samples: bool = False) -> dict[str, float]:
        """``logging.val_metrics`` (PSNR/SSIM by default; any metric of training.evaluate) of the EMA
        generator on the validation set, 8-bit RGB, no border crop; rank 0 only."""
        if self.val_set is None:
            return {}
        if self._val_suite is None:
            from .metrics.suite import MetricSuite, metric_weights
            lg = self.cfg.logging
            self._val_suite = MetricSuite(lg.val_metrics, weights=metric_weights(dict(lg.val_metric_files)),
                                          device=str(self.device))
        suite = self._val_suite
        suite.reset()
        rows = []
        for i in range(len(self.val_set)):
            s = self.val_set[i]
            lq = s["lq"][None].to(self.device)
            with self.autocast():
                out = self.g_ema(lq).float()[0]
            suite.add(to_uint8_image(out), to_uint8_image(s["gt"]))
            if save_samples and i < 8:
                rows.append([s["lq"], out.cpu(), s["gt"]])
        if rows:
            save_grid(self.out_dir / "samples" / f"val_{self.iteration:08d}.png", rows)
        return {f"val_{k}": v for k, v in suite.results().items()}

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return state.state_dict(self)

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Rank 0 writes (see ``state.save_checkpoint``); every rank waits for the file."""
        written = state.save_checkpoint(self, path) if self.dist.is_main else None
        distributed.barrier(self.dist)
        return written

    def load_checkpoint(self, path: str | Path) -> None:
        state.load_checkpoint(self, path)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
