"""ONNX export of GFP-GAN: graph contract (names, dynamic batch, no grouped convs), parity through
onnxruntime at batch 1 and 3, FP16 variant, CLI and the checkpoint-keyed export cache."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from engines.export_onnx import (INPUT_NAME, OUTPUT_NAME, ExportError, check_graph, ensure_onnx, export_onnx,
                                 main)
from tests.support.small_gfpgan import face_batch, psnr, small_checkpoint


@pytest.fixture
def model(small_gfpgan_64):
    return small_gfpgan_64


@pytest.fixture
def onnx_fp32(small_gfpgan_onnx):
    return small_gfpgan_onnx


def run_ort(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def test_graph_contract(model, onnx_fp32):
    proto = onnx.load(str(onnx_fp32))
    onnx.checker.check_model(proto, full_check=True)
    assert check_graph(proto) == []
    [inp], [out] = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    for value in (inp, out):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].dim_value          # symbolic batch
        assert [d.dim_value for d in dims[1:]] == [3, 64, 64]
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert all(next((a.i for a in n.attribute if a.name == "group"), 1) == 1 for n in convs)
    # exactly one ordinary Conv per conv module of the model: no per-sample (groups=batch) weights
    # (the U-Net's toRGB heads are only used for training losses and are not in the graph)
    n_modules = sum(1 for name, m in model.named_modules() if not name.startswith("toRGB.")
                    and (isinstance(m, nn.Conv2d) or type(m).__name__ == "ModulatedConv2d"))
    assert len(convs) == n_modules
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vidrestore.precision"] == "fp32" and meta["vidrestore.image_size"] == "64"
    # the FP32 file is the exporter's bytes with the metadata appended as a second message: the
    # protobuf readers (onnx above, ONNX Runtime here) merge it into one model
    session_meta = ort.InferenceSession(str(onnx_fp32)).get_modelmeta().custom_metadata_map
    assert session_meta["vidrestore.precision"] == "fp32" and session_meta["vidrestore.exporter"] == "torchscript"


def test_weights_are_stored_once(model, onnx_fp32):
    """The demodulation's per-weight sums are (out, in) constants of the graph: the file holds each
    weight once, not also its square (out, in, k, k) for the runtime to reduce (a quarter more bytes
    to write, read and fold on every first run)."""
    proto = onnx.load(str(onnx_fp32))
    assert not [n.name for n in proto.graph.node if n.op_type == "ReduceSum"]
    stored = sum(onnx.numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
    params = sum(p.numel() * 4 for name, p in model.named_parameters() if not name.startswith("toRGB."))
    assert stored < params * 1.05, (stored, params)


def test_exporter_itself_declares_the_output_shape(model):
    """What lets the FP32 export keep the exporter's bytes without rewriting them: the wrapper's reshape
    gives the output (batch, 3, S, S) with the input's batch symbol straight from the exporter."""
    import io

    from engines.export_onnx import _ImageToImage, _run_exporter
    from engines.onnx_contract import output_dims

    buffer = io.BytesIO()
    _run_exporter(_ImageToImage(model, 64), torch.zeros(0, 3, 64, 64), buffer, opset=17, dynamic_batch=True,
                  exporter="torchscript")
    proto = onnx.load_from_string(buffer.getvalue())
    assert output_dims(proto) == output_dims(proto, declared=64) == ["batch", 3, 64, 64]


def test_matches_torch_at_batch_1_and_3(model, onnx_fp32, testdata):
    x = face_batch(testdata, 64, 3)
    with torch.no_grad():
        ref = model(x).numpy()
    for n in (1, 3):
        got = run_ort(onnx_fp32, x[:n])
        assert got.shape == (n, 3, 64, 64)
        assert np.abs(got - ref[:n]).max() <= 2e-3
    # the batch rows are independent: row 2 alone equals row 2 of the batch of 3
    assert np.abs(run_ort(onnx_fp32, x[2:3]) - ref[2:3]).max() <= 2e-3


def test_fp16_variant_keeps_demodulation_fp32_and_io_fp32(model, tmp_path, testdata):
    from engines.precision import node_precisions

    path = export_onnx(model, tmp_path / "small16.onnx", fp16=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert check_graph(proto) == []
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    precisions = node_precisions(proto)
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    assert convs and all(precisions[c] == "fp16" for c in convs)
    sqrt = [n.name for n in proto.graph.node if n.op_type == "Sqrt"]
    assert sqrt and all(precisions[s] == "fp32" for s in sqrt)
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    init_types = {i.name: i.data_type for i in proto.graph.initializer}
    assert {init_types[w] for w in conv_weights if w in init_types} == {onnx.TensorProto.FLOAT16}
    assert {p.key: p.value for p in proto.metadata_props}["vidrestore.precision"] == "fp16"

    x = face_batch(testdata, 64, 2)
    with torch.no_grad():
        ref = model(x)
    got = torch.from_numpy(run_ort(path, x))
    assert psnr(got, ref) >= 35.0
    assert float((got - ref).abs().max()) < 0.1


def test_static_batch_export_is_flagged_by_check_graph(model, tmp_path):
    path = export_onnx(model, tmp_path / "static.onnx", dynamic_batch=False)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert any("fixed batch" in p for p in check_graph(proto, dynamic_batch=True))


def test_check_graph_rejects_grouped_conv_and_wrong_names(tmp_path):
    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
            self.inc, self.out = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1)

        def forward(self, x):
            return self.out(self.conv(self.inc(x)))

    with pytest.raises(ExportError, match="grouped Conv"):
        export_onnx(Grouped().eval(), tmp_path / "grouped.onnx", size=16)
    assert not (tmp_path / "grouped.onnx").exists()
    proto = onnx.load(str(export_onnx(nn.Conv2d(3, 3, 1).eval(), tmp_path / "ok.onnx", size=8)))
    proto.graph.input[0].name = "x"
    assert any("expected ['input']" in p for p in check_graph(proto))


def test_external_data_flag_writes_weights_beside_the_file(model, tmp_path, testdata):
    path = export_onnx(model, tmp_path / "ext.onnx", external_data=True)
    data = tmp_path / "ext.onnx.data"
    assert data.is_file() and data.stat().st_size > path.stat().st_size
    x = face_batch(testdata, 64, 1)
    with torch.no_grad():
        assert np.abs(run_ort(path, x) - model(x).numpy()).max() <= 2e-3


def test_ensure_onnx_exports_once_per_checkpoint(tmp_path):
    ckpt_a = small_checkpoint(tmp_path / "a.pth", seed=0)
    ckpt_b = small_checkpoint(tmp_path / "b.pth", seed=1)
    cache = tmp_path / "cache"
    first = ensure_onnx(ckpt_a, cache_dir=cache)
    stamp = first.stat().st_mtime_ns
    again = ensure_onnx(ckpt_a, cache_dir=cache)
    assert again == first and again.stat().st_mtime_ns == stamp      # reused, not re-exported
    other = ensure_onnx(ckpt_b, cache_dir=cache)
    assert other != first and other.parent == first.parent == cache / "onnx"
    half = ensure_onnx(ckpt_a, fp16=True, cache_dir=cache)
    assert half != first and "fp16" in half.name
    assert not [p for p in (cache / "onnx").iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    # the checkpoint's hash is remembered by path/size/mtime; rewriting the file in place re-keys it
    ckpt_a.write_bytes(ckpt_b.read_bytes())
    os.utime(ckpt_a, ns=(ckpt_a.stat().st_atime_ns, ckpt_a.stat().st_mtime_ns + 10**9))
    assert ensure_onnx(ckpt_a, cache_dir=cache) == other
    from vidrestore.errors import CheckpointError

    with pytest.raises(CheckpointError) as info:
        ensure_onnx(tmp_path / "missing.pth", cache_dir=cache)
    assert "missing.pth" in str(info.value)


def test_cli_exports_a_checkpoint_and_reports_errors(tmp_path, capsys):
    ckpt = small_checkpoint(tmp_path / "c.pth")
    out = tmp_path / "out" / "model.onnx"
    assert main(["--weights", str(ckpt), "--output", str(out), "--opset", "17"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 17
    assert {p.key: p.value for p in proto.metadata_props}["vidrestore.weights"] == str(ckpt)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    from vidrestore.models import load_gfpgan

    with torch.no_grad():
        ref = load_gfpgan(ckpt)(x).numpy()
    assert np.abs(run_ort(out, x) - ref).max() <= 2e-3

    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    code = main(["--weights", str(broken), "--output", str(tmp_path / "x.onnx")])
    assert code != 0 and str(broken) in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_real_size_512_export_matches_torch(gfpgan_checkpoint, tmp_path, testdata):
    """The full 512 px model (random realistic weights): export, batch 1 and 3 through onnxruntime."""
    from vidrestore.models import load_gfpgan

    model = load_gfpgan(gfpgan_checkpoint)
    path = export_onnx(model, tmp_path / "gfpgan512.onnx")
    assert os.path.getsize(path) > 300e6
    assert check_graph(onnx.load(str(path), load_external_data=False)) == []
    x = face_batch(testdata, 512, 3)
    with torch.no_grad():
        ref = model(x).numpy()
    for n in (1, 3):
        assert np.abs(run_ort(path, x[:n]) - ref[:n]).max() <= 2e-3
