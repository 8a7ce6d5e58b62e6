"""The authors' Real-ESRGAN architecture files, loaded by path for parity tests.

* ``RRDBNet``: ``basicsr/archs/rrdbnet_arch.py`` from the basicsr 1.4.2 sdist;
* ``SRVGGNetCompact``: ``realesrgan/archs/srvgg_arch.py`` from the realesrgan 0.3.0 wheel.

Both live in ``<repo>/.cache/reference`` (scripts/setup.sh downloads them with ``pip download
--no-deps``), then ``$VIDRESTORE_REFERENCE_DIR``, then ``/work/refcache``. BasicSR's package does
not import with current torchvision, so ``basicsr.utils.registry`` is a no-op stub and
``basicsr.archs.arch_util`` holds the authors' own ``make_layer``, ``pixel_unshuffle`` and
``default_init_weights``, cut out of their ``arch_util.py`` (the rest of it needs compiled DCN ops).
"""
from __future__ import annotations

import ast
import os
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SDIST, WHEEL = "basicsr-1.4.2.tar.gz", "realesrgan-0.3.0-py3-none-any.whl"
_PKG = "_realesrgan_reference"


def _find(name: str) -> Path | None:
    for d in (REPO / ".cache" / "reference", os.environ.get("VIDRESTORE_REFERENCE_DIR"), "/work/refcache"):
        if d and (Path(d) / name).is_file():
            return Path(d) / name
    return None


def _exec(name: str, source: str, origin: str, extra: dict | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = origin
    module.__dict__.update(extra or {})
    exec(compile(source, origin, "exec"), module.__dict__)
    return module


def _arch_util(source: str, origin: str) -> types.ModuleType:
    """Only the three functions rrdbnet_arch imports, with the imports they need."""
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name in ("make_layer", "pixel_unshuffle", "default_init_weights")]
    import torch
    from torch import nn
    from torch.nn import init
    from torch.nn.modules.batchnorm import _BatchNorm
    code = ast.unparse(ast.Module(body=keep, type_ignores=[]))
    return _exec("basicsr.archs.arch_util", code, origin,
                 {"torch": torch, "nn": nn, "init": init, "_BatchNorm": _BatchNorm})


def load_reference() -> types.SimpleNamespace:
    """``.RRDBNet`` and ``.SRVGGNetCompact`` of the authors; skipped (failed under CI=true) when the
    files are missing."""
    if _PKG in sys.modules:
        return sys.modules[_PKG]
    sdist, wheel = _find(SDIST), _find(WHEEL)
    if sdist is None or wheel is None:
        msg = (f"{SDIST} / {WHEEL} not found in .cache/reference (scripts/setup.sh downloads them with "
               "pip download --no-deps)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)

    class _Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    registry = types.ModuleType("basicsr.utils.registry")
    registry.ARCH_REGISTRY = _Registry()
    saved = {k: sys.modules.get(k) for k in ("basicsr", "basicsr.utils", "basicsr.utils.registry",
                                             "basicsr.archs", "basicsr.archs.arch_util")}
    with tarfile.open(sdist) as tf:
        read = lambda p: tf.extractfile(f"basicsr-1.4.2/basicsr/{p}").read().decode()  # noqa: E731
        util_src, rrdb_src = read("archs/arch_util.py"), read("archs/rrdbnet_arch.py")
    with zipfile.ZipFile(wheel) as zf:
        srvgg_src = zf.read("realesrgan/archs/srvgg_arch.py").decode()
    try:
        sys.modules.update({"basicsr": types.ModuleType("basicsr"),
                            "basicsr.utils": types.ModuleType("basicsr.utils"),
                            "basicsr.utils.registry": registry,
                            "basicsr.archs": types.ModuleType("basicsr.archs")})
        util = _arch_util(util_src, f"{sdist}!basicsr/archs/arch_util.py")
        sys.modules["basicsr.archs.arch_util"] = util
        rrdb = _exec("basicsr.archs.rrdbnet_arch",
                     rrdb_src.replace("from .arch_util import", "from basicsr.archs.arch_util import"),
                     f"{sdist}!basicsr/archs/rrdbnet_arch.py")
        srvgg = _exec("realesrgan.archs.srvgg_arch", srvgg_src, f"{wheel}!realesrgan/archs/srvgg_arch.py")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    ns = types.SimpleNamespace(RRDBNet=rrdb.RRDBNet, SRVGGNetCompact=srvgg.SRVGGNetCompact,
                               pixel_unshuffle=util.pixel_unshuffle)
    sys.modules[_PKG] = ns  # type: ignore[assignment]
    return ns
