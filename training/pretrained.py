"""Initial weights for training: the pretrained StyleGAN2 decoder (the generative facial prior) and, for
fine-tuning, a released GFP-GAN checkpoint.

StyleGAN2 decoder file: the authors' "clean" layout, ``{"params_ema": StyleGAN2GeneratorClean.state_dict()}``
(keys ``style_mlp.*``, ``constant_input.weight``, ``style_conv1.*``, ``to_rgb1.*``, ``style_convs.*``,
``to_rgbs.*``, ``noises.noise*``), same out_size / channel multiplier / style size as the model. Each key
maps to ``stylegan_decoder.<key>`` of the generator; all of them must be present with equal shapes.
:func:`extract_decoder` writes such a file from a released clean GFP-GAN (v1.2, v1.3, v1.4):

    python -m training.pretrained GFPGANv1.4.pth stylegan2_512_cmul2_clean.pth
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from vidrestore.errors import CheckpointError


def load_torch(path: str | Path, *, what: str, numpy: bool = False) -> object:
    """``torch.load(weights_only=True)`` of ``path`` onto the CPU (never runs pickled code); a
    missing or unreadable file is a CheckpointError naming ``what`` (e.g. "ArcFace weights").
    ``numpy``: numpy arrays are admitted too (training state's RNG, the authors' component file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found", path=path)
    try:
        with torch.serialization.safe_globals(_numpy_globals() if numpy else []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every unreadable file is a checkpoint problem
        raise CheckpointError(f"cannot read {what}: {str(exc)[:200]}", path=path) from None


def _numpy_globals() -> list:
    """What unpickling a numpy array needs, and nothing that runs code."""
    import numpy as np
    from numpy import _core  # numpy >= 2
    return [_core.multiarray._reconstruct, np.ndarray, np.dtype,
            *{type(np.dtype(t)) for t in ("f2", "f4", "f8", "i4", "i8", "u1", "u4")}]


def read_state(path: str | Path) -> dict[str, Tensor]:
    """``params_ema`` (else ``params``) of a torch checkpoint, or the file itself if it is a flat state
    dict: ``vidrestore.models.checkpoints.read_state_dict`` (its diagnostics for missing, empty,
    truncated, pickled-object and wrong-layout files)."""
    from vidrestore.models.checkpoints import read_state_dict
    return read_state_dict(Path(path), any_flat=True, kind="state-dict checkpoint")


def decoder_state_to_generator(state: Mapping[str, Tensor], prefix: str = "stylegan_decoder.") -> dict[str, Tensor]:
    """StyleGAN2GeneratorClean keys -> the generator's ``stylegan_decoder.*`` keys."""
    return {prefix + k.removeprefix("module."): v for k, v in state.items()}


def load_stylegan_decoder(generator: nn.Module, path: str | Path, *, freeze: bool = True) -> int:
    """Copy a clean StyleGAN2 checkpoint into ``generator.stylegan_decoder``; optionally freeze it (all its
    parameters stop requiring gradients, as the authors' fix_decoder). Returns the number of tensors set."""
    mapped = decoder_state_to_generator(read_state(path))
    own = {k: v for k, v in generator.state_dict().items() if k.startswith("stylegan_decoder.")}
    missing = sorted(set(own) - set(mapped))
    extra = sorted(set(mapped) - set(own))
    shapes = [k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} decoder keys missing (e.g. {missing[0].removeprefix('stylegan_decoder.')})")
        if extra:
            parts.append(f"{len(extra)} unexpected keys (e.g. {extra[0].removeprefix('stylegan_decoder.')})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: {tuple(mapped[k].shape)} vs "
                         f"{tuple(own[k].shape)}; check out_size / channel_multiplier / num_style_feat)")
        raise CheckpointError("not a matching StyleGAN2 (clean) decoder: " + "; ".join(parts), path=path)
    result = generator.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys
    if freeze:
        generator.stylegan_decoder.requires_grad_(False)
    return len(mapped)


def load_generator(generator: nn.Module, path: str | Path) -> None:
    """Fine-tuning: load a full GFP-GAN checkpoint (params_ema, else params) with strict=True."""
    state = read_state(path)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"does not match the configured generator: {str(exc)[:300]}", path=path) from None


def extract_decoder(gfpgan_path: str | Path, out_path: str | Path) -> int:
    """Write the ``stylegan_decoder.*`` tensors of a GFP-GAN checkpoint as a clean StyleGAN2 file
    ``{"params_ema": ...}`` (keys without the prefix). Returns the number of tensors."""
    state = read_state(gfpgan_path)
    dec = {k.removeprefix("stylegan_decoder."): v for k, v in state.items() if k.startswith("stylegan_decoder.")}
    if not dec:
        raise CheckpointError("no stylegan_decoder.* keys: not a GFP-GAN (clean) checkpoint", path=gfpgan_path)
    torch.save({"params_ema": dec}, out_path)
    return len(dec)


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m training.pretrained",
                                 description="Extract the StyleGAN2 decoder of a clean GFP-GAN checkpoint.")
    ap.add_argument("gfpgan", help="released GFP-GAN (clean) .pth, e.g. GFPGANv1.4.pth")
    ap.add_argument("output", help="StyleGAN2 clean decoder file to write (model.decoder_path)")
    args = ap.parse_args(argv)
    n = extract_decoder(args.gfpgan, args.output)
    print(f"wrote {n} decoder tensors to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
