"""The GFP-GAN training loop: one generator step and one discriminator step per iteration.

Per iteration (as the authors' GFPGANModel.optimize_parameters):
  G: out, rgbs = G(lq); L = w_l1 L1 + w_pyr sum L1(rgb_k, gt_k) [first pyramid_loss_iters iterations]
     + w_p perceptual + w_s style + w_gan softplus(-D(out)) + sum_part [w_c softplus(-D_part(crop))
     + w_cs Gram style] + w_id |ArcFace(out) - ArcFace(gt)|; Adam step; EMA of G.
  D: softplus(-D(gt)) + softplus(D(out)); every d_reg_every iterations + r1_weight/2 * R1 * d_reg_every;
     each component discriminator the same logistic loss on ROI crops.
Checkpoints hold everything needed to continue bit-exactly: networks, EMA, optimisers, schedulers,
grad scaler, RNG states (torch, CUDA, numpy, python) and the iteration, which fixes the data order.
"""
from __future__ import annotations

import contextlib
import copy
import random
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from vidrestore.errors import CheckpointError, ConfigError

from . import losses as L
from .arcface import gray_resize, load_arcface
from .config import TrainConfig, dump_toml, to_dict
from .dataset import DrawSampler, FaceDataset, ValidationSet
from .discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator
from .logs import RunLog, save_grid
from .metrics import psnr, ssim, to_uint8_image
from .pretrained import load_generator, load_stylegan_decoder, load_torch

PARTS = ("left_eye", "right_eye", "mouth")
CHECKPOINT_VERSION = 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return dev


def build_generator(cfg: TrainConfig) -> nn.Module:
    from vidrestore.models import GFPGAN
    m = cfg.model
    return GFPGAN(m.out_size, num_style_feat=m.num_style_feat, channel_multiplier=m.channel_multiplier,
                  narrow=m.narrow)


class Trainer:
    """Owns the networks, optimisers and data of one run. ``fit()`` trains; ``save_checkpoint()`` /
    ``Trainer(cfg, resume=path)`` stop and continue."""

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None) -> None:
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.out_dir = Path(cfg.logging.out_dir)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        torch.manual_seed(cfg.seed)
        m, lc = cfg.model, cfg.losses

        # generator (+ EMA copy)
        self.g = build_generator(cfg)
        if m.pretrained:
            load_generator(self.g, m.pretrained)
        if m.decoder_path:
            load_stylegan_decoder(self.g, m.decoder_path, freeze=m.freeze_decoder)
        elif m.freeze_decoder and not m.pretrained:
            # a frozen random decoder cannot learn anything: only sensible with real decoder weights
            raise ConfigError("model.freeze_decoder needs model.decoder_path (or model.pretrained)")
        elif m.freeze_decoder:
            self.g.stylegan_decoder.requires_grad_(False)
        self.g.to(self.device).train()
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.log_size = int(np.log2(m.out_size))

        # discriminators
        self.d = StyleGAN2Discriminator(m.out_size, channel_multiplier=m.d_channel_multiplier,
                                        narrow=m.d_narrow).to(self.device).train()
        self.comps = (nn.ModuleDict({p: FacialComponentDiscriminator(width=m.component_width) for p in PARTS}).to(self.device).train()
                      if m.component_discriminators else None)

        # frozen loss networks
        self.perceptual = None
        if lc.perceptual_weight > 0 or lc.style_weight > 0:
            if m.vgg_path is None:
                raise ConfigError("the perceptual/style loss needs model.vgg_path (torchvision vgg19 weights); "
                                  "set losses.perceptual_weight = losses.style_weight = 0 to train without it")
            self.perceptual = L.Perceptual(lc.perceptual_layers, weights_path=_real(m.vgg_path),
                                           width=m.aux_width if _real(m.vgg_path) is None else 1.0)
            self.perceptual.to(self.device)
        self.arcface = None
        if lc.identity_weight > 0:
            if m.arcface_path is None:
                raise ConfigError("the identity loss needs model.arcface_path (arcface_resnet18.pth); "
                                  "set losses.identity_weight = 0 to train without it")
            self.arcface = load_arcface(_real(m.arcface_path), device=self.device, width=m.aux_width)

        # optimisers (the authors' betas; D's lr/betas corrected for lazy R1) and schedules
        o = cfg.optim
        self.opt_g = torch.optim.Adam([p for p in self.g.parameters() if p.requires_grad], lr=o.lr_g,
                                      betas=(0.0, 0.99))
        ratio = lc.d_reg_every / (lc.d_reg_every + 1)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=o.lr_d * ratio, betas=(0.0, 0.99 ** ratio))
        self.opt_comps = ({p: torch.optim.Adam(self.comps[p].parameters(), lr=o.lr_component, betas=(0.9, 0.99))
                           for p in PARTS} if self.comps is not None else {})
        self.optimizers = [self.opt_g, self.opt_d, *self.opt_comps.values()]
        self.schedulers = [torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.schedule.milestones),
                                                                gamma=cfg.schedule.gamma)
                           for opt in self.optimizers]

        # mixed precision
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if self.device.type != "cuda":
            self.amp_dtype = None                               # CPU: always fp32
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

        self.iteration = 0
        if resume is not None:
            self.load_checkpoint(resume)

        self.dataset = FaceDataset(cfg.data, cfg.degradation, out_size=m.out_size, seed=cfg.seed,
                                   need_components=self.comps is not None)
        self.val_set = (ValidationSet(cfg.data, cfg.degradation, out_size=m.out_size)
                        if cfg.data.val_dir else None)
        self._log: RunLog | None = None

    # ------------------------------------------------------------------------------------------
    def loss_keys(self) -> list[str]:
        keys = ["l_g_pix"] + [f"l_p_{2 ** (i + 3)}" for i in range(self.log_size - 2)]
        if self.perceptual is not None:
            keys += ["l_g_percep", "l_g_style"]
        keys += ["l_g_gan"]
        if self.comps is not None:
            keys += [f"l_g_gan_{p}" for p in PARTS] + ["l_g_comp_style"]
        if self.arcface is not None:
            keys += ["l_identity"]
        keys += ["l_g_total", "l_d", "real_score", "fake_score", "l_d_r1"]
        if self.comps is not None:
            keys += [f"l_d_{p}" for p in PARTS]
        return keys + ["lr_g", "sec_per_iter", "val_psnr", "val_ssim"]

    def batches(self) -> Iterator[dict[str, Any]]:
        """Endless batches continuing from the current iteration (same order as an uninterrupted run)."""
        b = self.cfg.data.batch_size
        if len(self.dataset) < b:
            raise ConfigError(f"data.batch_size {b} is larger than the dataset ({len(self.dataset)} faces)")
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=b, drop_last=True, num_workers=self.cfg.data.num_workers,
            sampler=DrawSampler(len(self.dataset), seed=self.cfg.seed, start=self.iteration * b),
            generator=torch.Generator().manual_seed(self.cfg.seed),   # never draws from the global RNG
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        yield from loader

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _step(self, opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.scaler.step(opt)

    # ------------------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One iteration (G step, EMA, D step, component D steps, schedulers). Returns weighted losses."""
        it = self.iteration + 1
        cfg, lc = self.cfg, self.cfg.losses
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        logs: dict[str, Tensor] = {}
        use_pyramid = lc.pyramid_weight > 0 and it <= lc.pyramid_loss_iters

        # ---- generator
        self.d.requires_grad_(False)
        if self.comps is not None:
            self.comps.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            if use_pyramid:
                out, rgbs = self.g(lq, return_rgbs=True, randomize_noise=True)
            else:
                out, rgbs = self.g(lq, randomize_noise=True), []
            out32 = out.float()
            total = logs["l_g_pix"] = L.l1(out32, gt) * lc.l1_weight
            for i, lp in enumerate(L.pyramid_l1([r.float() for r in rgbs], gt)):
                logs[f"l_p_{2 ** (i + 3)}"] = lp * lc.pyramid_weight
                total = total + logs[f"l_p_{2 ** (i + 3)}"]
            if self.perceptual is not None:
                percep, style = self.perceptual(out, gt)
                logs["l_g_percep"] = percep.float() * lc.perceptual_weight
                logs["l_g_style"] = style.float() * lc.style_weight
                total = total + logs["l_g_percep"] + logs["l_g_style"]
            logs["l_g_gan"] = L.g_nonsaturating(self.d(out).float()) * lc.gan_weight
            total = total + logs["l_g_gan"]
            if self.comps is not None:
                boxes = {p: batch[f"loc_{p}"] for p in PARTS}
                crops = L.crop_components(out, boxes, out_size=cfg.model.out_size)
                crops_gt = L.crop_components(gt, boxes, out_size=cfg.model.out_size)
                style_total = 0.0
                for p in PARTS:
                    fake_logit, fake_feats = self.comps[p](crops[p], return_feats=True)
                    logs[f"l_g_gan_{p}"] = L.g_nonsaturating(fake_logit.float()) * lc.component_gan_weight
                    total = total + logs[f"l_g_gan_{p}"]
                    if lc.comp_style_weight > 0:
                        _, real_feats = self.comps[p](crops_gt[p], return_feats=True)
                        style_total = style_total + L.component_style([f.float() for f in fake_feats],
                                                                      [f.float() for f in real_feats])
                if lc.comp_style_weight > 0:
                    logs["l_g_comp_style"] = style_total * lc.comp_style_weight
                    total = total + logs["l_g_comp_style"]
            if self.arcface is not None:
                with torch.no_grad():
                    id_gt = self.arcface(gray_resize(gt))
                id_out = self.arcface(gray_resize(out))
                logs["l_identity"] = L.identity_l1(id_out.float(), id_gt.float()) * lc.identity_weight
                total = total + logs["l_identity"]
        logs["l_g_total"] = total
        self.scaler.scale(total).backward()
        self._step(self.opt_g, self.opt_g.param_groups[0]["params"])
        self.ema_update()

        # ---- discriminator
        self.d.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            fake_pred = self.d(out.detach()).float()
            real_pred = self.d(gt).float()
            l_d = L.d_logistic(real_pred, fake_pred)
        logs.update(l_d=l_d, real_score=real_pred.detach().mean(), fake_score=fake_pred.detach().mean())
        self.scaler.scale(l_d).backward()
        if it % lc.d_reg_every == 0:
            gt_r = gt.detach().clone().requires_grad_(True)
            r1 = L.r1_penalty(self.d(gt_r), gt_r)                  # fp32: double backward stays stable
            l_r1 = lc.r1_weight / 2 * r1 * lc.d_reg_every
            logs["l_d_r1"] = l_r1
            self.scaler.scale(l_r1).backward()
        self._step(self.opt_d, list(self.d.parameters()))

        # ---- facial component discriminators
        if self.comps is not None:
            self.comps.requires_grad_(True)
            for p in PARTS:
                self.opt_comps[p].zero_grad(set_to_none=True)
                with self._autocast():
                    fake_logit, _ = self.comps[p](crops[p].detach())
                    real_logit, _ = self.comps[p](crops_gt[p].detach())
                    l_dp = L.d_logistic(real_logit.float(), fake_logit.float())
                logs[f"l_d_{p}"] = l_dp
                self.scaler.scale(l_dp).backward()
                self._step(self.opt_comps[p], list(self.comps[p].parameters()))

        self.scaler.update()
        self._last_batch = (lq.detach(), out.detach(), gt.detach())      # for training sample grids
        lr = self.opt_g.param_groups[0]["lr"]
        for s in self.schedulers:
            s.step()
        self.iteration = it
        values = {k: float(v.detach()) for k, v in logs.items()}
        values["lr_g"] = lr
        return values

    @torch.no_grad()
    def ema_update(self) -> None:
        decay = self.cfg.ema.decay
        for pe, p in zip(self.g_ema.parameters(), self.g.parameters()):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.g_ema.buffers(), self.g.buffers()):
            be.copy_(b)

    # ------------------------------------------------------------------------------------------
    def fit(self, iterations: int | None = None, *, save_at_end: bool = True) -> dict[str, float]:
        """Train until ``schedule.total_iters`` (or ``iterations`` more, then save a checkpoint unless
        ``save_at_end`` is false). Validation and samples follow ``logging.*_every`` and the last iteration.
        Returns the last logged values."""
        lg = self.cfg.logging
        total = self.cfg.schedule.total_iters
        stop = total if iterations is None else min(total, self.iteration + iterations)
        if self._log is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.toml").write_text(dump_toml(self.cfg))
            self._log = RunLog(self.out_dir, self.loss_keys(), tensorboard=lg.tensorboard,
                               resume_at=self.iteration)
        last: dict[str, float] = {}
        t0, n_timed = time.perf_counter(), 0
        if self.iteration >= stop:
            return last
        for batch in self.batches():
            values = self.train_step(batch)
            n_timed += 1
            it = self.iteration
            validate = self.val_set is not None and (it % lg.val_every == 0 or it == total)
            if validate:
                values.update(self.validate(save_samples=it % lg.sample_every == 0 or it == total))
            if self.val_set is None and (it % lg.sample_every == 0 or it == total):
                lq, out, gt = (t[:4].float().cpu() for t in self._last_batch)
                save_grid(self.out_dir / "samples" / f"train_{it:08d}.png", [list(r) for r in zip(lq, out, gt)])
            if it % lg.log_every == 0 or it == stop or validate:
                values["sec_per_iter"] = (time.perf_counter() - t0) / n_timed
                t0, n_timed = time.perf_counter(), 0
                self._log.write(it, values)
                last = values
            if it % lg.save_every == 0 or it == total or (it == stop and save_at_end):
                self.save_checkpoint()
            if it >= stop:
                break
        return last

    @torch.no_grad()
    def validate(self, *, save_samples: bool = False) -> dict[str, float]:
        """PSNR/SSIM of the EMA generator on the validation set (8-bit RGB, no border crop)."""
        if self.val_set is None:
            return {}
        ps, ss, rows = [], [], []
        for i in range(len(self.val_set)):
            s = self.val_set[i]
            lq = s["lq"][None].to(self.device)
            with self._autocast():
                out = self.g_ema(lq).float()[0]
            a, b = to_uint8_image(out), to_uint8_image(s["gt"])
            ps.append(psnr(a, b))
            ss.append(ssim(a, b))
            if save_samples and i < 8:
                rows.append([s["lq"], out.cpu(), s["gt"]])
        if rows:
            save_grid(self.out_dir / "samples" / f"val_{self.iteration:08d}.png", rows)
        return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss))}

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()   # as tensors/ints: weights_only loads it
        rng: dict[str, Any] = {"torch": torch.get_rng_state(),
                               "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
                               "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "version": CHECKPOINT_VERSION, "iteration": self.iteration, "config": to_dict(self.cfg),
            "batch_size": self.cfg.data.batch_size,
            "g": self.g.state_dict(), "g_ema": self.g_ema.state_dict(), "d": self.d.state_dict(),
            "comps": self.comps.state_dict() if self.comps is not None else None,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(), "rng": rng,
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Training state (``checkpoints/state_<iter>.pt``) plus the EMA generator in release format
        (``models/net_g_ema_<iter>.pth``); keeps the newest ``logging.keep_checkpoints`` states."""
        from .export import export_generator
        ckdir = self.out_dir / "checkpoints"
        ckdir.mkdir(parents=True, exist_ok=True)
        path = Path(path) if path is not None else ckdir / f"state_{self.iteration:08d}.pt"
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        (self.out_dir / "models").mkdir(exist_ok=True)
        export_generator(self.g_ema, self.out_dir / "models" / f"net_g_ema_{self.iteration:08d}.pth")
        keep = self.cfg.logging.keep_checkpoints
        if keep > 0:
            for old in sorted(ckdir.glob("state_*.pt"))[:-keep]:
                old.unlink()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything saved by :meth:`save_checkpoint` (a safe, weights-only load)."""
        path = Path(path)
        st = load_torch(path, what="training checkpoint")
        if not isinstance(st, dict) or st.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError("not a training-state checkpoint of this version", path=path)
        if st["batch_size"] != self.cfg.data.batch_size:
            raise CheckpointError(f"saved with data.batch_size={st['batch_size']}; the data order needs the same "
                                  f"batch size (got {self.cfg.data.batch_size})", path=path)
        try:
            self.g.load_state_dict(st["g"])
            self.g_ema.load_state_dict(st["g_ema"])
            self.d.load_state_dict(st["d"])
            if self.comps is not None:
                self.comps.load_state_dict(st["comps"])
            for o, s in zip(self.optimizers, st["optimizers"], strict=True):
                o.load_state_dict(s)
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"does not match this configuration: {str(exc)[:300]}", path=path) from None
        for s, ss in zip(self.schedulers, st["schedulers"]):
            s.load_state_dict(ss)
        self.scaler.load_state_dict(st["scaler"])
        rng = st["rng"]
        torch.set_rng_state(rng["torch"])
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.iteration = int(st["iteration"])

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _real(path: str | None) -> str | None:
    """'random' (tests/debug) -> None; anything else unchanged."""
    return None if path == "random" else path
