"""Backend selection: the auto order with its reasons, explicit requests, clear errors."""
from __future__ import annotations

import pytest

from vidrestore.backends.select import CPU_ORDER, Capabilities, choose_backend, detect_capabilities
from vidrestore.errors import BackendUnavailable

ORT_CPU = ("CPUExecutionProvider",)
ORT_GPU = ("CUDAExecutionProvider", "CPUExecutionProvider")
CPU_ONLY = Capabilities(cuda=False, ort_providers=ORT_CPU)
H100 = "NVIDIA H100 80GB HBM3"
FULL_GPU = Capabilities(cuda=True, gpu_name=H100, tensorrt=True, torch_tensorrt=True, ort_providers=ORT_GPU)


def auto(caps, device="auto", precision="fp16"):
    return choose_backend(requested="auto", device=device, precision=precision, probe=caps)


@pytest.mark.parametrize("caps, expected", [
    (FULL_GPU, ("tensorrt", "cuda")),
    (Capabilities(cuda=True, gpu_name=H100, torch_tensorrt=True, ort_providers=ORT_GPU), ("torch-tensorrt", "cuda")),
    (Capabilities(cuda=True, gpu_name=H100, ort_providers=ORT_GPU), ("torch", "cuda")),
    (Capabilities(cuda=True, gpu_name=H100, ort_providers=ORT_CPU), ("torch", "cuda")),
    (CPU_ONLY, ("onnxruntime", "cpu")),
    (Capabilities(cuda=False, ort_providers=()), ("torch", "cpu")),
    (Capabilities(cuda=False, ort_providers=ORT_CPU, onnx_export=False), ("torch", "cpu")),
])
def test_auto_order(caps, expected):
    choice = auto(caps)
    assert (choice.name, choice.device) == expected
    assert choice.precision == "fp16"
    assert choice.reason.startswith(f"auto: {expected[0]} on {expected[1]}")


def test_auto_reason_lists_what_was_skipped_and_why():
    choice = auto(Capabilities(cuda=True, gpu_name=H100, ort_providers=ORT_CPU))
    assert H100 in choice.reason
    assert "tensorrt/cuda: TensorRT is not installed" in choice.reason
    assert "torch-tensorrt/cuda: torch-tensorrt is not installed" in choice.reason
    cpu = auto(Capabilities(cuda=False, ort_providers=()), precision="fp32")
    assert "no CUDA GPU" in cpu.reason and "onnxruntime/cpu: onnxruntime is not installed" in cpu.reason


def test_auto_with_cpu_device_ignores_gpu_and_follows_measured_cpu_order():
    choice = auto(FULL_GPU, device="cpu", precision="fp32")
    assert (choice.name, choice.device) == (CPU_ORDER[0], "cpu")
    assert "tensorrt" not in choice.reason


def test_auto_bf16_skips_tensorrt_and_onnxruntime():
    gpu = auto(FULL_GPU, precision="bf16")
    assert gpu.name == "torch-tensorrt" and "fp16/fp32, not bf16" in gpu.reason
    cpu = auto(CPU_ONLY, precision="bf16")
    assert (cpu.name, cpu.device) == ("torch", "cpu")


def test_auto_on_cuda_device_prefers_ort_cuda_over_nothing():
    caps = Capabilities(cuda=True, gpu_name=H100, ort_providers=ORT_GPU)
    assert auto(caps, device="cuda").name == "torch"  # torch CUDA ranks above onnxruntime CUDA


def test_cuda_request_without_gpu_is_a_clear_error():
    for requested in ("auto", "torch", "onnxruntime", "tensorrt"):
        with pytest.raises(BackendUnavailable, match="--device cuda was requested but torch sees no CUDA GPU"):
            choose_backend(requested=requested, device="cuda", precision="fp32", probe=CPU_ONLY)


@pytest.mark.parametrize("requested, caps, device, match", [
    ("tensorrt", CPU_ONLY, "auto", "no CUDA GPU is visible"),
    ("tensorrt", Capabilities(cuda=True, ort_providers=ORT_CPU), "auto", "pip install tensorrt"),
    ("tensorrt", FULL_GPU, "cpu", "TensorRT runs on CUDA only"),
    ("torch-tensorrt", Capabilities(cuda=True, ort_providers=ORT_CPU), "cuda", "pip install torch-tensorrt"),
    ("onnxruntime", Capabilities(cuda=True, ort_providers=ORT_CPU), "cuda", "pip install onnxruntime-gpu"),
    ("onnxruntime", Capabilities(cuda=False, ort_providers=ORT_CPU, onnx_export=False), "cpu", "pip install onnx"),
])
def test_explicit_requests_that_cannot_be_met(requested, caps, device, match):
    with pytest.raises(BackendUnavailable, match=match) as info:
        choose_backend(requested=requested, device=device, precision="fp16", probe=caps)
    assert f"--backend {requested}" in str(info.value)


def test_explicit_bf16_tensorrt_is_refused():
    with pytest.raises(BackendUnavailable, match="not bf16"):
        choose_backend(requested="tensorrt", device="cuda", precision="bf16", probe=FULL_GPU)


@pytest.mark.parametrize("requested, caps, device, expected_device", [
    ("torch", CPU_ONLY, "auto", "cpu"),
    ("torch", FULL_GPU, "auto", "cuda"),
    ("torch", FULL_GPU, "cpu", "cpu"),
    ("onnxruntime", FULL_GPU, "auto", "cuda"),
    ("onnxruntime", Capabilities(cuda=True, ort_providers=ORT_CPU), "auto", "cpu"),
    ("tensorrt", FULL_GPU, "auto", "cuda"),
    ("torch-tensorrt", FULL_GPU, "cuda", "cuda"),
])
def test_explicit_requests_that_can_be_met(requested, caps, device, expected_device):
    choice = choose_backend(requested=requested, device=device, precision="fp32", probe=caps)
    assert (choice.name, choice.device, choice.precision) == (requested, expected_device, "fp32")
    assert choice.reason.startswith(f"--backend {requested} requested")


def test_detect_capabilities_matches_this_machine():
    import onnxruntime
    import torch

    caps = detect_capabilities()
    assert caps.cuda == torch.cuda.is_available()
    assert caps.ort_providers == tuple(onnxruntime.get_available_providers())
    assert caps.onnx_export  # onnx is installed in the dev environment
    if not caps.cuda:
        assert not caps.tensorrt and not caps.torch_tensorrt and caps.gpu_name is None


def test_create_backend_for_an_onnxruntime_choice(tmp_path):
    import torch

    from tests.support.small_gfpgan import small_checkpoint
    from vidrestore.backends.base import RestoreBackend
    from vidrestore.backends.select import BackendChoice, create_backend
    from vidrestore.config import ModelConfig

    choice = choose_backend(requested="auto", device="cpu", precision="fp32", probe=CPU_ONLY)
    assert choice == BackendChoice("onnxruntime", "cpu", "fp32", choice.reason)
    backend = create_backend(choice, small_checkpoint(tmp_path / "w.pth"), max_batch=2, threads=1,
                             cache_dir=tmp_path / "cache")
    assert isinstance(backend, RestoreBackend)
    assert (backend.name, backend.device, backend.precision, backend.max_batch) == ("onnxruntime", "cpu", "fp32", 2)
    assert backend.restore(torch.zeros(3, 3, 8, 8)).shape == (3, 3, 8, 8)
    assert ModelConfig().backend == "auto"   # the config's default goes through choose_backend


def test_default_batch_is_one_face_on_the_cpu_and_eight_on_a_gpu(tmp_path):
    from tests.support.small_gfpgan import small_checkpoint
    from vidrestore.backends.factory import create_backend as from_config
    from vidrestore.backends.factory import default_batch
    from vidrestore.config import ModelConfig

    assert (default_batch("cpu"), default_batch("cuda"), default_batch("cuda:1")) == (1, 8, 8)
    weights = str(small_checkpoint(tmp_path / "w.pth"))
    auto, _ = from_config(ModelConfig(weights=weights, backend="onnxruntime", device="cpu",
                                      cache_dir=tmp_path / "c"))
    assert auto.max_batch == 1
    given, _ = from_config(ModelConfig(weights=weights, backend="onnxruntime", device="cpu", batch=3,
                                       cache_dir=tmp_path / "c"))
    assert given.max_batch == 3
