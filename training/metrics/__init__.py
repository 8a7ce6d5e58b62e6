"""Evaluation and validation metrics, one per module: PSNR/SSIM (``pixel``), LPIPS (``lpips_distance``),
FID (``fid``), NIQE (``niqe``), Deg (``identity``), LMD (``landmarks``); their network weights and data
files in ``weights``. ``training.evaluate`` runs them over folders; the training loop validates with
PSNR/SSIM (and any of them via ``logging.val_metrics``)."""
from .pixel import psnr, ssim, to_uint8_image

__all__ = ["psnr", "ssim", "to_uint8_image"]
