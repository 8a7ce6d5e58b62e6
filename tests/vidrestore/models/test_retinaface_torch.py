"""The torch RetinaFace built from the ONNX graph gives onnxruntime's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.face_frames import cached_frames
from vidrestore.errors import CheckpointError
from vidrestore.models import retinaface as rf
from vidrestore.models.retinaface_torch import OnnxGraphModule, retinaface_module
from tests.support.numerics import product_numerics


@pytest.fixture(scope="module")
def net():
    return retinaface_module()


@pytest.fixture(scope="module")
def session():
    return rf.create_session()


def _compare(net, session, x: np.ndarray, atol: float) -> None:
    expected = session.run(None, {"input": x})
    with torch.inference_mode():
        got = net(torch.from_numpy(x))
    assert len(got) == 3
    for name, e, g in zip(("loc", "conf", "landmarks"), expected, got):
        assert tuple(g.shape) == e.shape, name
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=atol, err_msg=name)


def test_random_input_matches_onnxruntime(net, session):
    x = np.random.default_rng(0).uniform(-127, 151, (2, 3, 160, 224)).astype(np.float32)
    _compare(net, session, x, atol=1e-4)


def test_real_frame_matches_onnxruntime(net, session, testdata):
    import cv2
    frame = cached_frames(str(testdata / "edge/multi_face_group_zoompan.mp4"), (5,))[0]
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    pw, ph = rf.padded_size(w // 2, h // 2)
    x = rf.make_input([small], pw, ph)
    _compare(net, session, x, atol=2e-4)
    with torch.inference_mode():
        conf = net(torch.from_numpy(x))[1]
    assert (conf[0, :, 1] > 0.8).sum() >= 3          # real faces in there: not a degenerate comparison


def test_module_moves_like_any_module(net):
    assert all(b.dtype == torch.float32 for b in net.buffers())
    assert sum(b.numel() for b in net.buffers()) > 100_000
    half = retinaface_module().half()
    x = torch.zeros(1, 3, 64, 64, dtype=torch.float16)
    with torch.inference_mode():
        assert half(x)[0].dtype == torch.float16


def test_unsupported_operator_is_reported():
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    with pytest.raises(CheckpointError, match="Sigmoid"):
        OnnxGraphModule(model.SerializeToString())
    with pytest.raises(CheckpointError):
        OnnxGraphModule(b"not an onnx model")
    onnx.checker.check_model(model)


@pytest.mark.needs_cuda
def test_cuda_matches_onnxruntime(net, session):
    x = np.random.default_rng(1).uniform(-127, 151, (2, 3, 192, 256)).astype(np.float32)
    expected = session.run(None, {"input": x})
    cuda_net = retinaface_module().cuda()
    with torch.inference_mode(), product_numerics():
        got = cuda_net(torch.from_numpy(x).cuda())
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.cpu().numpy(), e, rtol=1e-3, atol=1e-3)
