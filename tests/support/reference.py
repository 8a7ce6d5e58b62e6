"""The authors' GFP-GAN architecture (gfpgan==1.3.8 wheel), loaded by path for parity tests.

The wheel is looked up in ``<repo>/.cache/reference/gfpgan-1.3.8-*.whl``, then
``$VIDRESTORE_REFERENCE_DIR``, then ``/work/refcache``. Only its two architecture files are used;
``basicsr`` (which does not import with current torchvision) is replaced by two tiny stubs: a
registry whose ``register()`` is a no-op decorator and ``default_init_weights`` (kaiming-normal
init, scaled, bias filled) as BasicSR defines it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
import zipfile
from pathlib import Path

import pytest
from torch import nn
from torch.nn import init

REPO = Path(__file__).resolve().parents[2]
ARCH_FILES = ("gfpgan/archs/stylegan2_clean_arch.py", "gfpgan/archs/gfpganv1_clean_arch.py")
_PKG = "_gfpgan_reference"


def find_wheel() -> Path | None:
    dirs = [REPO / ".cache" / "reference", os.environ.get("VIDRESTORE_REFERENCE_DIR"), "/work/refcache"]
    for d in dirs:
        if d and Path(d).is_dir():
            hits = sorted(Path(d).glob("gfpgan-1.3.8-*.whl"))
            if hits:
                return hits[0]
    return None


def _default_init_weights(module_list, scale=1, bias_fill=0, **kwargs):
    if not isinstance(module_list, list):
        module_list = [module_list]
    for module in module_list:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init.kaiming_normal_(m.weight, **kwargs)
                m.weight.data *= scale
                if m.bias is not None:
                    m.bias.data.fill_(bias_fill)


def _install_stubs() -> None:
    class _Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    mods = {
        "basicsr": types.ModuleType("basicsr"),
        "basicsr.utils": types.ModuleType("basicsr.utils"),
        "basicsr.utils.registry": types.ModuleType("basicsr.utils.registry"),
        "basicsr.archs": types.ModuleType("basicsr.archs"),
        "basicsr.archs.arch_util": types.ModuleType("basicsr.archs.arch_util"),
    }
    mods["basicsr.utils.registry"].ARCH_REGISTRY = _Registry()
    mods["basicsr.archs.arch_util"].default_init_weights = _default_init_weights
    for name, mod in mods.items():
        sys.modules.setdefault(name, mod)


def load_reference(wheel: Path | None = None) -> types.ModuleType:
    """Returns the module holding ``GFPGANv1Clean`` (and ``StyleGAN2GeneratorCSFT``)."""
    if f"{_PKG}.gfpganv1_clean_arch" in sys.modules:
        return sys.modules[f"{_PKG}.gfpganv1_clean_arch"]
    wheel = wheel or find_wheel()
    if wheel is None:
        raise FileNotFoundError("gfpgan-1.3.8 wheel not found")
    _install_stubs()
    pkg = types.ModuleType(_PKG)
    pkg.__path__ = []  # a namespace for the relative import inside gfpganv1_clean_arch
    sys.modules[_PKG] = pkg
    with zipfile.ZipFile(wheel) as zf:
        for arch in ARCH_FILES:
            stem = Path(arch).stem
            name = f"{_PKG}.{stem}"
            spec = importlib.util.spec_from_loader(name, loader=None, origin=f"{wheel}!{arch}")
            module = importlib.util.module_from_spec(spec)
            module.__package__ = _PKG
            code = compile(zf.read(arch).decode("utf-8"), f"{wheel}!{arch}", "exec")
            sys.modules[name] = module
            exec(code, module.__dict__)
            setattr(pkg, stem, module)
    return sys.modules[f"{_PKG}.gfpganv1_clean_arch"]


def reference_or_skip() -> types.ModuleType:
    """The reference module; skipped when the wheel is absent, except in CI (CI=true) where it fails."""
    wheel = find_wheel()
    if wheel is None:
        msg = ("gfpgan-1.3.8 wheel not found in .cache/reference/, $VIDRESTORE_REFERENCE_DIR or "
               "/work/refcache")
        from tests.support.require import require
        require(None, msg)
    return load_reference(wheel)


def reference_model(out_size: int = 512, *, channel_multiplier: int = 2, num_style_feat: int = 512,
                    num_mlp: int = 8) -> nn.Module:
    """GFPGANv1Clean configured like the released v1.3/v1.4 models."""
    ref = reference_or_skip()
    return ref.GFPGANv1Clean(out_size=out_size, num_style_feat=num_style_feat,
                             channel_multiplier=channel_multiplier, decoder_load_path=None,
                             fix_decoder=False, num_mlp=num_mlp, input_is_latent=True,
                             different_w=True, narrow=1, sft_half=True)
