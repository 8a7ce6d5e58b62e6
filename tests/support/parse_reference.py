"""facexlib's face-parsing architecture files (the authors' code; facexlib is installed with --no-deps),
loaded by file path so the package's heavy ``__init__`` is not run, plus checkpoint helpers."""
from __future__ import annotations

import importlib.util
import os
import types
from pathlib import Path

import pytest
import torch


def facexlib_file(rel: str) -> Path | None:
    spec = importlib.util.find_spec("facexlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    return path if path.is_file() else None


def load_or_skip(rel: str = "parsing/parsenet.py") -> types.ModuleType:
    """The module at facexlib/<rel>; skipped when facexlib is absent, except in CI where it fails."""
    path = facexlib_file(rel)
    if path is None:
        msg = f"facexlib/{rel} not found (facexlib==0.3.0 is installed with --no-deps by scripts/setup.sh)"
        from tests.support.require import require
        require(None, msg)
    name = "_facexlib_ref_" + rel.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def randomise_batchnorm(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters (eval-mode numerics)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return net.eval()
