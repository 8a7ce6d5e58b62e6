"""The contract of an exported image-to-image graph, shared by the GFP-GAN and upsampler exports: the
tensor names every runtime binds (``input``/``output``), the checks a graph must pass (rank 4, 3
channels, which dimensions stay symbolic, no grouped Conv that would freeze the batch), the output shape
the exporter cannot infer, and the ``vidrestore.*`` metadata (also as a suffix message appended to an
exported file, which protobuf readers merge).
"""
from __future__ import annotations

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def output_dims(proto, *, declared: int | None = None) -> list:
    """The output's dims as (value or symbol) - or, with ``declared``, what they should be: the input's
    batch symbol, 3, S, S."""
    if declared is not None:
        batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
        return [batch.dim_param or batch.dim_value, 3, declared, declared]
    return [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]


def declare_output_shape(proto, side: int) -> None:
    """The tracer leaves the output's H and W symbolic (they come out of Resize nodes); the model maps
    (N, 3, S, S) to (N, 3, S, S), so declare that, with the input's batch symbol."""
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return
    dims[0].CopyFrom(batch)
    for dim, value in zip(dims[1:], (3, side, side)):
        dim.Clear()
        dim.dim_value = value


def set_metadata(proto, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in meta.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def metadata_suffix(meta: dict[str, str]) -> bytes:
    """A serialised ModelProto holding only ``metadata_props``: protobuf parsers merge concatenated
    messages field by field and append repeated fields, so ``model bytes + suffix`` reads as the model
    with these entries added (onnx, ONNX Runtime and TensorRT's parser all use protobuf)."""
    import onnx

    extra = onnx.ModelProto()
    set_metadata(extra, meta)
    return extra.SerializeToString()


def check_graph(proto, *, dynamic_batch: bool = True) -> list[str]:
    """Invariants the backends rely on; returns human-readable problems (empty when fine).

    One float input ``input`` and one output ``output``, both rank 4 with 3 channels; a symbolic batch
    dimension when ``dynamic_batch``; no grouped Conv (``groups = batch`` would freeze the batch).
    """
    problems = io_problems(proto, dynamic={0: "batch"} if dynamic_batch else {}, layout="(batch, 3, S, S)")
    for node in proto.graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group != 1:
                problems.append(f"grouped Conv {node.name} (group={group}) would fix the batch size")
    return problems


def io_problems(proto, *, dynamic: dict[int, str], layout: str) -> list[str]:
    """The image-to-image contract of an exported graph (GFP-GAN's and the upsamplers'): exactly one
    input ``input`` and one output ``output`` (initialisers aside), rank 4 with 3 channels, and the
    dimensions in ``dynamic`` (index -> name) symbolic on both."""
    problems = []
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    for kind, values, name in (("input", inputs, INPUT_NAME), ("output", graph.output, OUTPUT_NAME)):
        if [v.name for v in values] != [name]:
            problems.append(f"graph {kind}s are {[v.name for v in values]}, expected [{name!r}]")
            continue
        dims = values[0].type.tensor_type.shape.dim
        if len(dims) != 4 or dims[1].dim_value != 3:
            problems.append(f"{name} must be {layout}, got rank {len(dims)}")
            continue
        fixed = [f"fixed {what} {dims[i].dim_value}" for i, what in dynamic.items() if not dims[i].dim_param]
        if fixed:
            problems.append(f"{name} has a {', '.join(fixed)}: expected a dynamic {', '.join(dynamic.values())}")
    return problems
