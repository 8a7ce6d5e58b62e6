"""Build TensorRT engines from the exported ONNX (TensorRT 10.x / 11.x Python API).

Precision is carried by the ONNX file, not by builder flags: ``precision="fp16"`` builds from the mixed
FP16 export (:mod:`engines.precision`: convolutions in FP16, the demodulation island in FP32, FP32
I/O) as a *strongly typed* network, so TensorRT runs exactly the types in the graph. That is the only
mode TensorRT 11 has (``BuilderFlag.FP16`` and the precision-constraint flags are gone there; the
``STRONGLY_TYPED`` creation flag is opt-in in 10.x and ignored in 11.x). Weak typing
(``BuilderFlag.FP16`` + ``layer.precision`` pins + ``OBEY_PRECISION_CONSTRAINTS``) is deliberately not
used: it is deprecated since 10.12 and removed in 11, and the FP16 ONNX already says which layers stay
FP32 (:func:`engines.precision.fp32_node_names`).

The batch dimension gets one optimisation profile (min/opt/max on ``input``). A timing cache per
GPU/TensorRT version lives beside the engines and makes rebuilds (other profiles, precisions) fast.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidrestore.errors import BackendUnavailable, ConfigError

from .engine_cache import BatchProfile, EngineCache, EngineKey, default_cache_dir
from .export_onnx import sha256_file
from .onnx_contract import INPUT_NAME

TRT_INSTALL = ("TensorRT is not installed: pip install tensorrt (or vidrestore[trt]); it needs an "
               "NVIDIA GPU and driver")


def import_tensorrt():
    """``import tensorrt`` with a :class:`BackendUnavailable` carrying install advice."""
    try:
        import tensorrt
    except ImportError as err:
        raise BackendUnavailable(TRT_INSTALL) from err
    except Exception as err:  # a broken install (missing libnvinfer) raises OSError & co.
        raise BackendUnavailable(f"TensorRT failed to load ({err}); reinstall it: pip install tensorrt") from err
    return tensorrt


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, for the engine cache key."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT engines need a CUDA GPU, and torch sees none (--device cuda)")
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


@dataclass(frozen=True)
class OnnxInfo:
    """What the builder needs to know about an exported ONNX file."""

    path: Path
    sha256: str
    image_size: int          # S of (batch, 3, S, S)
    dynamic_batch: bool
    precision: str           # "fp32" or "fp16" (from the export metadata or the initializer types)


def inspect_onnx(path: str | os.PathLike[str]) -> OnnxInfo:
    """Read and validate the ONNX file an engine is built from: names ``input``/``output``, shape
    (batch, 3, S, S), a dynamic batch. Raises :class:`BackendUnavailable` naming the file otherwise."""
    import onnx

    from .export_onnx import check_graph

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise BackendUnavailable(f"not a readable ONNX file ({err})", path=path) from err
    problems = check_graph(proto, dynamic_batch=True)
    if problems:
        raise BackendUnavailable("ONNX file cannot be built into a dynamic-batch engine: "
                                 + "; ".join(problems), path=path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if dims[2].dim_value != dims[3].dim_value or dims[2].dim_value <= 0:
        raise BackendUnavailable(f"ONNX input must be square with a fixed size, got "
                                 f"{dims[2].dim_value or dims[2].dim_param}x{dims[3].dim_value or dims[3].dim_param}",
                                 path=path)
    meta = {p.key: p.value for p in proto.metadata_props}
    precision = meta.get("vidrestore.precision")
    if precision is None:
        fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
        precision = "fp16" if fp16 else "fp32"
    return OnnxInfo(path=path, sha256=sha256_file(path), image_size=dims[2].dim_value, dynamic_batch=True,
                    precision=precision)


def profile_shapes(profile: BatchProfile, image_size: int) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of ``input`` for the optimisation profile."""
    return tuple((n, 3, image_size, image_size) for n in (profile.min, profile.opt, profile.max))


def timing_cache_path(cache_dir: Path, gpu_name: str, compute_capability: str, trt_version: str) -> Path:
    safe = "".join(c if c.isalnum() else "-" for c in gpu_name).strip("-")
    return cache_dir / f"timing-{safe}-sm{compute_capability.replace('.', '')}-trt{trt_version}.cache"


def build_serialized_engine(onnx_path: str | os.PathLike[str], *, profile: BatchProfile, image_size: int,
                            workspace_gib: float = 4.0, timing_cache: Path | None = None,
                            log: Callable[[str], None] | None = None) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build a serialized engine with one batch
    profile. The graph's own types decide the precision (FP32 export -> FP32 engine, mixed FP16 export
    -> FP16 engine with the FP32 demodulation island)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # 10.x: opt in; 11.x: always on
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external data beside the file
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT could not parse the ONNX file: {errors}", path=onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *profile_shapes(profile, image_size))
    config.add_optimization_profile(opt_profile)

    cache = None
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    if log is not None:
        log(f"TensorRT {trt.__version__}: building engine from {Path(onnx_path).name}, batch "
            f"{profile.min}/{profile.opt}/{profile.max}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable("TensorRT failed to build the engine (see the TensorRT log above)",
                                 path=onnx_path)
    if cache is not None and timing_cache is not None:
        data = config.get_timing_cache().serialize()
        tmp = timing_cache.with_name(timing_cache.name + ".tmp")
        tmp.write_bytes(bytes(memoryview(data)))
        os.replace(tmp, timing_cache)
    return bytes(memoryview(serialized))


def engine_key(info: OnnxInfo, *, precision: str, profile: BatchProfile, device: int = 0,
               trt_version: str | None = None) -> EngineKey:
    gpu_name, capability = gpu_identity(device)
    if trt_version is None:
        trt_version = import_tensorrt().__version__
    return EngineKey(onnx_sha256=info.sha256, precision=precision, profile=profile,
                     image_size=info.image_size, gpu_name=gpu_name, compute_capability=capability,
                     tensorrt_version=trt_version)


def build_engine(weights: str, *, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, cache_dir: str | os.PathLike[str] | None = None,
                 workspace_gib: float = 4.0, device: int = 0,
                 log: Callable[[str], None] | None = None) -> Path:
    """The TensorRT engine for a checkpoint (release name or path), built once and cached.

    Backs ``vidrestore engines build --weights ... --max-batch 32 --precision fp16``. Exports the ONNX
    (cached by checkpoint SHA-256), then builds or reuses the engine keyed by ONNX hash, precision,
    batch profile, GPU and TensorRT version (see :mod:`engines.engine_cache`).
    """
    if precision not in ("fp16", "fp32"):
        raise ConfigError(f"TensorRT engines are built in fp16 or fp32, not {precision!r}")
    profile = BatchProfile(min_batch, opt_batch, max_batch)
    trt = import_tensorrt()  # fail before the (slow) export when TensorRT is missing
    gpu_name, capability = gpu_identity(device)
    from vidrestore.models.weights import resolve_weights

    from .export_onnx import ensure_onnx

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights_path = resolve_weights(weights)
    onnx_path = ensure_onnx(weights_path, fp16=precision == "fp16", cache_dir=folder)
    info = inspect_onnx(onnx_path)
    if info.precision != precision:
        raise BackendUnavailable(f"cached ONNX is {info.precision}, expected {precision}: delete it",
                                 path=onnx_path)
    key = engine_key(info, precision=precision, profile=profile, device=device, trt_version=trt.__version__)
    timing = timing_cache_path(folder, gpu_name, capability, trt.__version__)

    def build(k: EngineKey, out: Path) -> None:
        with _cuda_device(device):
            out.write_bytes(build_serialized_engine(onnx_path, profile=k.profile, image_size=k.image_size,
                                                    workspace_gib=workspace_gib, timing_cache=timing, log=log))

    return EngineCache(folder).get_or_build(key, build, log=log)


class _cuda_device:
    def __init__(self, index: int) -> None:
        self.index = index

    def __enter__(self):
        import torch

        self._ctx = torch.cuda.device(self.index)
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
