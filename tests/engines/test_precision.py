"""Which nodes stay FP32 in the FP16 engine: picked from the real exported GFP-GAN graph."""
from __future__ import annotations

from collections import Counter

import onnx
import pytest

from engines.precision import (convert_to_fp16, fold_cast_round_trips, fp32_node_names, node_precisions,
                               topological_sort)


@pytest.fixture
def model(small_gfpgan_64):
    return small_gfpgan_64


@pytest.fixture(scope="module")
def graph(small_gfpgan_onnx):
    return onnx.load(str(small_gfpgan_onnx))


def demodulated_convs(model) -> list[str]:
    return [name for name, m in model.named_modules()
            if type(m).__name__ == "ModulatedConv2d" and m.demodulate]


def test_fp32_island_is_exactly_the_demodulation(model, graph):
    picked = fp32_node_names(graph)
    nodes = {n.name: n for n in graph.graph.node}
    demod = demodulated_convs(model)
    ops = Counter(nodes[name].op_type for name in picked)
    # one rsqrt (Sqrt + Div 1/x), one eps Add and one MatMul (s^2 @ sum W^2) per demodulated conv
    assert ops["Sqrt"] == ops["MatMul"] == ops["Add"] == ops["Div"] == len(demod) > 0
    assert not {"Conv", "Gemm", "Resize", "LeakyRelu"} & set(ops)
    # every picked node (except shared constants) sits inside a demodulated conv's module scope
    scoped = {name for name in picked if nodes[name].op_type != "Constant"}
    for name in scoped:
        assert "/modulated_conv/" in name, name
        scope = name.split("/modulated_conv/", 1)[0].removeprefix("/model/").replace("/", ".")
        assert f"{scope}.modulated_conv" in demod, name
    assert len({name.split("/modulated_conv/")[0] for name in scoped}) == len(demod)
    # no ToRGB (demodulate=False) node is picked
    assert not [name for name in picked if "to_rgb" in name]


def test_no_fp32_nodes_without_normalisation():
    import numpy as np
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], np.eye(3, dtype=np.float32).ravel())
    g = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["c"], name="conv"),
                           helper.make_node("Relu", ["c"], ["output"], name="relu")], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, 4, 4])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["b", 3, 4, 4])], [w])
    assert fp32_node_names(helper.make_model(g)) == set()
    assert fp32_node_names(helper.make_model(g), extra_patterns=["rel"]) == {"relu"}


def test_fp16_conversion_has_no_half_precision_round_trips_inside_the_island(graph):
    half = convert_to_fp16(graph)
    onnx.checker.check_model(half)
    precisions = node_precisions(half)
    for name in fp32_node_names(graph):
        if name in precisions:
            assert precisions[name] == "fp32", name
    producer = {o: n for n in half.graph.node for o in n.output}
    for node in half.graph.node:  # no Cast(fp16) feeding a Cast(fp32) of an FP32 value
        if node.op_type == "Cast" and node.attribute[0].i == onnx.TensorProto.FLOAT:
            parent = producer.get(node.input[0])
            if parent is not None and parent.op_type == "Cast" and parent.attribute[0].i == onnx.TensorProto.FLOAT16:
                grand = producer.get(parent.input[0])
                assert grand is None or grand.op_type == "Cast", (parent.name, node.name)
    assert fold_cast_round_trips(half) == 0          # idempotent: nothing left to fold
    order = [n.name for n in half.graph.node]
    topological_sort(half)
    assert [n.name for n in half.graph.node] == order  # already sorted


def test_int8_quantized_convolutions_stay_close_on_faces_outside_calibration(model, graph, tmp_path, testdata):
    from engines.precision import quantize_int8
    from tests.support.small_gfpgan import face_batch, psnr
    from vidrestore.backends.onnxruntime import OnnxRuntimeBackend

    source = tmp_path / "fp32.onnx"
    onnx.save(graph, str(source))
    faces = face_batch(testdata, 64, 4)
    out = quantize_int8(source, tmp_path / "int8.onnx", [faces[i:i + 1].numpy() for i in (1, 2)])
    quantized = onnx.load(str(out))
    ops = Counter(n.op_type for n in quantized.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    assert ops["Conv"] == Counter(n.op_type for n in graph.graph.node)["Conv"]
    assert ops["Sqrt"] == Counter(n.op_type for n in graph.graph.node)["Sqrt"]   # demodulation untouched
    held_out = faces[[0, 3]]
    import torch

    with torch.no_grad():
        ref = model(held_out)
    assert psnr(OnnxRuntimeBackend(out).restore(held_out), ref) >= 32.0
