"""The real CuPy wrapper classes of engines/kernels.py, launching on the CPU emulation (tests only).

Lets CPU tests drive code that uses the wrappers (argument checks, dtypes, pointers, launch shapes)
with CPU tensors; see tests/support/cuda_emu.py. Keep problem sizes small: one Python call per thread.
"""
from __future__ import annotations

import torch

from engines import kernels as K
from tests.support import cuda_emu

FAMILIES = {"modconv": K.ModConvKernels, "sft": K.SFTKernels, "warp": K.WarpKernels}


def emulated(family: str):
    cls = FAMILIES[family]

    class Emulated(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:  # no CuPy, no GPU
            self.device = torch.device("cpu")

        def _launch(self, kernel, grid, block, args):
            cuda_emu.launch(self.family, kernel, grid, block, args)

    return Emulated()
