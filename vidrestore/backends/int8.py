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

What is quantized: the ``Conv`` nodes (their weights per output channel as int8, their inputs per
tensor as uint8: "u8s8", onnxruntime's fast CPU kernels), except the StyleGAN2 decoder's layers below
64 px (:attr:`Int8Settings.fp32_decoder_below`); the modulation ``Gemm``, the demodulation
(``engines.precision.fp32_node_names``: a sum of squares under a square root), noise, activations and
resizes stay FP32. Settings were chosen by measurement (``python -m benchmarks.int8_quality``; JSON in
``benchmarks/results/int8_quality-*.json``): 512 px, realistic random weights, 2 threads on the 2-core
AVX2 (no VNNI) machine, calibrated on 2 clip faces + mirrored copies, PSNR vs FP32 on 4 held-out real
faces (min over faces), seconds per face at batch 1 (same run: onnxruntime FP32 2.47 s, torch 3.26 s):

    u8s8, decoder below 64 px FP32  = DEFAULT               38.0 dB   1.46 s
    u8s8, decoder below 32 px FP32                          35.8 dB   1.50 s
    u8s8, decoder below 128 px FP32                         39.0 dB   1.62 s
    u8s8, every Conv INT8 (onnxruntime's usual choice)      34.55 dB  1.41 s
    u8u8 (uint8 weights: no vpmaddubsw saturation)          35.75 dB  2.32 s
    u7s8 (7-bit activations, no saturation; commit b388b30) 31.1 dB
    earlier sweep, every Conv INT8 (loaded machine, s/face relative to u8s8 only):
    percentile calibration 34.9 dB; reduce_range (7-bit weights) 30.2 dB, 1.2x slower; per-tensor
    weights 33.85 dB; QOperator 35.07 dB, 1.7x slower; s8s8 35.2 dB, 1.4x slower.

Where the error comes from (``benchmarks/results/int8_sensitivity-*.txt``): keeping ONE group of
layers FP32 at a time, the 4-32 px decoder layers (512 channels, 3% of the FLOPs) are worth +3.5 dB
- their error is amplified by every layer above them - while the 64-512 px decoder groups give
+0.3 to +0.9 dB each and the U-Net parts < 0.3 dB. Saturation of AVX2's ``vpmaddubsw`` (no VNNI) is
not the problem: 7-bit activations remove it and lose 3.5 dB of resolution. Calibrating on one face
(+ its mirror) instead of two changes < 0.2 dB (38.0-38.5 dB on the held-out faces).
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

INT8_FORMAT = 2  # bump when the quantization code changes, so cached INT8 files are redone


@dataclass(frozen=True, kw_only=True)
class Int8Settings:
    """Everything that decides the INT8 graph (all of it goes into the cache key)."""

    quant_format: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = True
    reduce_range: bool = False        # 7-bit weights (ORT's AVX2 advice): measured -4.5 dB, slower
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"    # u8s8: onnxruntime's fast CPU kernels
    calibration: Literal["minmax", "percentile", "entropy"] = "minmax"
    calibration_faces: int = 8        # crops taken from the first restore() call
    exclude_patterns: tuple[str, ...] = ()   # Conv nodes whose name contains one of these stay FP32
    fp32_decoder_below: int = 64      # StyleGAN2 decoder layers under this resolution stay FP32 (0: none)

    def __post_init__(self) -> None:
        if self.calibration_faces < 1:
            raise ConfigError("int8 calibration needs at least one face")
        if self.quant_format not in ("qdq", "qoperator"):
            raise ConfigError(f"unknown quantization format {self.quant_format!r}")
        if self.calibration not in ("minmax", "percentile", "entropy"):
            raise ConfigError(f"unknown calibration method {self.calibration!r}")
        if self.fp32_decoder_below < 0:
            raise ConfigError("fp32_decoder_below must be >= 0")

    def key(self) -> str:
        """Short stable hash of the settings (and :data:`INT8_FORMAT`) for cache file names."""
        text = json.dumps({**asdict(self), "format": INT8_FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


DEFAULT_SETTINGS = Int8Settings()


def decoder_patterns(below: int) -> tuple[str, ...]:
    """Node-name patterns of the StyleGAN2 decoder layers whose output is smaller than ``below``
    pixels: ``style_conv1``/``to_rgb1`` at 4 px, then per resolution 2**(k+3) ``style_convs.{2k}``,
    ``style_convs.{2k+1}`` and ``to_rgbs.{k}`` (the names :mod:`engines.export_onnx` gives them; the
    trailing ``/`` keeps ``style_convs.1/`` from matching ``style_convs.10/``)."""
    if below <= 4:
        return ()
    found = ["stylegan_decoder/style_conv1/", "stylegan_decoder/to_rgb1/"]
    k, res = 0, 8
    while res < below:
        found += [f"stylegan_decoder/style_convs.{2 * k}/", f"stylegan_decoder/style_convs.{2 * k + 1}/",
                  f"stylegan_decoder/to_rgbs.{k}/"]
        k, res = k + 1, res * 2
    return tuple(found)


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
    keep = fp32_node_names(proto, extra_patterns=settings.exclude_patterns
                           + decoder_patterns(settings.fp32_decoder_below))
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
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        for leftover in output.parent.glob(tmp.name + "*"):
            leftover.unlink(missing_ok=True)
    return output


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
