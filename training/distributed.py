"""Multi-process training with torch.distributed: set-up from torchrun's environment, gradient averaging,
and the per-rank slice of the data order.

``torchrun --nproc_per_node N -m training.train ...`` starts N processes with RANK / WORLD_SIZE /
LOCAL_RANK in their environment; :func:`setup` joins the process group (NCCL on CUDA, gloo on the CPU)
and pins each rank to ``cuda:LOCAL_RANK``. Without those variables it is a plain single process.

Gradients are averaged by hand (:func:`average_gradients`, flattened buckets, one all-reduce per
network and iteration) instead of wrapping the networks in DistributedDataParallel, as StyleGAN2-ADA
does for the same reasons: a GAN iteration runs the discriminator frozen inside the generator's loss,
twice (fake, real) before one backward, with an extra R1 backward every ``d_reg_every`` iterations and
gradient accumulation over micro-batches. DDP's reducer expects exactly one forward per backward over
a fixed set of trainable parameters; hand-averaging after all backwards has none of those traps and
keeps every rank's networks, optimiser states and EMA bit-identical (each rank applies the same
averaged gradients; nothing needs broadcasting after the start).

Data: iteration ``i`` consumes ``global_batch = batch_size x world_size x accumulate`` consecutive
draw ids of the seeded order (``dataset.DrawSampler``). Micro-batch ``a`` of rank ``r`` takes chunk
``c = r x accumulate + a`` of them, so N ranks with accumulation A see the same chunks as one process
with accumulation N x A, and the order only depends on the number of draws consumed (resumable with
another world size). The generator's noise of chunk ``c`` is drawn after ``torch.manual_seed(
chunk_seed(seed, i, c))`` (the per-rank seeds), which makes those runs equal, not just alike.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from vidrestore.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run. ``world_size == 1``: no process group."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only writer of logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def env_dist() -> Dist:
    """Rank, world size and local rank from torchrun's environment (single process without it)."""
    try:
        return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ConfigError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes (no-op for one process). CUDA ranks use NCCL and
    ``cuda:LOCAL_RANK``; CPU ranks use gloo."""
    d = env_dist()
    if not d.active:
        return d
    import torch.distributed as td
    if not td.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        td.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                              **({"device_id": torch.device("cuda", d.local_rank)} if backend == "nccl" else {}))
    if td.get_world_size() != d.world_size or td.get_rank() != d.rank:
        raise ConfigError("process group does not match RANK/WORLD_SIZE")
    return d


def rank_device(device: torch.device, d: Dist) -> torch.device:
    """One GPU per rank: ``cuda`` -> ``cuda:LOCAL_RANK`` under torchrun (and made current)."""
    if device.type == "cuda" and d.active:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    return device


def shutdown() -> None:
    import torch.distributed as td
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as td
        td.barrier()


def _buckets(tensors: list[torch.Tensor], cap: int) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() > cap or t.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


def average_gradients(params: Iterable[nn.Parameter], d: Dist, *, divisor: float,
                      bucket_elems: int = 1 << 24) -> None:
    """Sum every gradient over the ranks (one all-reduce per bucket of flattened gradients) and divide
    by ``divisor`` (= world size x accumulation steps, the number of micro-batches summed).
    Parameters without a gradient get zeros first, so every rank reduces the same buffers."""
    grads = []
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    if d.active:
        import torch.distributed as td
        for bucket in _buckets(grads, bucket_elems):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            td.all_reduce(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset: offset + g.numel()].view_as(g))
                offset += g.numel()
    if divisor != 1:
        for g in grads:
            g.div_(divisor)


def broadcast_module(module: nn.Module, d: Dist) -> None:
    """Rank 0's parameters and buffers to every rank (start of a run: one starting point)."""
    if not d.active:
        return
    import torch.distributed as td
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            td.broadcast(t.data, src=0)


def mean_over_ranks(values: dict[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    """Average logged scalars over the ranks (every rank passes the same keys in the same order: they
    come from the same code path on every rank)."""
    if not d.active or not values:
        return values
    import torch.distributed as td
    keys = list(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    td.all_reduce(t)
    return {k: float(v) / d.world_size for k, v in zip(keys, t.tolist())}


def chunk_seed(seed: int, iteration: int, chunk: int) -> int:
    """The torch seed of micro-batch ``chunk`` of ``iteration`` (independent of how chunks are spread)."""
    return int(np.random.SeedSequence([seed, iteration, chunk, 0x6E01]).generate_state(1, np.uint64)[0] >> 1)
