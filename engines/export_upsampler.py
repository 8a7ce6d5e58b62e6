"""Export a Real-ESRGAN upsampler (RRDBNet / SRVGGNetCompact) to ONNX with a dynamic batch AND a
dynamic spatial size: input ``input`` (batch, 3, height, width) float32 RGB in [0, 1], output
``output`` (batch, 3, scale*height, scale*width), not clamped.

Same exporter as :mod:`engines.export_onnx` (TorchScript, opset 17, ``dynamo=False``); the example
input is 2 x 3 x 24 x 32 so nothing specialises to batch 1 or to a square. ``fp16=True`` converts
with :func:`engines.precision.convert_to_fp16` (FP32 inputs/outputs; these networks have no
normalisation island, so every node runs FP16): the file a strongly typed TensorRT FP16 engine is
built from (:mod:`engines.upsampler_trt`). RRDBNet x2 needs even sizes, x1 multiples of 4.

``python -m engines.export_upsampler --weights NAME|PATH --output esrgan.onnx [--fp16]``
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from vidrestore.errors import VidRestoreError

from .export_onnx import DEFAULT_OPSET, ExportError, _save, sha256_file
from .onnx_contract import INPUT_NAME, OUTPUT_NAME, io_problems, set_metadata

EXPORT_FORMAT = 1   # bump when the exported graph changes, so cached exports are redone
DIMS = ("batch", "height", "width")


def export_upsampler(model: nn.Module, output: str | os.PathLike[str], *, fp16: bool = False,
                     opset: int = DEFAULT_OPSET, weights_note: str = "") -> Path:
    """Export ``model`` (a loaded upsampler) to ``output`` (written atomically); returns the path."""
    import onnx

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    scale = int(model.scale)
    align = int(getattr(model, "unshuffle", 1))
    example = torch.rand(2, 3, 12 * align, 16 * align)
    axes = {INPUT_NAME: {0: DIMS[0], 2: DIMS[1], 3: DIMS[2]},
            OUTPUT_NAME: {0: DIMS[0], 2: f"{DIMS[1]}_x{scale}", 3: f"{DIMS[2]}_x{scale}"}}
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(raw), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset,
                                  do_constant_folding=True, dynamo=False)
        except Exception as err:  # the exporter raises many unrelated types
            raise ExportError(f"ONNX export of the upsampler failed: {err}", path=output) from err
        proto = onnx.load(str(raw))
    if fp16:
        from .precision import convert_to_fp16

        proto = convert_to_fp16(proto, block_nodes=())
    set_metadata(proto, {"vidrestore.precision": "fp16" if fp16 else "fp32", "vidrestore.kind": "upsampler",
                          "vidrestore.scale": str(scale), "vidrestore.align": str(align),
                          "vidrestore.weights": weights_note})
    problems = check_upsampler_graph(proto)
    if problems:
        raise ExportError("exported upsampler graph is not usable: " + "; ".join(problems), path=output)
    _save(proto, output, external_data=False)
    return output


def check_upsampler_graph(proto) -> list[str]:
    """Problems that would stop a dynamic-shape engine (empty when fine): names ``input``/``output``,
    rank 4 with 3 channels, symbolic batch, height and width on both."""
    return io_problems(proto, dynamic=dict(zip((0, 2, 3), DIMS)), layout="(batch, 3, H, W)")


def upsampler_meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def ensure_upsampler_onnx(weights_path: str | os.PathLike[str], *, fp16: bool = False,
                          cache_dir: str | os.PathLike[str] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The cached ONNX export of an upsampler checkpoint (exported on first use), keyed by the
    checkpoint's SHA-256, precision, opset and export format."""
    from vidrestore.models.realesrgan import load_upsampler

    from .engine_cache import default_cache_dir

    weights_path = Path(weights_path)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = sha256_file(weights_path)[:16]
    target = folder / "onnx" / f"esrgan-{digest}-{'fp16' if fp16 else 'fp32'}-op{opset}-v{EXPORT_FORMAT}.onnx"
    if target.is_file() and target.stat().st_size > 0:
        return target
    return export_upsampler(load_upsampler(weights_path), target, fp16=fp16, opset=opset,
                            weights_note=weights_path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.export_upsampler",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="RealESRGAN_x4plus, ... or a .pth path")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    try:
        from vidrestore.models.realesrgan import load_upsampler
        from vidrestore.models.weights import resolve_weights

        path = resolve_weights(args.weights)
        print(export_upsampler(load_upsampler(path), args.output, fp16=args.fp16, weights_note=path.name))
    except VidRestoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
