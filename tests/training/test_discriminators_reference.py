"""Parity of training/discriminators.py with the authors' networks: BasicSR 1.4.2's StyleGAN2Discriminator
and GFP-GAN 1.3.8's FacialComponentDiscriminator, loaded by path from the sdist/wheel.

Needs ``basicsr-1.4.2.tar.gz`` (``pip download basicsr==1.4.2 --no-deps``) in ``<repo>/.cache/reference/``,
``$VIDRESTORE_REFERENCE_DIR`` or ``/work/refcache``; skipped otherwise. Only ``stylegan2_arch.py`` and
``upfirdn2d.py`` (with its pure-torch ``upfirdn2d_native`` path, used on the CPU) are read from it; the
compiled ``fused_act`` extension is replaced by its definition, leaky_relu(x + bias, 0.2) * sqrt(2).
"""
from __future__ import annotations

import os
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from training.discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator

REPO = Path(__file__).resolve().parents[2]


def _find(pattern: str) -> Path | None:
    for d in (REPO / ".cache" / "reference", os.environ.get("VIDRESTORE_REFERENCE_DIR"), "/work/refcache"):
        if d and Path(d).is_dir():
            hits = sorted(Path(d).glob(pattern))
            if hits:
                return hits[0]
    return None


def _fused_act_module() -> types.ModuleType:
    def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2 ** 0.5):
        return F.leaky_relu(x + bias.view([1, -1] + [1] * (x.ndim - 2)), negative_slope) * scale

    class FusedLeakyReLU(nn.Module):
        def __init__(self, channel, negative_slope=0.2, scale=2 ** 0.5):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(channel))
            self.negative_slope, self.scale = negative_slope, scale

        def forward(self, x):
            return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)

    m = types.ModuleType("basicsr.ops.fused_act")
    m.FusedLeakyReLU, m.fused_leaky_relu = FusedLeakyReLU, fused_leaky_relu
    return m


@pytest.fixture(scope="module")
def reference():
    sdist, wheel = _find("basicsr-1.4.2.tar.gz"), _find("gfpgan-1.3.8-*.whl")
    if sdist is None or wheel is None:
        from tests.support.require import require
        require(None, "basicsr-1.4.2.tar.gz / gfpgan-1.3.8 wheel not found (see module docstring)")
    from tests.support import reference as ref_support
    ref_support._install_stubs()                       # basicsr, .utils.registry, .archs.arch_util
    sys.modules.setdefault("basicsr.ops", types.ModuleType("basicsr.ops"))
    sys.modules.setdefault("basicsr.ops.fused_act", _fused_act_module())

    def load(name: str, text: str, package: str) -> types.ModuleType:
        if name in sys.modules and hasattr(sys.modules[name], "__file__"):
            return sys.modules[name]
        m = types.ModuleType(name)
        m.__package__, m.__file__ = package, name
        sys.modules[name] = m
        exec(compile(text, name, "exec"), m.__dict__)
        return m

    with tarfile.open(sdist) as tf:
        read = lambda p: tf.extractfile(f"basicsr-1.4.2/basicsr/{p}").read().decode()  # noqa: E731
        load("basicsr.ops.upfirdn2d", read("ops/upfirdn2d/upfirdn2d.py"), "basicsr.ops")
        sg = load("basicsr.archs.stylegan2_arch", read("archs/stylegan2_arch.py"), "basicsr.archs")
    with zipfile.ZipFile(wheel) as zf:
        g1 = load("_gfpgan_reference_v1_arch", zf.read("gfpgan/archs/gfpganv1_arch.py").decode(), "")
    return sg, g1


def _randomise(net: nn.Module) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize("size, cm", [(64, 1), (128, 2)])
def test_stylegan2_discriminator_equals_basicsr(reference, size, cm):
    sg, _ = reference
    torch.manual_seed(0)
    ref = sg.StyleGAN2Discriminator(size, channel_multiplier=cm, narrow=0.25)
    _randomise(ref)
    ours = StyleGAN2Discriminator(size, channel_multiplier=cm, narrow=0.25)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_component_discriminator_equals_gfpgan(reference):
    _, g1 = reference
    torch.manual_seed(0)
    ref = g1.FacialComponentDiscriminator()
    _randomise(ref)
    ours = FacialComponentDiscriminator()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        (a, fa), (b, fb) = ref(x, return_feats=True), ours(x, return_feats=True)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    for p, q in zip(fb, fa, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
