"""Static INT8 quantization of the GFP-GAN ONNX graph, calibrated on the first faces of a run.

Why calibrate at run time: static INT8 needs activation ranges from real inputs, a user has no
calibration set, and vidrestore ships no face images. So the onnxruntime backend with
``precision="int8"`` takes the aligned crops of its FIRST ``restore(batch)`` call (the first faces of
the input video), up to :attr:`Int8Settings.calibration_faces` of them; when that batch holds fewer,
horizontally flipped copies of its crops fill up (at most doubling it - a mirrored face is a plausible
face with the same intensity statistics). The INT8 file is cached beside the FP32 export, named after
the FP32 file's SHA-256 and :meth:`Int8Settings.key`, so later runs reuse it without recalibrating.
The cached model is therefore calibrated on the faces of the first video it saw; the JSON sidecar
``<model>.json`` records that source (:func:`read_sidecar`).

What is quantized: only the ``Conv`` nodes (their weights per output channel, their inputs per
tensor); the modulation ``Gemm``, the demodulation (``engines.precision.fp32_node_names``: a sum of
squares under a square root - precision-sensitive), noise, activations and resizes stay FP32.
Settings were chosen by measurement (``python -m benchmarks.int8_quality``; JSON in
``benchmarks/results/int8_quality-*.json``). 512 px, realistic random weights, 2 threads on the shared
2-core AVX2 (no VNNI) machine, calibrated on 2 clip faces + mirrored copies, PSNR vs FP32 on 4 held-out
real faces (min over faces), seconds per face (same process; ort FP32 8.25 s, torch FP32 13.4 s):

    QDQ per-channel u8s8 (onnxruntime's usual CPU choice)   34.55 dB  4.8 s   <- u8s8 saturates on AVX2
    u8s8 + reduce_range (7-bit weights)                     30.2 dB   5.7 s
    u8s8 per-tensor weights                                 33.85 dB  5.8 s
    u8s8 QOperator                                          35.07 dB  8.3 s
    u8s8, decoder ToRGB convs kept FP32                     34.38 dB  6.5 s
    s8s8 (symmetric int8 activations)                       35.2 dB   6.7 s
    u8u8 (uint8 weights)  = DEFAULT                         35.75 dB  7.05 s

All error comes from the StyleGAN decoder's modulated convs (keeping only the decoder FP32 gives
50.8 dB; keeping the encoder, the SFT condition convs or the up-path FP32 instead changes < 0.3 dB),
and the decoder carries most of the speed-up. u8s8 on AVX2 without VNNI multiplies with
``vpmaddubsw``, whose int16 pair sums saturate; u8u8 widens to 16 bits first - slower, exact. u8u8 is
the only setting with a margin over the 35 dB bar on every held-out face.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import BackendUnavailable, ConfigError

INT8_FORMAT = 1  # bump when the quantization code changes, so cached INT8 files are redone


@dataclass(frozen=True, kw_only=True)
class Int8Settings:
    """Everything that decides the INT8 graph (all of it goes into the cache key)."""

    quant_format: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = True
    reduce_range: bool = False        # 7-bit weights (ORT's AVX2 advice): measured -4.5 dB, slower
    activation_type: Literal["uint8", "int8"] = "uint8"
    activation_reduce_range: bool = False   # 7-bit Conv inputs (0..127): u8s8 without saturation
    weight_type: Literal["int8", "uint8"] = "uint8"   # u8u8: no u8s8 saturation on AVX2 (see below)
    calibration: Literal["minmax", "percentile", "entropy"] = "minmax"
    calibration_faces: int = 8        # crops taken from the first restore() call
    exclude_patterns: tuple[str, ...] = ()   # Conv nodes whose name contains one of these stay FP32

    def __post_init__(self) -> None:
        if self.calibration_faces < 1:
            raise ConfigError("int8 calibration needs at least one face")
        if self.quant_format not in ("qdq", "qoperator"):
            raise ConfigError(f"unknown quantization format {self.quant_format!r}")
        if self.calibration not in ("minmax", "percentile", "entropy"):
            raise ConfigError(f"unknown calibration method {self.calibration!r}")

    def key(self) -> str:
        """Short stable hash of the settings (and :data:`INT8_FORMAT`) for cache file names."""
        text = json.dumps({**asdict(self), "format": INT8_FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


DEFAULT_SETTINGS = Int8Settings()


def calibration_crops(batch: np.ndarray, faces: int) -> tuple[np.ndarray, int]:
    """The calibration set from a first batch (N, 3, S, S): its first ``faces`` crops, topped up with
    horizontally flipped copies when N < ``faces`` (at most N of them). Returns (crops, flipped)."""
    if batch.ndim != 4 or batch.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, 3, S, S) batch, got {batch.shape}")
    crops = batch[:faces]
    flipped = min(faces - crops.shape[0], crops.shape[0])
    if flipped > 0:
        crops = np.concatenate([crops, crops[:flipped, :, :, ::-1]])
    return np.ascontiguousarray(crops, dtype=np.float32), flipped


def int8_path(fp32_onnx: Path, settings: Int8Settings, *, cache_dir: Path | None = None) -> Path:
    """Where the INT8 file of ``fp32_onnx`` lives: ``<cache_dir or the FP32 file's folder>/
    <fp32 stem>-int8-<fp32 sha256[:12]>-<settings key>.onnx``."""
    from engines.export_onnx import sha256_file

    folder = Path(cache_dir) if cache_dir is not None else fp32_onnx.parent
    digest = sha256_file(fp32_onnx)[:12]
    return folder / f"{fp32_onnx.stem}-int8-{digest}-{settings.key()}.onnx"


def sidecar_path(model: Path) -> Path:
    return model.with_suffix(".json")


def read_sidecar(model: Path) -> dict:
    """The calibration record of a cached INT8 file (source, faces, settings, seconds)."""
    return json.loads(sidecar_path(model).read_text())


def quantize(fp32_onnx: Path, output: Path, crops: np.ndarray, settings: Int8Settings, *,
             batch: int = 1, calibration_cache: Path | None = None) -> Path:
    """Statically quantize ``fp32_onnx`` into ``output`` with ranges measured on ``crops``
    ((K, 3, S, S) float32 in [-1, 1], fed ``batch`` at a time). Written atomically. ``calibration_cache``: onnxruntime's JSON file of
    measured ranges (reused when present: lets a sweep try formats without recalibrating)."""
    try:
        import onnx
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)
    except ImportError as err:  # pragma: no cover - hard dependencies
        raise BackendUnavailable("INT8 quantization needs onnx and onnxruntime: pip install onnx "
                                 "onnxruntime") from err
    from engines.precision import fp32_node_names

    proto = onnx.load(str(fp32_onnx), load_external_data=False)
    keep = fp32_node_names(proto, extra_patterns=settings.exclude_patterns)
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    del proto
    batches = [crops[i:i + batch] for i in range(0, len(crops), batch)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x}

        def rewind(self) -> None:
            self._it = iter(batches)

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + f".{os.getpid()}.tmp")
    try:
        quantize_static(str(fp32_onnx), str(tmp), _Reader(),
                        quant_format=QuantFormat.QDQ if settings.quant_format == "qdq" else QuantFormat.QOperator,
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=sorted(keep & set(convs)),
                        activation_type=types[settings.activation_type],
                        weight_type=types[settings.weight_type],
                        # (not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops the chunks it
                        # "clears" instead of folding them in -> "No data is collected")
                        calibrate_method=methods[settings.calibration],
                        calibration_cache_path=None if calibration_cache is None else str(calibration_cache))
        if settings.activation_reduce_range:
            narrow_activations(tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        for leftover in output.parent.glob(tmp.name + "*"):
            leftover.unlink(missing_ok=True)
    return output


def narrow_activations(model_path: Path) -> int:
    """Rescale every uint8 activation QuantizeLinear of a QDQ file to 7 bits (0..127) in place:
    scale * 255/127, zero point * 127/255 - the same real range in half the steps. u8 x s8 pair sums
    in AVX2's ``vpmaddubsw`` then stay below 2**15 (127 * 127 * 2 = 32258): no saturation without
    VNNI. (onnxruntime's ``reduce_range`` narrows only weights; its TensorQuantOverrides refuse it
    for activations.) Each Conv's int32 bias is requantized to the new input scale x weight scale,
    which the fused QLinearConv assumes. Returns the number of rescaled activation tensors."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    arr = lambda name: numpy_helper.to_array(inits[name])  # noqa: E731

    def put(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(value, name))

    narrowed: set[str] = set()
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or node.input[1] in narrowed:
            continue
        scale, zero = node.input[1], node.input[2]
        if scale not in inits or zero not in inits or inits[zero].data_type != onnx.TensorProto.UINT8:
            continue
        put(scale, (arr(scale).astype(np.float32) * np.float32(255.0 / 127.0)).astype(np.float32))
        put(zero, np.round(arr(zero).astype(np.float64) * (127.0 / 255.0)).astype(np.uint8))
        narrowed.add(scale)
    producer = {out: n for n in graph.node for out in n.output}
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        x_dq, w_dq, b_dq = (producer.get(name) for name in node.input[:3])
        if not (x_dq and w_dq and b_dq) or x_dq.input[1] not in narrowed or b_dq.op_type != "DequantizeLinear":
            continue
        q_name, s_name = b_dq.input[0], b_dq.input[1]
        new_scale = (arr(x_dq.input[1]).astype(np.float64) * arr(w_dq.input[1]).astype(np.float64))
        old = arr(q_name).astype(np.float64) * arr(s_name).astype(np.float64)
        put(q_name, np.clip(np.round(old / new_scale), -2**31, 2**31 - 1).astype(np.int32))
        put(s_name, new_scale.astype(np.float32))
    onnx.save(model, str(model_path))
    return len(narrowed)


def ensure_int8(fp32_onnx: Path, first_batch: np.ndarray, settings: Int8Settings = DEFAULT_SETTINGS, *,
                cache_dir: Path | None = None, source: str = "", log=None) -> tuple[Path, bool]:
    """The cached INT8 file for ``fp32_onnx`` and ``settings``; calibrated on ``first_batch`` (see
    :func:`calibration_crops`) and written, with its sidecar, only when missing.
    Returns (path, calibrated_now)."""
    target = int8_path(Path(fp32_onnx), settings, cache_dir=cache_dir)
    if target.is_file() and target.stat().st_size > 0 and sidecar_path(target).is_file():
        if log is not None:
            log(f"int8: reusing {target.name} (calibrated on {read_sidecar(target).get('source')!r})")
        return target, False
    crops, flipped = calibration_crops(first_batch, settings.calibration_faces)
    t0 = time.perf_counter()
    quantize(Path(fp32_onnx), target, crops, settings)
    seconds = time.perf_counter() - t0
    record = {"source": source or "first restore() call of an unnamed run",
              "faces": int(crops.shape[0]), "flipped_copies": flipped,
              "image_size": int(crops.shape[-1]), "settings": asdict(settings), "format": INT8_FORMAT,
              "fp32_onnx": str(fp32_onnx), "seconds": round(seconds, 2),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = sidecar_path(target).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, sidecar_path(target))
    if log is not None:
        log(f"int8: calibrated on {crops.shape[0]} face(s) ({flipped} flipped) in {seconds:.1f} s "
            f"-> {target.name}")
    return target, True
