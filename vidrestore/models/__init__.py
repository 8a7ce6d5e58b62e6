"""GFP-GAN in plain torch: the network, checkpoint I/O and the known weight releases."""
from __future__ import annotations

from .checkpoints import load_gfpgan, save_gfpgan
from .gfpgan import GFPGAN

__all__ = ["GFPGAN", "load_gfpgan", "save_gfpgan"]
