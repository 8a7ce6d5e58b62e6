"""One rule for missing test dependencies: skip locally, FAIL where they must be present.

``require(what, why)`` / ``require_module(name)``: under ``CI=true`` (the CI run installs the
reference wheels, test extras, compilers and test data) a missing dependency fails the test instead
of skipping it; for GPU-only dependencies (``gpu=True``: CUDA, TensorRT, NVDEC, ...) the same holds
under ``VIDRESTORE_REQUIRE_CUDA=1`` (the GPU check), since CI has no GPU.
"""
from __future__ import annotations

import importlib
import os
import types

import pytest


def must_have(*, gpu: bool = False) -> bool:
    """Whether a missing dependency is a failure here rather than a skip."""
    if gpu:
        return os.environ.get("VIDRESTORE_REQUIRE_CUDA") == "1"
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("VIDRESTORE_REQUIRE_CUDA") == "1"


def require(present: object, why: str, *, gpu: bool = False):
    """Returns ``present`` when truthy; otherwise skips (locally) or fails (CI / GPU check) with ``why``."""
    if present:
        return present
    if must_have(gpu=gpu):
        pytest.fail(f"required for this run but missing: {why}")
    pytest.skip(why)


def require_module(name: str, *, gpu: bool = False, hint: str = "") -> types.ModuleType:
    """``import name``, or skip/fail as :func:`require` says."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install (CUDA libs missing)
        return require(None, f"{name} not importable ({type(exc).__name__}: {str(exc)[:120]}){hint}", gpu=gpu)
