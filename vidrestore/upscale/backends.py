"""The Real-ESRGAN upsampler behind the same backends as GFP-GAN: torch (CPU/CUDA), onnxruntime
(CPU/CUDA; ONNX exported once with a dynamic batch and spatial size) and TensorRT (FP16/FP32 engine
with its own (batch, H, W) profile, cached). Which one runs is decided by
:func:`vidrestore.backends.select.choose_backend` from the same ``--backend/--device/--precision`` as
the face network, so ``--backend auto`` picks for both in the same order and says why; options only
the face network has are mapped (``int8`` -> fp32, ``torch-tensorrt`` -> TensorRT, else torch).

An :class:`Upsampler` is a callable on (N, 3, h, w) float32 RGB in [0, 1] on its device returning
(N, 3, scale*h, scale*w), not clamped; :mod:`vidrestore.upscale.tiling` feeds it equal windows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch

from ..models.numerics import use_product_numerics
from ..backends.select import Capabilities, choose_backend
from ..config import ModelConfig
from ..errors import BackendUnavailable

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Upsampler(Protocol):
    name: str           # "torch" | "onnxruntime" | "tensorrt"
    device: str
    precision: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class NetworkInfo:
    scale: int              # the network's own factor (2 or 4)
    align: int              # input sizes must be multiples of this (pixel-unshuffle)
    receptive_radius: int   # input pixels each side that influence an output pixel


class TorchUpsampler:
    name = "torch"

    def __init__(self, model: torch.nn.Module, *, device: str, precision: str = "fp32") -> None:
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendUnavailable("--precision fp16 for the upsampler needs --device cuda")
        self.device, self.precision = device, precision
        self._dtype = DTYPES[precision]
        use_product_numerics(device)
        self.model = model.to(device=device, dtype=self._dtype).eval()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device, self._dtype)).float()


class OnnxUpsampler:
    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, *, device: str = "cpu", precision: str = "fp32",
                 threads: int = 0) -> None:
        from ..backends.onnxruntime import _import_ort, session_options

        ort = _import_ort()
        self.device = "cpu" if device == "cpu" else (device if ":" in device else "cuda:0")
        self.precision = precision
        if self.device == "cpu":
            providers: list = ["CPUExecutionProvider"]
        else:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("onnxruntime has no CUDA execution provider here: pip install "
                                         "onnxruntime-gpu, or use --device cpu")
            providers = [("CUDAExecutionProvider", {"device_id": int(self.device.split(":")[1])}),
                         "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(onnx_path), providers=providers, sess_options=session_options(
            threads=threads, device="cpu" if self.device == "cpu" else "cuda"))
        self.onnx_path = Path(onnx_path)
        self.scale = int(self.session.get_modelmeta().custom_metadata_map.get("vidrestore.scale", "4"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device == "cpu":
            (y,) = self.session.run(["output"], {"input": x.detach().float().cpu().contiguous().numpy()})
            return torch.from_numpy(y)
        import numpy as np

        index = int(self.device.split(":")[1])
        x = x.detach().to(self.device, torch.float32).contiguous()
        n, c, h, w = x.shape
        s = self.scale
        y = torch.empty(n, c, h * s, w * s, device=self.device)
        binding = self.session.io_binding()
        binding.bind_input(name="input", device_type="cuda", device_id=index, element_type=np.float32,
                           shape=tuple(x.shape), buffer_ptr=x.data_ptr())
        binding.bind_output(name="output", device_type="cuda", device_id=index, element_type=np.float32,
                            shape=tuple(y.shape), buffer_ptr=y.data_ptr())
        torch.cuda.current_stream(x.device).synchronize()
        self.session.run_with_iobinding(binding)
        return y


class TensorRTUpsampler:
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, *, device: str = "cuda", precision: str = "fp16") -> None:
        from engines.upsampler_trt import UpsamplerEngineRunner   # lazy: engines depends on vidrestore

        self.runner = UpsamplerEngineRunner(engine_path, device=device)
        self.device = str(self.runner.device)
        self.precision = precision

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.run(x).float()


def upsampler_choice(model: ModelConfig, *, device: str, probe: Capabilities | None = None):
    """(BackendChoice for the upsampler, note) - the face network's rule with the mapping above."""
    precision, notes = model.precision, []
    if precision == "int8":
        precision = "fp32"
        notes.append("int8 is for the face network only; the upsampler runs fp32")
    requested = model.backend
    if requested == "torch-tensorrt":
        caps = probe
        if caps is None:
            from ..backends.select import detect_capabilities
            caps = detect_capabilities()
        requested = "tensorrt" if caps.tensorrt else "torch"
        notes.append(f"torch-tensorrt has no upsampler path; {requested} instead")
    if precision == "fp16" and device == "cpu":
        precision = "fp32"
        notes.append("fp16 needs CUDA; the upsampler runs fp32 on the CPU")
    choice = choose_backend(requested=requested, device=device, precision=precision, probe=probe)
    reason = choice.reason + ("" if not notes else " (" + "; ".join(notes) + ")")
    return replace(choice, reason=reason)


def create_upsampler(weights: str | Path, *, model: ModelConfig, device: str, window: int, max_batch: int,
                     probe: Capabilities | None = None) -> tuple[Upsampler, NetworkInfo, str]:
    """(upsampler, what the network needs, why this backend) for a Real-ESRGAN checkpoint.

    ``device`` is where the frames live ("cpu" or "cuda[:i]"); ``window`` the tile window size the
    TensorRT profile is built for.
    """
    from ..models.realesrgan import load_upsampler

    net = load_upsampler(weights)
    info = NetworkInfo(scale=int(net.scale), align=int(getattr(net, "unshuffle", 1)),
                       receptive_radius=int(net.receptive_radius))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    choice = upsampler_choice(model, device=kind, probe=probe)
    dev = device if kind == "cuda" else "cpu"
    if choice.name == "onnxruntime":
        from engines.export_upsampler import ensure_upsampler_onnx

        onnx = ensure_upsampler_onnx(weights, fp16=choice.precision == "fp16", cache_dir=model.cache_dir)
        return OnnxUpsampler(onnx, device=dev, precision=choice.precision, threads=model.threads), info, choice.reason
    if choice.name == "tensorrt":
        from engines.upsampler_trt import build_upsampler_engine

        index = torch.device(dev).index or 0
        engine = build_upsampler_engine(weights, window=window, max_batch=max_batch, align=info.align,
                                        precision=choice.precision, cache_dir=model.cache_dir, device=index)
        return TensorRTUpsampler(engine, device=dev, precision=choice.precision), info, choice.reason
    return TorchUpsampler(net, device=dev, precision=choice.precision), info, choice.reason
