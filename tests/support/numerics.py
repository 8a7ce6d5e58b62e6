"""GPU checks run under the product's numerics (vidrestore.models.numerics), not under flags of their own."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from vidrestore.models.numerics import use_product_numerics


@contextlib.contextmanager
def product_numerics() -> Iterator[None]:
    """Set PyTorch's TF32 flags as vidrestore's CUDA networks do, and put the previous ones back."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    use_product_numerics("cuda")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
