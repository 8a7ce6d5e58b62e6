"""The CUDA numerics vidrestore runs with, in one place, so that the GPU tests check the product's
numbers rather than numbers of their own making.

FP32 means FP32: TF32 (10-bit mantissa) convolutions and matmuls are off, because ``--precision fp32``
promises the authors' numbers (the parity tests compare with them) and ``--precision fp16`` is the
fast path on a GPU. PyTorch's own defaults differ (cuDNN convolutions may use TF32, matmuls may not), so
every CUDA torch network of the product - the GFP-GAN backend, the GPU RetinaFace, the Real-ESRGAN torch
upsampler - calls :func:`use_product_numerics` when it is built, and the GPU tests call it too
(``tests/support/numerics.py``). The flags are PyTorch's process-wide switches; setting them is
idempotent, and nothing in vidrestore sets them otherwise.
"""
from __future__ import annotations

import torch

ALLOW_TF32 = False


def use_product_numerics(device: str | torch.device) -> None:
    """Apply vidrestore's TF32 policy before a network runs on ``device`` (no-op off CUDA)."""
    if torch.device(device).type != "cuda":
        return
    torch.backends.cudnn.allow_tf32 = ALLOW_TF32
    torch.backends.cuda.matmul.allow_tf32 = ALLOW_TF32


def product_numerics_active() -> bool:
    """Whether PyTorch's flags are those of :func:`use_product_numerics` (for tests and reports)."""
    return (torch.backends.cudnn.allow_tf32 == ALLOW_TF32
            and torch.backends.cuda.matmul.allow_tf32 == ALLOW_TF32)
