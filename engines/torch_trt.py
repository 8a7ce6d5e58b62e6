"""Compile GFP-GAN with torch-tensorrt (dynamo IR) for a dynamic batch.

FP16: the module is cast to half and compiled with explicit typing (torch-tensorrt >= 2.6's default,
``use_explicit_typing=True``), so TensorRT keeps the model's own FP32 islands - the demodulation factor
is computed in FP32 inside :class:`vidrestore.models.stylegan2.ModulatedConv2d` whatever the module
dtype. Older torch-tensorrt versions without that option get ``enabled_precisions={torch.half}``.
"""
from __future__ import annotations

import torch
from torch import nn

from vidrestore.errors import BackendUnavailable

from .engine_cache import BatchProfile

TORCH_TRT_INSTALL = ("torch-tensorrt is not installed: pip install torch-tensorrt (matching your torch "
                     "version) and tensorrt")

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def import_torch_tensorrt():
    try:
        import torch_tensorrt
    except ImportError as err:
        raise BackendUnavailable(TORCH_TRT_INSTALL) from err
    except Exception as err:  # ABI mismatch with the installed torch, missing libnvinfer ...
        raise BackendUnavailable(f"torch-tensorrt failed to load ({err}); install the build that "
                                 f"matches torch {torch.__version__}") from err
    return torch_tensorrt


def compile_input(profile: BatchProfile, image_size: int, dtype: torch.dtype, torch_tensorrt=None):
    """The ``torch_tensorrt.Input`` describing (batch, 3, S, S) with the profile's min/opt/max batch."""
    tt = torch_tensorrt or import_torch_tensorrt()
    shape = (3, image_size, image_size)
    return tt.Input(min_shape=(profile.min, *shape), opt_shape=(profile.opt, *shape),
                    max_shape=(profile.max, *shape), dtype=dtype)


def compile_model(model: nn.Module, *, precision: str = "fp16", profile: BatchProfile = BatchProfile(1, 4, 8),
                  image_size: int = 512, device: str | torch.device = "cuda",
                  workspace_gib: float = 4.0) -> nn.Module:
    """A TensorRT-compiled module taking (N, 3, S, S) tensors of the precision's dtype, N in the profile."""
    tt = import_torch_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailable("torch-tensorrt needs a CUDA GPU and torch sees none")
    dtype = _DTYPES[precision]
    model = model.eval().to(device=device, dtype=dtype)
    inputs = [compile_input(profile, image_size, dtype, tt)]
    common = dict(ir="dynamo", inputs=inputs, workspace_size=int(workspace_gib * (1 << 30)),
                  min_block_size=1)
    with torch.no_grad():
        try:
            return tt.compile(model, use_explicit_typing=True, **common)
        except TypeError:  # torch-tensorrt < 2.6: no explicit typing, precisions as a hint
            return tt.compile(model, enabled_precisions={dtype}, **common)
