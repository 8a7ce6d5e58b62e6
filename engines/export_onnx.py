"""Export GFP-GAN to ONNX: input ``input`` (batch, 3, S, S) float32 in [-1, 1], output ``output`` of
the same shape, batch dimension dynamic.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)`` with ``dynamic_axes``).
Measured against the dynamo/onnxscript exporter on torch 2.14 it gives the same clean graph (one shared
Conv per modulated conv, no ``groups=batch``), exports the 86 M-parameter model in seconds instead of
tens of seconds, honours opset 17 (the dynamo exporter only emits >= 18 and its down-conversion fails
on Reduce* nodes) and names every node after its module path
(``/stylegan_decoder/style_convs.3/modulated_conv/MatMul``), which the FP16 block list and the
TensorRT precision constraints use. ``exporter="dynamo"`` is kept as a fallback for torch versions
without the TorchScript exporter.

``python -m engines.export_onnx --weights NAME|PATH --output model.onnx [--opset 17] [--fp16]``
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import io
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

from vidrestore.errors import VidRestoreError

from .onnx_contract import (INPUT_NAME, OUTPUT_NAME, check_graph, declare_output_shape, metadata_suffix,
                            output_dims, set_metadata)

BATCH_DIM = "batch"
DEFAULT_OPSET = 17
EXPORT_FORMAT = 1  # bump when the exported graph changes, so cached exports are redone
EXTERNAL_DATA_THRESHOLD = 1 << 31  # protobuf's 2 GiB limit: bigger models keep weights beside the file

Exporter = Literal["torchscript", "dynamo"]


class ExportError(VidRestoreError):
    """The model could not be exported, or the exported graph breaks an invariant the engines rely on."""


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _load_model(model_or_path: nn.Module | str | os.PathLike[str]) -> nn.Module:
    if isinstance(model_or_path, nn.Module):
        return model_or_path
    from vidrestore.models import load_gfpgan

    path = Path(model_or_path)
    if not path.is_file():  # a release name (or a missing file, which resolve_weights reports)
        from vidrestore.models.weights import resolve_weights

        path = resolve_weights(str(model_or_path))
    return load_gfpgan(path, device="cpu", dtype=torch.float32)


class _ImageToImage(nn.Module):
    """``forward(input) -> output`` only: the TorchScript tracer passes keyword-only options with
    defaults (``return_rgbs=False`` ...) positionally, so the model is called through this wrapper. The
    output is reshaped to (batch, 3, S, S) - a no-op at run time that lets the exporter declare the
    output's shape itself (it leaves H and W symbolic after the Resize nodes otherwise), so the exported
    bytes need no second serialisation."""

    def __init__(self, model: nn.Module, side: int) -> None:
        super().__init__()
        self.model = model
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.reshape(x.shape[0], out.shape[1], self.side, self.side) if out.ndim == 4 else out


def _image_size(model: nn.Module, size: int | None) -> int:
    if size is not None:
        return size
    for attr in ("out_size", "size"):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    return 512


def export_onnx(model_or_path: nn.Module | str | os.PathLike[str], output: str | os.PathLike[str], *,
                opset: int = DEFAULT_OPSET, fp16: bool = False, dynamic_batch: bool = True,
                size: int | None = None, exporter: Exporter = "torchscript",
                external_data: bool | None = None) -> Path:
    """Export a GFP-GAN model (module, checkpoint path or release name) to ``output``; returns the path.

    ``fp16``: convert to FP16 with the demodulation kept in FP32 and FP32 inputs/outputs (see
    :mod:`engines.precision`). ``size``: image side (default: the model's ``out_size``, else 512).
    ``external_data``: keep weights in ``<output>.data`` (default: only when the model exceeds 2 GiB).
    The graph is validated with ``onnx.checker`` and :func:`check_graph` before returning.
    """
    import onnx

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = _load_model(model_or_path).eval()
    param = next(model.parameters(), None)
    if param is not None and (param.dtype != torch.float32 or param.device.type != "cpu"):
        model = copy.deepcopy(model).float().cpu()  # never move the caller's model
    side = _image_size(model, size)
    # The TorchScript tracer runs the network once on this example: an EMPTY batch (0 faces) records the
    # same graph without the 512 px convolutions' work - the trace's CPU time falls from ~19 s to ~7 s
    # (the whole export from ~23 s to ~11 s of CPU, full-size model; benchmarks/startup.py). With the
    # demodulation sums as constants (433 -> 349 MB) and no temporary file, ensure_onnx takes 4.7-5.9 s
    # instead of 8.3-9.5 s on 2 quiet cores (hash, load, trace, check, write). The batch
    # stays symbolic (dynamic_axes; the model takes the batch from x.shape[0], never from -1); outputs
    # equal a batch-2 trace's at batch 3 (max-abs 0.0) and tests/engines check batches 1 and 3 vs torch.
    # The dynamo exporter's Dim needs a batch >= 1.
    example = torch.zeros(0 if exporter == "torchscript" and dynamic_batch else 1, 3, side, side)
    n_bytes = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * 4 for b in model.buffers())
    large = n_bytes >= EXTERNAL_DATA_THRESHOLD if external_data is None else external_data

    for module in model.modules():   # per-weight sums computed now: constants of the traced graph
        if callable(getattr(module, "weight_sq", None)):
            module.weight_sq()
    wrapped = _ImageToImage(model, side)
    try:
        if large:   # the exporter writes the weights beside a file once the model passes 2 GiB
            with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as tmp:
                raw = Path(tmp) / "model.onnx"
                _run_exporter(wrapped, example, raw, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
                proto = onnx.load(str(raw), load_external_data=True)
            data = None
        else:       # in memory: no temporary file written and read back (350 MB for GFP-GAN)
            buffer = io.BytesIO()
            _run_exporter(wrapped, example, buffer, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
            data = buffer.getvalue()
            del buffer
            proto = onnx.load_from_string(data)
    except VidRestoreError:
        raise
    except Exception as err:  # the exporters raise many unrelated types
        raise ExportError(f"ONNX export failed ({exporter} exporter): {err}", path=output) from err
    if output_dims(proto) != output_dims(proto, declared=side):   # the wrapper's reshape normally did it
        declare_output_shape(proto, side)
        data = None
    meta = {"vidrestore.precision": "fp16" if fp16 else "fp32", "vidrestore.exporter": exporter,
            "vidrestore.image_size": str(side)}
    if not isinstance(model_or_path, nn.Module):
        meta["vidrestore.weights"] = str(model_or_path)
    if fp16:
        from .precision import convert_to_fp16

        proto = convert_to_fp16(proto)
        data = None
    problems = check_graph(proto, dynamic_batch=dynamic_batch)
    if problems:
        raise ExportError("exported graph is not usable: " + "; ".join(problems), path=output)
    if large:
        set_metadata(proto, meta)
        _save(proto, output, external_data=True)
        _check(str(output), output)
    elif data is None:
        set_metadata(proto, meta)
        data = proto.SerializeToString()
        del proto
        _check(data, output)
        _write_atomic(output, data)
    else:   # the exporter's bytes as they are (no second 350 MB serialisation), metadata appended
        del proto
        _check(data, output)
        _write_atomic(output, data, metadata_suffix(meta))
    return output


def _run_exporter(model: nn.Module, example: torch.Tensor, path: Path | io.BytesIO, *, opset: int,
                  dynamic_batch: bool, exporter: Exporter) -> None:
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation and tracer warnings
        if exporter == "torchscript":
            axes = {INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}} if dynamic_batch else None
            torch.onnx.export(model, (example,), path if isinstance(path, io.BytesIO) else str(path),
                              input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
        elif exporter == "dynamo":
            shapes = None
            if dynamic_batch:
                shapes = ({0: torch.export.Dim(BATCH_DIM, min=1, max=4096)},)
            program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                                        opset_version=max(opset, 18), dynamo=True, verbose=False)
            if isinstance(path, io.BytesIO):
                path.write(program.model_proto.SerializeToString())
            else:
                program.save(str(path))
        else:
            raise ValueError(f"unknown exporter {exporter!r}")


def _check(model: str | bytes, output: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as err:
        output.unlink(missing_ok=True)
        raise ExportError(f"onnx.checker rejected the exported model: {err}", path=output) from err


def _write_atomic(output: Path, *parts: bytes) -> None:
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "wb") as f:
        for part in parts:
            f.write(part)
    os.replace(tmp, output)


def _save(proto, output: Path, *, external_data: bool) -> None:
    import onnx

    tmp = output.with_name(output.name + ".tmp")
    data_name = output.name + ".data"
    if external_data:
        onnx.save_model(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        onnx.save_model(proto, str(tmp))
    os.replace(tmp, output)


def weights_digest(path: Path, folder: Path, *, on_miss: Callable[[], object] | None = None) -> str:
    """The first 16 hex digits of the checkpoint's SHA-256, remembered in ``folder`` under its resolved
    path, size and mtime (``.digest-<key>``): a warm start skips re-hashing 350 MB (about 1 s on 2
    cores). A file rewritten in place gets a new mtime, hence a new key and a fresh hash. ``on_miss``
    is called before hashing (a first sight of these weights: an export is likely to follow)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    memo = folder / f".digest-{key}"
    try:
        text = memo.read_text().strip()
        if len(text) == 16:
            return text
    except OSError:
        pass
    if on_miss is not None:
        on_miss()
    digest = sha256_file(path)[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(memo.name + f".{os.getpid()}.tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, memo)
    except OSError:   # a read-only cache only costs the hash next time
        pass
    return digest


def ensure_onnx(weights_path: str | os.PathLike[str], *, fp16: bool = False,
                cache_dir: str | os.PathLike[str] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX file for a checkpoint (path or release name), exported once into ``cache_dir`` (default:
    :func:`engines.engine_cache.default_cache_dir`) under a name keyed by the checkpoint's SHA-256,
    precision and opset. Reused when present; written atomically, so a crash leaves no half file."""
    from .engine_cache import default_cache_dir

    weights_path = Path(weights_path)
    if not weights_path.is_file():  # a release name, or a missing file resolve_weights reports
        from vidrestore.models.weights import resolve_weights

        weights_path = resolve_weights(str(weights_path))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # the onnx package takes ~0.6 s to import (ml_dtypes' extension) and only an export needs it: it is
    # imported on a thread of its own, started on a first sight of the weights (before hashing) or
    # once the export is known to be missing, so it overlaps the hash and the checkpoint load where
    # those leave the GIL free, instead of following them on the restore thread
    importer = threading.Thread(target=_import_quietly, args=("onnx",), name="import-onnx", daemon=True)
    try:
        digest = weights_digest(weights_path, folder / "onnx", on_miss=importer.start)
        target = folder / "onnx" / f"gfpgan-{digest}-{'fp16' if fp16 else 'fp32'}-op{opset}-v{EXPORT_FORMAT}.onnx"
        if target.is_file() and target.stat().st_size > 0:
            return target
        if importer.ident is None:       # not started by the hash
            importer.start()
        from vidrestore.models import load_gfpgan

        model = load_gfpgan(weights_path, device="cpu", dtype=torch.float32)
        return export_onnx(model, target, opset=opset, fp16=fp16)
    finally:
        if importer.ident is not None:
            importer.join()


def _import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the exporter's own import reports a missing package
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.export_onnx", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="release name (GFPGANv1.4) or path to a .pth")
    parser.add_argument("--output", required=True, type=Path, help="where to write the .onnx file")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--fp16", action="store_true", help="FP16 weights, demodulation kept in FP32")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch dimension to 1")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    args = parser.parse_args(argv)
    try:
        path = export_onnx(args.weights, args.output, opset=args.opset, fp16=args.fp16,
                           dynamic_batch=not args.static_batch, exporter=args.exporter)
    except VidRestoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 1)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    raise SystemExit(main())
