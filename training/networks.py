"""Everything a run trains or uses, built from ``TrainConfig``: the generator (+ its EMA copy), the
StyleGAN2 and facial component discriminators, the frozen loss networks (VGG-19, ArcFace) and the
optimisers with their learning-rate schedules (the authors' betas; D's corrected for lazy R1)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from vidrestore.errors import ConfigError

from . import losses as L
from .arcface import load_arcface
from .config import TrainConfig
from .discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator
from .pretrained import load_generator, load_stylegan_decoder

PARTS = ("left_eye", "right_eye", "mouth")


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


def _real(path: str | None) -> str | None:
    """'random' (tests/debug) -> None; anything else unchanged."""
    return None if path == "random" else path


@dataclass(frozen=True)
class Networks:
    g: nn.Module
    g_ema: nn.Module
    d: nn.Module
    comps: nn.ModuleDict | None
    perceptual: L.Perceptual | None
    arcface: nn.Module | None


def build_networks(cfg: TrainConfig, device: torch.device) -> Networks:
    """Generator (pretrained / decoder weights loaded), EMA copy, discriminators, loss networks."""
    m, lc = cfg.model, cfg.losses
    g = build_generator(cfg)
    if m.pretrained:
        load_generator(g, m.pretrained)
    if m.decoder_path:
        load_stylegan_decoder(g, m.decoder_path, freeze=m.freeze_decoder)
    elif m.freeze_decoder and not m.pretrained:
        # a frozen random decoder cannot learn anything: only sensible with real decoder weights
        raise ConfigError("model.freeze_decoder needs model.decoder_path (or model.pretrained)")
    elif m.freeze_decoder:
        g.stylegan_decoder.requires_grad_(False)
    g.to(device).train()
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)

    d = StyleGAN2Discriminator(m.out_size, channel_multiplier=m.d_channel_multiplier,
                               narrow=m.d_narrow).to(device).train()
    comps = (nn.ModuleDict({p: FacialComponentDiscriminator(width=m.component_width) for p in PARTS})
             .to(device).train() if m.component_discriminators else None)

    perceptual = None
    if lc.perceptual_weight > 0 or lc.style_weight > 0:
        if m.vgg_path is None:
            raise ConfigError("the perceptual/style loss needs model.vgg_path (torchvision vgg19 weights); "
                              "set losses.perceptual_weight = losses.style_weight = 0 to train without it")
        perceptual = L.Perceptual(lc.perceptual_layers, weights_path=_real(m.vgg_path),
                                  width=m.aux_width if _real(m.vgg_path) is None else 1.0).to(device)
    arcface = None
    if lc.identity_weight > 0:
        if m.arcface_path is None:
            raise ConfigError("the identity loss needs model.arcface_path (arcface_resnet18.pth); "
                              "set losses.identity_weight = 0 to train without it")
        arcface = load_arcface(_real(m.arcface_path), device=device, width=m.aux_width)
    return Networks(g, g_ema, d, comps, perceptual, arcface)


@dataclass(frozen=True)
class Optimizers:
    g: torch.optim.Optimizer
    d: torch.optim.Optimizer
    comps: dict[str, torch.optim.Optimizer]
    schedulers: list[torch.optim.lr_scheduler.LRScheduler]

    @property
    def all(self) -> list[torch.optim.Optimizer]:
        """G, D, then the component discriminators' (the checkpoint order)."""
        return [self.g, self.d, *self.comps.values()]


def build_optimizers(cfg: TrainConfig, nets: Networks) -> Optimizers:
    """Adam as the authors: G and D betas (0, 0.99), D's lr and beta2 corrected by d_reg_every /
    (d_reg_every + 1) for lazy R1; component discriminators (0.9, 0.99). MultiStepLR on each."""
    o, lc = cfg.optim, cfg.losses
    opt_g = torch.optim.Adam([p for p in nets.g.parameters() if p.requires_grad], lr=o.lr_g, betas=(0.0, 0.99))
    ratio = lc.d_reg_every / (lc.d_reg_every + 1)
    opt_d = torch.optim.Adam(nets.d.parameters(), lr=o.lr_d * ratio, betas=(0.0, 0.99 ** ratio))
    opt_comps = ({p: torch.optim.Adam(nets.comps[p].parameters(), lr=o.lr_component, betas=(0.9, 0.99))
                  for p in PARTS} if nets.comps is not None else {})
    opts = [opt_g, opt_d, *opt_comps.values()]
    scheds = [torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.schedule.milestones), gamma=cfg.schedule.gamma)
              for opt in opts]
    return Optimizers(opt_g, opt_d, opt_comps, scheds)
