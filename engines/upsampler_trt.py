"""TensorRT FP16/FP32 engines for the Real-ESRGAN upsampler: dynamic batch AND spatial size.

The engine is built from :func:`engines.export_upsampler.ensure_upsampler_onnx` (strongly typed: the
FP16 export carries the precision, as for GFP-GAN in :mod:`engines.build_trt`) with ONE optimisation
profile over (batch, 3, H, W): batch 1..max, H and W from ``align`` (the network's pixel-unshuffle
factor) up to the tile window (tile + 2 * pad), opt at the full window - the upsampler tiles every
frame into equal windows (:mod:`vidrestore.upscale.tiling`), so at run time every call but the one for
a frame smaller than a tile runs at exactly the opt shape.

Engines are cached beside the GFP-GAN ones (:class:`engines.engine_cache.EngineCache`) under an
:class:`UpsamplerEngineKey`: ONNX hash, precision, batch and shape profile, GPU name and compute
capability, TensorRT version. TensorRT is imported only inside the functions that need it; nothing
here has run on a GPU (no GPU in the development sessions).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vidrestore.errors import BackendUnavailable, ConfigError

from .engine_cache import CACHE_FORMAT, BatchProfile, EngineCache, default_cache_dir
from .export_onnx import sha256_file
from .onnx_contract import INPUT_NAME, OUTPUT_NAME
from .runtime import LoadedEngine


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max of the (batch, 3, H, W) input."""

    batch: BatchProfile
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]

    def __post_init__(self) -> None:
        for a, b in ((self.min_hw, self.opt_hw), (self.opt_hw, self.max_hw)):
            if not (1 <= a[0] <= b[0] and 1 <= a[1] <= b[1]):
                raise ConfigError(f"shape profile must satisfy min <= opt <= max per side, got "
                                  f"{self.min_hw} / {self.opt_hw} / {self.max_hw}")

    def shapes(self) -> tuple[tuple[int, int, int, int], ...]:
        b = self.batch
        return ((b.min, 3, *self.min_hw), (b.opt, 3, *self.opt_hw), (b.max, 3, *self.max_hw))

    def contains(self, shape: tuple[int, ...]) -> bool:
        n, _, h, w = shape
        return (self.batch.contains(n) and self.min_hw[0] <= h <= self.max_hw[0]
                and self.min_hw[1] <= w <= self.max_hw[1])

    def tag(self) -> str:
        return f"{self.batch.tag()}-{self.max_hw[0]}x{self.max_hw[1]}"


def upsampler_profile(*, window: int, max_batch: int, align: int = 1) -> ShapeProfile:
    """The profile for tiles of ``window`` pixels (tile + 2 * pad), batches of up to ``max_batch``."""
    if window < align or window % align:
        raise ConfigError(f"tile window {window} must be a positive multiple of {align}")
    low = min(align * -(-8 // align), window)     # 8 px (rounded up to the alignment), or the window
    return ShapeProfile(BatchProfile(1, max_batch, max_batch), (low, low), (window, window), (window, window))


@dataclass(frozen=True)
class UpsamplerEngineKey:
    onnx_sha256: str
    precision: str
    profile: ShapeProfile
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    kind: str = "upsampler"
    cache_format: int = CACHE_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UpsamplerEngineKey:
        fields = dict(data)
        p = dict(fields["profile"])
        fields["profile"] = ShapeProfile(BatchProfile(**p["batch"]), tuple(p["min_hw"]), tuple(p["opt_hw"]),
                                         tuple(p["max_hw"]))
        return cls(**fields)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def file_stem(self) -> str:
        return f"esrgan-{self.precision}-{self.profile.tag()}-{self.digest()}"


def build_serialized_upsampler(onnx_path: str | os.PathLike[str], *, profile: ShapeProfile,
                               workspace_gib: float = 4.0, timing_cache: Path | None = None,
                               log: Callable[[str], None] | None = None) -> bytes:
    """Strongly typed network from the ONNX, one (batch, H, W) profile -> serialized engine."""
    from .build_trt import import_tensorrt

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT could not parse the upsampler ONNX: {errors}", path=onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *profile.shapes())
    config.add_optimization_profile(opt_profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    if log is not None:
        log(f"TensorRT {trt.__version__}: building upsampler engine {profile.tag()}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable("TensorRT failed to build the upsampler engine", path=onnx_path)
    if cache is not None and timing_cache is not None:
        tmp = timing_cache.with_name(timing_cache.name + ".tmp")
        tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
        os.replace(tmp, timing_cache)
    return bytes(memoryview(serialized))


def build_upsampler_engine(weights_path: str | os.PathLike[str], *, window: int, max_batch: int,
                           align: int = 1, precision: str = "fp16",
                           cache_dir: str | os.PathLike[str] | None = None, device: int = 0,
                           workspace_gib: float = 4.0, log: Callable[[str], None] | None = None) -> Path:
    """The cached engine for an upsampler checkpoint and tile window (built when missing or stale)."""
    from .build_trt import _cuda_device, gpu_identity, import_tensorrt, timing_cache_path
    from .export_upsampler import ensure_upsampler_onnx

    if precision not in ("fp16", "fp32"):
        raise ConfigError(f"TensorRT upsampler engines are fp16 or fp32, not {precision!r}")
    trt = import_tensorrt()
    gpu_name, capability = gpu_identity(device)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    onnx_path = ensure_upsampler_onnx(weights_path, fp16=precision == "fp16", cache_dir=folder)
    key = UpsamplerEngineKey(onnx_sha256=sha256_file(onnx_path), precision=precision,
                             profile=upsampler_profile(window=window, max_batch=max_batch, align=align),
                             gpu_name=gpu_name, compute_capability=capability,
                             tensorrt_version=trt.__version__)
    timing = timing_cache_path(folder, gpu_name, capability, trt.__version__)

    def build(k: UpsamplerEngineKey, out: Path) -> None:
        with _cuda_device(device):
            out.write_bytes(build_serialized_upsampler(onnx_path, profile=k.profile, workspace_gib=workspace_gib,
                                                       timing_cache=timing, log=log))

    return EngineCache(folder).get_or_build(key, build, log=log)


class UpsamplerEngineRunner(LoadedEngine):
    """One deserialized upsampler engine; ``run`` takes (N, 3, H, W) CUDA tensors inside the profile
    and enqueues on torch's current stream (batches above the profile's max are split)."""

    def __init__(self, engine_path: str | os.PathLike[str], *, device: str = "cuda") -> None:
        super().__init__(engine_path, device=device, what="the TensorRT upsampler")
        low, opt, high = self.profile_shapes
        self.profile = ShapeProfile(BatchProfile(low[0], opt[0], high[0]), low[2:], opt[2:], high[2:])

    def run(self, x):
        import torch

        outs = []
        for chunk in x.split(self.profile.batch.max):
            if not self.profile.contains(tuple(chunk.shape)):
                raise ValueError(f"engine {self.path.name} takes {self.profile.shapes()}, got {tuple(chunk.shape)}")
            chunk = chunk.to(self.device, self.input_dtype).contiguous()
            if not self.context.set_input_shape(INPUT_NAME, tuple(chunk.shape)):
                raise ValueError(f"engine {self.path.name} rejected input shape {tuple(chunk.shape)}")
            y = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self.output_dtype,
                            device=self.device)
            self.context.set_tensor_address(INPUT_NAME, chunk.data_ptr())
            self.context.set_tensor_address(OUTPUT_NAME, y.data_ptr())
            if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for engine {self.path.name}")
            outs.append(y)
        return outs[0] if len(outs) == 1 else torch.cat(outs)
