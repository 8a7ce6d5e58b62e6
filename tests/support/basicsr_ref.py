"""BasicSR 1.4.2 modules loaded by path from its sdist (``pip download basicsr==1.4.2 --no-deps`` into
``<repo>/.cache/reference``), never installed: basicsr does not import with current torchvision.
Missing sdist: skipped locally, a failure under CI=true."""
from __future__ import annotations

import os
import sys
import tarfile
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"


def sdist_path() -> Path:
    for d in (REPO / ".cache" / "reference", os.environ.get("VIDRESTORE_REFERENCE_DIR")):
        if d and (Path(d) / "basicsr-1.4.2.tar.gz").is_file():
            return Path(d) / "basicsr-1.4.2.tar.gz"
    msg = "basicsr-1.4.2.tar.gz not in .cache/reference (scripts/setup.sh downloads it)"
    if CI:
        pytest.fail(msg)
    pytest.skip(msg)


def sdist_member(rel: str) -> bytes:
    with tarfile.open(sdist_path()) as tf:
        return tf.extractfile(f"basicsr-1.4.2/basicsr/{rel}").read()


def _ensure(name: str) -> types.ModuleType:
    if name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)
    return sys.modules[name]


def basicsr_module(rel: str, name: str) -> types.ModuleType:
    """Execute basicsr/<rel> as module ``name`` with the few basicsr pieces it imports provided."""
    import scipy.ndimage
    sys.modules.setdefault("scipy.ndimage.filters", scipy.ndimage)      # removed alias, used by niqe.py
    for pkg in ("basicsr", "basicsr.utils", "basicsr.metrics", "basicsr.utils.registry"):
        _ensure(pkg)
    reg = sys.modules["basicsr.utils.registry"]
    if not hasattr(reg, "METRIC_REGISTRY"):
        class _Registry:
            def register(self, obj=None):
                return obj if obj is not None else (lambda f: f)
        reg.METRIC_REGISTRY = _Registry()
    utils = sys.modules["basicsr.utils"]
    if not hasattr(utils, "bgr2ycbcr"):
        color = _load("utils/color_util.py", "basicsr.utils.color_util")
        utils.bgr2ycbcr = color.bgr2ycbcr
    if name != "basicsr.metrics.metric_util" and "metrics/niqe" in rel:
        _load("metrics/metric_util.py", "basicsr.metrics.metric_util")
        _load("utils/matlab_functions.py", "basicsr.utils.matlab_functions")
    return _load(rel, name)


def _load(rel: str, name: str) -> types.ModuleType:
    m = sys.modules.get(name)
    if m is not None and getattr(m, "__file__", None) == f"<basicsr>/{rel}":
        return m
    m = types.ModuleType(name)
    m.__file__ = f"<basicsr>/{rel}"
    m.__package__ = name.rpartition(".")[0]
    sys.modules[name] = m
    exec(compile(sdist_member(rel).decode(), m.__file__, "exec"), m.__dict__)
    return m
