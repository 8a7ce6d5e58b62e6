"""GFP-GAN parity with the authors' implementation (gfpgan 1.3.8 wheel), batch independence,
a negative control proving the tolerance catches real mistakes, and FP16 safety."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.checkpoints import load_face, psnr, realistic_state_dict
from tests.support.reference import reference_model
from vidrestore.models import GFPGAN, load_gfpgan
from vidrestore.models import stylegan2
from tests.support.numerics import product_numerics

TOL = 1e-3          # a correct re-implementation stays near 1e-5; real mistakes move it by 0.6-6.7
WRONG = 0.1


@pytest.fixture(scope="module")
def faces(testdata: Path) -> torch.Tensor:
    """(2, 3, 512, 512): a real aligned face and a second, different real face."""
    a = load_face(testdata / "images" / "gfpgan_cropped_Adele_512.png")
    b = load_face(testdata / "images" / "gfpgan_cropped_Julia_Roberts_512.png")
    return torch.cat([a, b])


@pytest.fixture(scope="module")
def ours(gfpgan_checkpoint: Path) -> GFPGAN:
    return load_gfpgan(gfpgan_checkpoint)


@pytest.fixture(scope="module")
def reference_outputs(gfpgan_checkpoint: Path, faces: torch.Tensor) -> dict[str, object]:
    """The authors' model with the same weights (strict load), stored noise, batch 2."""
    ref = reference_model(512)
    state = torch.load(gfpgan_checkpoint, map_location="cpu", weights_only=True)["params_ema"]
    ref.load_state_dict(state, strict=True)
    ref.eval()
    with torch.no_grad():
        image2, rgbs2 = ref(faces, return_rgb=True, randomize_noise=False)
    return {"image2": image2, "rgbs2": rgbs2, "image1": image2[:1]}


@pytest.fixture(scope="module")
def our_outputs(ours: GFPGAN, faces: torch.Tensor) -> dict[str, object]:
    with torch.no_grad():
        image2, rgbs2 = ours(faces, return_rgbs=True)
        singles = [ours(faces[i:i + 1]) for i in range(faces.shape[0])]
    return {"image2": image2, "rgbs2": rgbs2, "singles": singles}


def test_released_architecture_size(ours: GFPGAN) -> None:
    state = ours.state_dict()
    assert len(state) == 285
    assert sum(p.numel() for p in ours.parameters()) == 86_444_252
    noise = [v for k, v in state.items() if ".noises." in k]
    assert len(noise) == 15 and sum(v.numel() for v in noise) == 699_024
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())


def test_parity_with_authors_batch1(reference_outputs, our_outputs) -> None:
    diff = (our_outputs["singles"][0] - reference_outputs["image1"]).abs().max().item()
    assert diff <= TOL, f"batch 1: max abs diff {diff:.3g} vs the authors' model"


def test_parity_with_authors_batch2(reference_outputs, our_outputs) -> None:
    ref, got = reference_outputs["image2"], our_outputs["image2"]
    assert got.shape == ref.shape == (2, 3, 512, 512)
    assert got.abs().max() > 1.0  # realistic weights: not a trivially small (or clamped) output
    diff = (got - ref).abs().max().item()
    assert diff <= TOL, f"batch 2: max abs diff {diff:.3g} vs the authors' model"
    assert len(our_outputs["rgbs2"]) == len(reference_outputs["rgbs2"]) == 7
    for level, (a, b) in enumerate(zip(our_outputs["rgbs2"], reference_outputs["rgbs2"])):
        assert a.shape == b.shape == (2, 3, 8 * 2 ** level, 8 * 2 ** level)
        assert (a - b).abs().max().item() <= TOL, f"intermediate RGB {level}"


def test_batch_samples_equal_single_runs(reference_outputs, our_outputs) -> None:
    for i, single in enumerate(our_outputs["singles"]):
        assert (our_outputs["image2"][i:i + 1] - single).abs().max().item() <= 1e-4
        assert (reference_outputs["image2"][i:i + 1] - single).abs().max().item() <= TOL
    # the two faces differ, so batch rows cannot be mixed up unnoticed
    assert (our_outputs["singles"][0] - our_outputs["singles"][1]).abs().max().item() > 20 * TOL


def test_parity_tolerance_catches_a_perturbed_noise_buffer(ours, faces, reference_outputs) -> None:
    """Negative control: one noise buffer changed -> far outside the tolerance."""
    buf = ours.stylegan_decoder.noises.noise9
    saved = buf.clone()
    try:
        buf.copy_(torch.randn_like(buf, generator=torch.Generator().manual_seed(5)))
        with torch.no_grad():
            got = ours(faces[:1])
    finally:
        buf.copy_(saved)
    diff = (got - reference_outputs["image1"]).abs().max().item()
    assert diff > WRONG, f"perturbed noise buffer only moved the output by {diff:.3g}"


@pytest.mark.slow
def test_parity_tolerance_catches_swapped_sft_halves(ours, faces, reference_outputs, monkeypatch) -> None:
    """Negative control: modulating the first instead of the second half of the channels."""
    def swapped(x, scale, shift):
        half = x.shape[1] // 2
        return torch.cat([x[:, :half] * scale + shift, x[:, half:]], dim=1)

    monkeypatch.setattr(stylegan2, "cs_sft", swapped)
    with torch.no_grad():
        got = ours(faces[:1])
    diff = (got - reference_outputs["image1"]).abs().max().item()
    assert diff > WRONG, f"swapped SFT halves only moved the output by {diff:.3g}"


def test_stored_noise_is_deterministic_and_random_noise_is_not() -> None:
    torch.manual_seed(0)
    model = GFPGAN(32, num_style_feat=64).eval()
    model.load_state_dict(realistic_state_dict(32, num_style_feat=64))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = model(x), model(x)
        c = model(x, randomize_noise=True)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def _emulate_fp16(model: torch.nn.Module) -> list:
    """Round weights to half and every module's tensor output to half; arithmetic stays FP32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
        for name, b in model.named_buffers():
            b.copy_(b.half().float())

    def round_output(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            return output.half().float()   # an FP16 overflow becomes inf and reaches the output
        return None

    return [m.register_forward_hook(round_output) for m in model.modules()]


def test_fp16_emulation_on_real_face(gfpgan_checkpoint: Path, faces: torch.Tensor, our_outputs) -> None:
    """CPU half convs are impractically slow: emulate FP16 storage between all layers."""
    model = load_gfpgan(gfpgan_checkpoint)
    hooks = _emulate_fp16(model)
    try:
        with torch.no_grad():
            out = model(faces[:1].half().float())
    finally:
        for h in hooks:
            h.remove()
    ref = our_outputs["singles"][0]
    assert torch.isfinite(out).all()
    quality = psnr(out, ref)
    assert quality >= 35.0, f"FP16-emulated output only {quality:.1f} dB PSNR vs FP32"


@pytest.mark.needs_cuda
def test_fp16_on_cuda_real_face(gfpgan_checkpoint: Path, faces: torch.Tensor) -> None:
    model32 = load_gfpgan(gfpgan_checkpoint, device="cuda")
    model16 = load_gfpgan(gfpgan_checkpoint, device="cuda", dtype=torch.float16)
    x = faces.cuda()
    with torch.no_grad():
        ref = model32(x)
        out = model16(x.half())
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all()
    quality = psnr(out.float(), ref)
    assert quality >= 35.0, f"FP16 output only {quality:.1f} dB PSNR vs FP32"


@pytest.mark.needs_cuda
def test_parity_with_authors_on_cuda(gfpgan_checkpoint: Path, faces: torch.Tensor) -> None:
    ref = reference_model(512)
    ref.load_state_dict(torch.load(gfpgan_checkpoint, weights_only=True)["params_ema"], strict=True)
    ref = ref.cuda().eval()
    ours = load_gfpgan(gfpgan_checkpoint, device="cuda")
    x = faces.cuda()
    with torch.no_grad(), product_numerics():
        a, _ = ref(x, randomize_noise=False)
        b = ours(x)
    assert (a - b).abs().max().item() <= TOL
