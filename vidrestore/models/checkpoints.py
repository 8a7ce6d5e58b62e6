"""Reading and writing GFP-GAN checkpoints in the official format ``{"params_ema": state_dict}``.

The architecture is inferred from the state dict (output size from the noise buffers, widths from
weight shapes), so training exports at 64/128 px load with the same call as the 512 px releases.
Every failure is a :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..errors import CheckpointError
from .gfpgan import GFPGAN

STATE_KEYS = ("params_ema", "params")
_PROBE_KEY = "conv_body_first.weight"
_NOISE_PREFIX = "stylegan_decoder.noises.noise"


def read_state_dict(path: Path, *, any_flat: bool = False, kind: str = "GFP-GAN checkpoint") -> dict[str, Tensor]:
    """The ``params_ema`` (else ``params``) state dict of a checkpoint, or the file itself when it is a
    bare state dict (a GFP-GAN one; with ``any_flat`` any mapping of tensors). Every failure is a
    CheckpointError naming the file and what is wrong (``kind`` names what was expected). Shared by
    ``load_gfpgan`` and training's pretrained weights (``training.pretrained.read_state``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint file not found", path=path)
    if not path.is_file():
        raise CheckpointError("checkpoint path is not a file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError("checkpoint file is empty", path=path)
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile,
            OSError, UnicodeDecodeError, IndexError) as exc:   # IndexError: text read as pickle opcodes
        text = str(exc)
        if "Unsupported global" in text:
            raise CheckpointError(
                "not a plain weights file: it holds Python objects that a safe load "
                "(torch.load(weights_only=True)) refuses to unpickle", path=path) from exc
        if head.startswith(b"PK\x03\x04") or (head[:2] == b"\x80\x02" and isinstance(exc, EOFError)):
            detail = "" if "Weights only" in text else f": {_short(exc)}"
            raise CheckpointError(
                f"checkpoint is truncated or corrupt ({size} bytes; an interrupted download?){detail}",
                path=path) from exc
        raise CheckpointError(f"not a PyTorch checkpoint (the file starts with {head!r})",
                              path=path) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"not a {kind}: holds a {type(obj).__name__}, "
                              f"expected a dict with 'params_ema' or 'params'", path=path)
    for key in STATE_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            state = obj[key]
            break
    else:
        if _PROBE_KEY in obj or (any_flat and obj and all(isinstance(v, Tensor) for v in obj.values())):
            state = obj  # a bare state dict
        else:
            keys = ", ".join(repr(k) for k in list(obj)[:5]) or "none"
            raise CheckpointError(f"not a {kind}: no 'params_ema' or 'params' entry "
                                  f"(top-level keys: {keys})", path=path)
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"not a {kind}: non-tensor entries such as {bad[0]!r}",
                              path=path)
    return dict(state)


_read_state_dict = read_state_dict      # the former private name


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def infer_config(state: Mapping[str, Tensor]) -> dict[str, int]:
    """Constructor arguments of :class:`GFPGAN` that produce this state dict's shapes.

    Raises KeyError/ValueError when the keys needed for inference are missing or inconsistent.
    """
    noise = sorted(int(k[len(_NOISE_PREFIX):]) for k in state if k.startswith(_NOISE_PREFIX))
    if not noise:
        raise KeyError(f"{_NOISE_PREFIX}*")
    out_size = int(state[f"{_NOISE_PREFIX}{noise[-1]}"].shape[-1])
    if 2 ** int(math.log2(out_size)) != out_size or out_size < 8:
        raise ValueError(f"noise buffers imply an output size of {out_size}")
    num_style_feat = int(state["stylegan_decoder.style_conv1.modulated_conv.modulation.weight"].shape[1])
    num_mlp = sum(1 for k in state if k.startswith("stylegan_decoder.style_mlp.") and k.endswith(".weight"))
    # narrow scales every width: the 4x4 constant input is 512 * narrow channels wide
    narrow = int(state["stylegan_decoder.constant_input.weight"].shape[1]) / 512
    channel_multiplier = 2
    if out_size >= 64:  # decoder width at 64 px is 256 * channel_multiplier * narrow (convs 6, 7)
        w64 = int(state["stylegan_decoder.style_convs.6.bias"].shape[1])
        channel_multiplier = max(1, round(w64 / (256 * narrow)))
    cfg: dict = {"out_size": out_size, "num_style_feat": num_style_feat,
                 "channel_multiplier": channel_multiplier, "num_mlp": num_mlp}
    if narrow != 1.0:
        cfg["narrow"] = narrow
    return cfg


def _mismatch_message(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
    return "; ".join(parts)


class _SkipRandomInit(TorchFunctionMode):
    """While building a module whose every parameter and buffer a ``strict=True`` state dict is about to
    overwrite: random initialisers leave the memory as it is and ``torch.randn`` allocates without
    filling - 0.4 s of a 350 MB model's cold start on 2 cores for values nobody reads. A torch
    function mode is per thread: other threads and later constructions initialise as usual."""

    _SKIP = frozenset({torch.Tensor.uniform_, torch.Tensor.normal_, nn.init.uniform_, nn.init.normal_,
                       nn.init.kaiming_uniform_, nn.init.kaiming_normal_, nn.init.xavier_uniform_,
                       nn.init.xavier_normal_, nn.init.trunc_normal_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._SKIP:
            return args[0] if args else kwargs["tensor"]
        if func is torch.randn:
            kwargs.pop("generator", None)
            return torch.empty(*args, **kwargs)
        return func(*args, **kwargs)


def load_gfpgan(path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> GFPGAN:
    """Load a GFP-GAN (clean architecture) checkpoint: eval mode, gradients off, on device/dtype.

    Reads ``params_ema`` (else ``params``) with ``torch.load(weights_only=True)``; the architecture
    (out_size, widths, style size) comes from the state dict. Raises CheckpointError naming the file
    when it is missing, not a checkpoint, truncated, or of another architecture.
    """
    path = Path(path)
    state = read_state_dict(path)
    try:
        config = infer_config(state)
    except (KeyError, ValueError, IndexError) as exc:
        n = len(state)
        raise CheckpointError(
            f"not a GFP-GAN (v1 clean) checkpoint: cannot infer the architecture from its {n} keys "
            f"(needs {exc}; first keys: {', '.join(list(state)[:3])})", path=path) from exc
    with _SkipRandomInit():      # every value comes from the file (strict=True below)
        model = GFPGAN(**config)
    problem = _mismatch_message(model, state)
    if problem is not None:
        raise CheckpointError(
            f"wrong architecture for GFPGANv1Clean(out_size={config['out_size']}, "
            f"channel_multiplier={config['channel_multiplier']}): {problem}", path=path)
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device=device, dtype=dtype)


def save_gfpgan(model_or_state_dict: nn.Module | Mapping[str, Tensor], path: str | os.PathLike[str], *,
                key: str = "params_ema") -> Path:
    """Write ``{key: state_dict}`` (the official format, CPU tensors) atomically: temp file + rename."""
    if key not in STATE_KEYS:
        raise ValueError(f"key must be one of {STATE_KEYS}, got {key!r}")
    state = (model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module)
             else model_or_state_dict)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError("folder does not exist", path=path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({key: state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint_state(path: str | os.PathLike[str], *, kind: str) -> dict[str, Tensor]:
    """The state dict of another network's checkpoint in the authors' format (``params_ema``, else
    ``params``), with the errors of :func:`load_gfpgan` naming ``kind`` instead of GFP-GAN."""
    path = Path(path)
    try:
        return _read_state_dict(path)
    except CheckpointError as err:
        raise CheckpointError(err.message.replace("GFP-GAN", kind), path=path) from err
