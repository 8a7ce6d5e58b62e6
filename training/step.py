"""One GFP-GAN iteration over this rank's micro-batches (gradient accumulation), as the authors'
GFPGANModel.optimize_parameters, with the gradients of every network averaged over all micro-batches
of all ranks before each optimiser step (``distributed.average_gradients``):

  G: out, rgbs = G(lq); L = w_l1 L1 + w_pyr sum L1(rgb_k, gt_k) [first pyramid_loss_iters iterations]
     + w_p perceptual + w_s style + w_gan softplus(-D(out)) + sum_part [w_c softplus(-D_part(crop))
     + w_cs Gram style] + w_id |ArcFace(out) - ArcFace(gt)|; Adam step; EMA of G.
  D: softplus(-D(gt)) + softplus(D(out)); every d_reg_every iterations + r1_weight/2 * R1 * d_reg_every;
     each component discriminator the same logistic loss on ROI crops.

Each micro-batch's losses are summed unscaled into the gradients and the sum is divided once by the
number of micro-batches (all ranks), so N ranks and one process accumulating N micro-batches add
the same numbers in the same order. The generator's noise of micro-batch ``c`` is seeded by
``chunk_seed(seed, iteration, c)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from . import losses as L
from .arcface import gray_resize
from .distributed import average_gradients, chunk_seed, mean_over_ranks
from .networks import PARTS

if TYPE_CHECKING:
    from .loop import Trainer


def loss_keys(tr: "Trainer") -> list[str]:
    """Every logged column, in order."""
    keys = ["l_g_pix"] + [f"l_p_{2 ** (i + 3)}" for i in range(tr.log_size - 2)]
    if tr.perceptual is not None:
        keys += ["l_g_percep", "l_g_style"]
    keys += ["l_g_gan"]
    if tr.comps is not None:
        keys += [f"l_g_gan_{p}" for p in PARTS] + ["l_g_comp_style"]
    if tr.arcface is not None:
        keys += ["l_identity"]
    keys += ["l_g_total", "l_d", "real_score", "fake_score", "l_d_r1"]
    if tr.comps is not None:
        keys += [f"l_d_{p}" for p in PARTS]
    return keys + ["lr_g", "sec_per_iter"] + [f"val_{m}" for m in tr.cfg.logging.val_metrics]


def generator_losses(tr: "Trainer", batch: dict[str, Any], lq: Tensor, gt: Tensor, it: int
                     ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Weighted generator losses of one micro-batch (total in "l_g_total"), the component crops of
    output and GT ({} without component discriminators) and the output."""
    cfg, lc = tr.cfg, tr.cfg.losses
    logs: dict[str, Tensor] = {}
    crops: dict[str, Tensor] = {}
    crops_gt: dict[str, Tensor] = {}
    use_pyramid = lc.pyramid_weight > 0 and it <= lc.pyramid_loss_iters
    with tr.autocast():
        if use_pyramid:
            out, rgbs = tr.g(lq, return_rgbs=True, randomize_noise=True)
        else:
            out, rgbs = tr.g(lq, randomize_noise=True), []
        total = logs["l_g_pix"] = L.l1(out.float(), gt) * lc.l1_weight
        for i, lp in enumerate(L.pyramid_l1([r.float() for r in rgbs], gt)):
            logs[f"l_p_{2 ** (i + 3)}"] = lp * lc.pyramid_weight
            total = total + logs[f"l_p_{2 ** (i + 3)}"]
        if tr.perceptual is not None:
            percep, style = tr.perceptual(out, gt)
            logs["l_g_percep"] = percep.float() * lc.perceptual_weight
            logs["l_g_style"] = style.float() * lc.style_weight
            total = total + logs["l_g_percep"] + logs["l_g_style"]
        logs["l_g_gan"] = L.g_nonsaturating(tr.d(out).float()) * lc.gan_weight
        total = total + logs["l_g_gan"]
        if tr.comps is not None:
            boxes = {p: batch[f"loc_{p}"] for p in PARTS}
            crops = L.crop_components(out, boxes, out_size=cfg.model.out_size)
            crops_gt = L.crop_components(gt, boxes, out_size=cfg.model.out_size)
            style_total = 0.0
            for p in PARTS:
                fake_logit, fake_feats = tr.comps[p](crops[p], return_feats=True)
                logs[f"l_g_gan_{p}"] = L.g_nonsaturating(fake_logit.float()) * lc.component_gan_weight
                total = total + logs[f"l_g_gan_{p}"]
                if lc.comp_style_weight > 0:
                    _, real_feats = tr.comps[p](crops_gt[p], return_feats=True)
                    style_total = style_total + L.component_style(fake_feats, real_feats)
            if lc.comp_style_weight > 0:
                logs["l_g_comp_style"] = style_total * lc.comp_style_weight
                total = total + logs["l_g_comp_style"]
        if tr.arcface is not None:
            with torch.no_grad():
                id_gt = tr.arcface(gray_resize(gt))
            id_out = tr.arcface(gray_resize(out))
            logs["l_identity"] = L.identity_l1(id_out.float(), id_gt.float()) * lc.identity_weight
            total = total + logs["l_identity"]
    logs["l_g_total"] = total
    return logs, crops, crops_gt, out


def _optimizer_step(tr: "Trainer", opt: torch.optim.Optimizer, params: list[nn.Parameter], n: int) -> None:
    """Average the summed gradients over ``n`` micro-batches of all ranks, clip, step."""
    average_gradients(params, tr.dist, divisor=n)
    if tr.cfg.optim.grad_clip > 0:
        tr.scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, tr.cfg.optim.grad_clip)
    tr.scaler.step(opt)


def _accumulate(sums: dict[str, float], logs: dict[str, Tensor]) -> None:
    for k, v in logs.items():
        sums[k] = sums.get(k, 0.0) + float(v.detach())


def train_step(tr: "Trainer", micro: list[dict[str, Any]]) -> dict[str, float]:
    """One iteration on this rank's micro-batches: G step, EMA, D step, component D steps,
    schedulers. Returns the weighted losses averaged over all micro-batches of all ranks."""
    it = tr.iteration + 1
    lc = tr.cfg.losses
    n_chunks = len(micro) * tr.dist.world_size
    sums: dict[str, float] = {}
    kept = []

    # ---- generator (discriminators frozen: only their input gradients flow)
    tr.d.requires_grad_(False)
    if tr.comps is not None:
        tr.comps.requires_grad_(False)
    tr.opt_g.zero_grad(set_to_none=True)
    for a, batch in enumerate(micro):
        torch.manual_seed(chunk_seed(tr.cfg.seed, it, tr.dist.rank * len(micro) + a))
        lq = batch["lq"].to(tr.device, non_blocking=True)
        gt = batch["gt"].to(tr.device, non_blocking=True)
        logs, crops, crops_gt, out = generator_losses(tr, batch, lq, gt, it)
        tr.scaler.scale(logs["l_g_total"]).backward()
        _accumulate(sums, logs)
        kept.append((lq, out.detach(), gt, {k: v.detach() for k, v in crops.items()},
                     {k: v.detach() for k, v in crops_gt.items()}))
    g_params = tr.opt_g.param_groups[0]["params"]
    _optimizer_step(tr, tr.opt_g, g_params, n_chunks)
    tr.ema_update()

    # ---- discriminator (lazy R1 on the same iterations on every rank)
    tr.d.requires_grad_(True)
    tr.opt_d.zero_grad(set_to_none=True)
    for _, out, gt, _, _ in kept:
        with tr.autocast():
            fake_pred = tr.d(out).float()
            real_pred = tr.d(gt).float()
            l_d = L.d_logistic(real_pred, fake_pred)
        _accumulate(sums, {"l_d": l_d, "real_score": real_pred.mean(), "fake_score": fake_pred.mean()})
        if it % lc.d_reg_every == 0:
            gt_r = gt.detach().clone().requires_grad_(True)
            r1 = L.r1_penalty(tr.d(gt_r), gt_r)                  # fp32: double backward stays stable
            l_r1 = lc.r1_weight / 2 * r1 * lc.d_reg_every
            _accumulate(sums, {"l_d_r1": l_r1})
            l_d = l_d + l_r1          # one backward per micro-batch: the same sums as on separate ranks
        tr.scaler.scale(l_d).backward()
    _optimizer_step(tr, tr.opt_d, list(tr.d.parameters()), n_chunks)

    # ---- facial component discriminators
    if tr.comps is not None:
        tr.comps.requires_grad_(True)
        for p in PARTS:
            tr.opt_comps[p].zero_grad(set_to_none=True)
            for _, _, _, crops, crops_gt in kept:
                with tr.autocast():
                    fake_logit, _ = tr.comps[p](crops[p])
                    real_logit, _ = tr.comps[p](crops_gt[p])
                    l_dp = L.d_logistic(real_logit.float(), fake_logit.float())
                _accumulate(sums, {f"l_d_{p}": l_dp})
                tr.scaler.scale(l_dp).backward()
            _optimizer_step(tr, tr.opt_comps[p], list(tr.comps[p].parameters()), n_chunks)

    tr.scaler.update()
    lq, out, gt, _, _ = kept[0]
    tr.last_batch = (lq.detach(), out, gt)                   # for training sample grids
    lr = tr.opt_g.param_groups[0]["lr"]
    for s in tr.schedulers:
        s.step()
    tr.iteration = it
    tr.samples_seen += n_chunks * tr.cfg.data.batch_size
    values = mean_over_ranks({k: v / len(micro) for k, v in sums.items()}, tr.dist, tr.device)
    values["lr_g"] = lr
    return values


@torch.no_grad()
def ema_update(g_ema: nn.Module, g: nn.Module, decay: float) -> None:
    """g_ema <- decay g_ema + (1 - decay) g for parameters; buffers copied (identical on every rank)."""
    for pe, p in zip(g_ema.parameters(), g.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(g_ema.buffers(), g.buffers()):
        be.copy_(b)
