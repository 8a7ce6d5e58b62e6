"""ONNX Runtime's optimised graph, cached beside the model it came from.

Every session build runs ONNX Runtime's graph optimisations (constant folding, fusions, the CPU
provider's NCHWc layout transform) again: about a second of the ~3 s a 512 px GFP-GAN session takes
on 2 cores. The first build writes the optimised graph (``SessionOptions.optimized_model_filepath``)
to ``<model file name>.optimized-<key>`` beside the model; later builds open that file with graph
optimisation disabled (ONNX Runtime's recommendation for a saved optimised model), which gives the
same numbers (checked in the tests).

The key is keyed like the export itself: the model file (name - which for :func:`ensure_onnx` exports
already holds the weights' SHA-256, precision, opset and export format - size and mtime), the
optimisation level, the execution provider, ONNX Runtime's version and the CPU's vector ISA (the
NCHWc block size depends on it; an optimised graph is only valid on the kind of machine that wrote
it). Any change gives a new name, so a stale graph is never opened. CPU provider only: ONNX Runtime
does not support saving graphs optimised for the CUDA provider. Written atomically (temporary name,
then rename), so two processes or a crash never leave a half file under the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1   # bump when what is cached changes
_ISA_FLAGS = ("sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


@dataclass(frozen=True)
class GraphCacheUse:
    """How a session was opened: ``state`` is "reused" (cached graph, optimisation off), "written"
    (optimised now and saved) or "off" (not cacheable here); ``path`` the cached graph, if any."""
    state: str
    path: Path | None


def cpu_isa() -> str:
    """The vector-ISA flags that change ONNX Runtime's CPU kernels and layouts, e.g. 'avx,avx2,fma'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                return ",".join(f for f in _ISA_FLAGS if f in flags)
    except OSError:
        pass
    return platform.machine() + ":" + platform.processor()


def graph_key(model: Path, *, level: str, provider: str = "CPUExecutionProvider") -> str:
    import onnxruntime

    st = model.stat()
    text = json.dumps({"format": FORMAT, "model": model.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "level": level, "provider": provider, "ort": onnxruntime.__version__,
                       "isa": cpu_isa(), "machine": platform.machine()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_graph_path(model: Path, *, level: str) -> Path:
    # not "*.onnx" (globs for exports must not see it), never "*.ort" (ONNX Runtime's own format)
    return model.with_name(f"{model.name}.optimized-{graph_key(model, level=level)}")


def open_cached(model: Path, options, providers: list, *, log=None):
    """An InferenceSession on ``model`` (CPU provider), through the optimised-graph cache.

    ``options``: a zero-argument callable returning fresh SessionOptions with the wanted optimisation
    level. Returns ``(session, GraphCacheUse)``. A cached file ONNX Runtime cannot open is rebuilt.
    """
    import onnxruntime as ort

    opts = options()
    level = str(opts.graph_optimization_level)
    target = cached_graph_path(model, level=level)
    if target.is_file() and target.stat().st_size > 0:
        reuse = options()
        reuse.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(target), sess_options=reuse, providers=providers), \
                GraphCacheUse("reused", target)
        except Exception as err:  # noqa: BLE001 - a damaged cache file: optimise again below
            if log is not None:
                log(f"cached optimised graph {target.name} unusable ({err}); rebuilding it")
    if not os.access(target.parent, os.W_OK):   # read-only folder: run without the cache
        return ort.InferenceSession(str(model), sess_options=opts, providers=providers), GraphCacheUse("off", None)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    opts.optimized_model_filepath = str(tmp)
    try:
        session = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
        if not tmp.is_file():
            return session, GraphCacheUse("off", None)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return session, GraphCacheUse("written", target)
