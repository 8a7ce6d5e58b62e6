"""The authors' GFP-GAN architecture (``GFPGANv1Clean``), loaded by path from the ``gfpgan`` wheel.

The benchmark compares vidrestore against the code people run today, so it must use the authors' own
network, not ours. ``gfpgan==1.3.8`` cannot be installed (it pulls ``basicsr``, which does not import with
current torchvision), but its two "clean" architecture files only need two names from basicsr:

- ``basicsr.utils.registry.ARCH_REGISTRY`` (a class decorator; a no-op here), and
- ``basicsr.archs.arch_util.default_init_weights`` (re-implemented below with the same behaviour:
  Kaiming-normal weights times ``scale``, biases filled with ``bias_fill``, BatchNorm weight 1).

The files are read straight out of the wheel (no extraction) and executed as modules of a private
package; the basicsr stubs live in ``sys.modules`` only while the two files execute.

Where the wheel is looked for, first hit wins: ``$VIDRESTORE_REFERENCE_DIR``, ``<repo>/.cache/reference``
(where CI downloads it), ``/work/refcache``. Each may hold the wheel file itself.
"""
from __future__ import annotations

import functools
import os
import sys
import types
import zipfile
from pathlib import Path

from vidrestore.errors import BackendUnavailable

__all__ = ["find_wheel", "load_reference_arch", "build_gfpgan_clean", "GFPGAN_CLEAN_KWARGS"]

REPO = Path(__file__).resolve().parents[1]
WHEEL_GLOB = "gfpgan-1.3.8-py3-none-any.whl"
_ARCH_FILES = ("gfpgan/archs/stylegan2_clean_arch.py", "gfpgan/archs/gfpganv1_clean_arch.py")
_PACKAGE = "_vidrestore_reference_gfpgan"

# The settings shared by the released v1.2 / v1.3 / v1.4 checkpoints (GFPGANer(arch='clean')).
GFPGAN_CLEAN_KWARGS = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                           fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                           sft_half=True)


def _candidate_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("VIDRESTORE_REFERENCE_DIR")
    if env:
        dirs.append(Path(env))
    dirs += [REPO / ".cache" / "reference", Path("/work/refcache")]
    return dirs


def find_wheel() -> Path:
    """Path of the authors' gfpgan 1.3.8 wheel; BackendUnavailable naming the places looked at if absent."""
    looked = _candidate_dirs()
    for d in looked:
        if d.is_file() and d.name.endswith(".whl"):
            return d
        hit = d / WHEEL_GLOB
        if hit.is_file():
            return hit
    raise BackendUnavailable(
        "the authors' gfpgan-1.3.8 wheel was not found in " + ", ".join(str(d) for d in looked)
        + " (set VIDRESTORE_REFERENCE_DIR, or download it with `pip download gfpgan==1.3.8 --no-deps`)")


def _default_init_weights(module_list, scale=1, bias_fill=0, **kwargs) -> None:
    """Same behaviour as basicsr.archs.arch_util.default_init_weights."""
    import torch
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    if not isinstance(module_list, list):
        module_list = [module_list]
    with torch.no_grad():
        for module in module_list:
            for m in module.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight, **kwargs)
                    m.weight.data *= scale
                    if m.bias is not None:
                        m.bias.data.fill_(bias_fill)
                elif isinstance(m, _BatchNorm):
                    nn.init.constant_(m.weight, 1)
                    if m.bias is not None:
                        m.bias.data.fill_(bias_fill)


class _NoRegistry:
    """Stand-in for basicsr's ARCH_REGISTRY: ``register()`` returns the class unchanged."""

    def register(self, obj=None):
        return obj if obj is not None else (lambda cls: cls)


def _stub_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in
            ("basicsr", "basicsr.utils", "basicsr.utils.registry", "basicsr.archs", "basicsr.archs.arch_util")}
    mods["basicsr.utils.registry"].ARCH_REGISTRY = _NoRegistry()
    mods["basicsr.archs.arch_util"].default_init_weights = _default_init_weights
    return mods


@functools.lru_cache(maxsize=4)
def _load(wheel: str) -> types.SimpleNamespace:
    try:
        with zipfile.ZipFile(wheel) as zf:
            sources = {name: zf.read(name).decode("utf-8") for name in _ARCH_FILES}
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BackendUnavailable(f"cannot read the GFP-GAN architecture from the wheel ({exc})", path=wheel) from exc

    stubs = _stub_modules()
    saved = {name: sys.modules.get(name) for name in stubs}
    package = types.ModuleType(_PACKAGE)
    package.__path__ = []  # a namespace for the relative import in gfpganv1_clean_arch
    sys.modules[_PACKAGE] = package
    loaded = {}
    try:
        sys.modules.update(stubs)
        for name in _ARCH_FILES:
            modname = f"{_PACKAGE}.{Path(name).stem}"
            module = types.ModuleType(modname)
            module.__package__ = _PACKAGE
            module.__file__ = f"{wheel}/{name}"
            sys.modules[modname] = module
            exec(compile(sources[name], module.__file__, "exec"), module.__dict__)
            loaded[Path(name).stem] = module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return types.SimpleNamespace(
        GFPGANv1Clean=loaded["gfpganv1_clean_arch"].GFPGANv1Clean,
        StyleGAN2GeneratorClean=loaded["stylegan2_clean_arch"].StyleGAN2GeneratorClean,
        wheel=Path(wheel),
    )


def load_reference_arch(wheel: str | os.PathLike[str] | None = None) -> types.SimpleNamespace:
    """The authors' classes: ``.GFPGANv1Clean``, ``.StyleGAN2GeneratorClean``, and ``.wheel`` (its path)."""
    return _load(str(Path(wheel) if wheel is not None else find_wheel()))


def build_gfpgan_clean(wheel: str | os.PathLike[str] | None = None):
    """A randomly initialised authors' GFPGANv1Clean with the released checkpoints' settings, in eval mode."""
    net = load_reference_arch(wheel).GFPGANv1Clean(**GFPGAN_CLEAN_KWARGS)
    return net.eval()
