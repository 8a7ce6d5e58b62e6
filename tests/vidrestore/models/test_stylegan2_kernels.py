"""The custom-kernel hook of the StyleGAN2 decoder (set_kernels): same output as the plain path."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engines import kernels_reference as ref
from tests.support.checkpoints import realistic_state_dict
from vidrestore.models import GFPGAN
from tests.support.numerics import product_numerics


def _model(out_size: int, **kw) -> GFPGAN:
    m = GFPGAN(out_size, **kw)
    m.load_state_dict(realistic_state_dict(out_size, seed=3, **kw))
    return m.eval()


def _counting_reference_ops(calls: dict[str, int]) -> SimpleNamespace:
    def wrap(name):
        fn = getattr(ref, name)

        def f(*a, **k):
            calls[name] = calls.get(name, 0) + 1
            return fn(*a, **k)
        return f
    return SimpleNamespace(**{n: wrap(n) for n in ("style_demod", "modulate_input", "modconv_epilogue",
                                                   "sft_half")})


def test_reference_kernels_give_the_default_output():
    torch.manual_seed(0)
    model = _model(64, channel_multiplier=1, num_style_feat=64)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        expected = model(x)
        calls: dict[str, int] = {}
        model.set_kernels(_counting_reference_ops(calls))
        got = model(x)
        model.set_kernels(None)
        again = model(x)
    dec = model.stylegan_decoder
    n_styled = 1 + len(dec.style_convs)
    assert calls == {"modulate_input": n_styled + 1 + len(dec.to_rgbs),      # styled convs + ToRGBs
                     "style_demod": n_styled, "modconv_epilogue": n_styled + 1 + len(dec.to_rgbs),
                     "sft_half": len(dec.to_rgbs)}
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(again, expected)                                  # None restores the torch path
    assert expected.std().item() > 0.05                                  # a non-trivial output


def test_hook_is_not_a_no_op_and_random_noise_keeps_torch_path():
    """A wrong epilogue (no noise) must show up; randomize_noise bypasses the kernels."""
    torch.manual_seed(0)
    model = _model(64, channel_multiplier=1, num_style_feat=64)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    broken = SimpleNamespace(style_demod=ref.style_demod, modulate_input=ref.modulate_input,
                             sft_half=ref.sft_half,
                             modconv_epilogue=lambda y, d, b, **k: ref.modconv_epilogue(
                                 y, d, b, **{**k, "noise_strength": 0.0}))
    with torch.inference_mode():
        expected = model(x)
        model.set_kernels(broken)
        assert (model(x) - expected).abs().max().item() > 1e-3
        calls: dict[str, int] = {}
        model.set_kernels(_counting_reference_ops(calls))
        model(torch.cat([x, x]), randomize_noise=True)
    assert "style_demod" not in calls                                     # per-sample noise: torch path


def test_weight_sq_cache_follows_weight_updates():
    model = _model(64, channel_multiplier=1, num_style_feat=64)
    mc = model.stylegan_decoder.style_conv1.modulated_conv
    first = mc.weight_sq()
    assert mc.weight_sq() is first
    torch.testing.assert_close(first, ref.weight_sq_sum(mc.weight))
    with torch.no_grad():
        mc.weight.mul_(2.0)
    torch.testing.assert_close(mc.weight_sq(), first * 4)
    conv = model.stylegan_decoder.style_conv1
    s = conv.noise_strength()
    with torch.no_grad():
        conv.weight.add_(1.0)
    assert conv.noise_strength() == pytest.approx(s + 1.0)


@pytest.mark.needs_cuda
def test_cupy_kernels_give_the_default_output_on_cuda():
    pytest.importorskip("cupy")
    from vidrestore.backends.torch import model_kernels
    torch.manual_seed(0)
    model = _model(512).cuda()
    x = (torch.rand(2, 3, 512, 512) * 2 - 1).cuda()
    with torch.inference_mode(), product_numerics():
        expected = model(x)
        model.set_kernels(model_kernels(torch.device("cuda"), "cupy"))
        got = model(x)
        half = model.half()
        got16 = half(x.half()).float()
        half.set_kernels(None)
        exp16 = half(x.half()).float()
    from tests.support.checkpoints import psnr
    assert (got - expected).abs().max().item() <= 1e-3
    assert psnr(got16, exp16) >= 40.0, psnr(got16, exp16)
    assert psnr(got16, expected) >= 35.0, psnr(got16, expected)


def test_backend_kernel_choice_on_cpu():
    from vidrestore.backends.torch import model_kernels
    from vidrestore.errors import BackendUnavailable, ConfigError
    assert model_kernels(torch.device("cpu"), "auto") is None
    assert model_kernels(torch.device("cpu"), "torch") is None
    with pytest.raises(BackendUnavailable):
        model_kernels(torch.device("cpu"), "cupy")
    with pytest.raises(ConfigError):
        model_kernels(torch.device("cpu"), "fast")


def test_backend_kernel_choice_keeps_bf16_on_plain_torch(monkeypatch):
    """The CuPy kernels take float32/float16 tensors only: a bf16 model on CUDA must not get them
    (they would raise TypeError in the first StyleConv)."""
    import engines.kernels as K
    from vidrestore.backends.torch import model_kernels
    from vidrestore.errors import ConfigError

    class Loads:                               # stands in for kernels that load on a GPU
        def __init__(self, device):
            self.style_demod = self.modulate_input = self.modconv_epilogue = self.sft_half = None

    monkeypatch.setattr(K, "ModConvKernels", Loads)
    monkeypatch.setattr(K, "SFTKernels", Loads)
    cuda = torch.device("cuda")
    for dtype in (torch.float32, torch.float16):
        assert model_kernels(cuda, "auto", dtype=dtype) is not None
    assert model_kernels(cuda, "auto", dtype=torch.bfloat16) is None
    with pytest.raises(ConfigError, match="fp32 and fp16"):
        model_kernels(cuda, "cupy", dtype=torch.bfloat16)


@pytest.mark.skipif(not __import__("tests.support.cuda_emu", fromlist=["x"]).available(),
                    reason="g++ not available for the kernel emulation")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cupy_wrappers_through_the_hook_on_the_emulator(dtype):
    """The real ModConvKernels/SFTKernels wrappers (kernels emulated on the CPU) plugged in exactly as
    TorchBackend does: every argument passes the wrappers' checks and the output is the plain one."""
    from tests.support.emulated_kernels import emulated
    from vidrestore.backends.torch import kernel_namespace
    torch.manual_seed(0)
    model = GFPGAN(16, num_style_feat=16, channel_multiplier=1, narrow=0.0625).eval()
    with torch.no_grad():
        for m in model.stylegan_decoder.modules():
            if m.__class__.__name__ == "StyleConv":
                m.weight.fill_(0.1)
                m.bias.normal_(0, 0.1)
    model = model.to(dtype)
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).to(dtype)
    with torch.inference_mode():
        expected = model(x).float()
        model.set_kernels(kernel_namespace(emulated("modconv"), emulated("sft")))
        got = model(x).float()
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    assert (got - expected).abs().max().item() <= tol
    assert expected.std().item() > 0.01
