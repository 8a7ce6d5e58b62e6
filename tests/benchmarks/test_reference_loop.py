"""The baseline loop: authors' GFPGANv1Clean + facexlib FaceRestoreHelper, offline, on a real clip."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
import torch

from benchmarks.facexlib_weights import FACEXLIB_FILENAME, convert
from benchmarks.reference_loop import STAGES, ReferenceLoop, run_reference, save_random_checkpoint, tensor2img

CLIP = "clips/lp_d0_talking_512.mp4"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("reference")
    return {"gfpgan_weights": save_random_checkpoint(folder / "gfpgan_random.pth"),
            "detector_weights": convert(folder / FACEXLIB_FILENAME)}


@pytest.fixture(scope="module")
def loop(weights) -> ReferenceLoop:
    return ReferenceLoop(weights["gfpgan_weights"], detector_weights=weights["detector_weights"])


def _frames(path, n: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="bgr24"))
            if len(out) == n:
                return out
    return out


def _face_region(loop: ReferenceLoop, shape, pad: int = 2) -> np.ndarray:
    """Pixels the pasted 512x512 crop can touch (its inverse-warped square, dilated by ``pad``)."""
    inv = loop.helper.inverse_affine_matrices[0]
    region = cv2.warpAffine(np.ones((512, 512), np.uint8), inv, (shape[1], shape[0]))
    return cv2.dilate(region, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)) > 0


def test_tensor2img_matches_basicsr_convention():
    t = torch.tensor([[[-2.0, 0.0]], [[1.0, -1.0]], [[0.5, 3.0]]])  # RGB, 1x2 pixels, range [-1, 1]
    img = tensor2img(t, rgb2bgr=True, min_max=(-1, 1))
    assert img.dtype == np.uint8 and img.shape == (1, 2, 3)
    # pixel 0: R=-2 -> 0, G=1 -> 255, B=0.5 -> 191.25 -> 191; stored B, G, R
    np.testing.assert_array_equal(img[0, 0], [191, 255, 0])
    np.testing.assert_array_equal(img[0, 1], [255, 0, 128])  # B=3 clamps, G=-1, R=0 -> 127.5 rounds to 128


def test_helper_is_offline_and_facexlib_left_unpatched(loop):
    import facexlib.detection
    import facexlib.utils.face_restoration_helper as frh
    from facexlib.detection.retinaface import RetinaFace

    assert isinstance(loop.helper.face_det, RetinaFace) and loop.helper.face_parse is None
    assert frh.init_detection_model is facexlib.detection.init_detection_model  # patches were undone
    assert loop.helper.face_size == (512, 512) and loop.helper.use_parse is False


def test_restore_frame_changes_only_the_face(loop, testdata):
    frame = _frames(testdata / CLIP, 1)[0]
    seconds: dict[str, float] = {}
    out, faces = loop.restore_frame(frame.copy(), seconds)
    assert faces == 1 and len(loop.helper.det_faces) == 1
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert set(seconds) == {s for st in ("detect", "align", "restore", "paste") for s in (st, f"cpu:{st}")}
    region = _face_region(loop, frame.shape)
    assert 0.1 < region.mean() < 0.9                     # the face covers part of the frame, not all of it
    np.testing.assert_array_equal(out[~region], frame[~region])  # outside the crop: untouched
    diff = np.abs(out.astype(int) - frame.astype(int)).max(axis=2)
    assert diff[region].mean() > 10                       # inside: replaced by the (random-weight) output
    x1, y1, x2, y2 = loop.helper.det_faces[0][:4]
    ys, xs = np.nonzero(diff)
    assert x1 - 200 < xs.mean() < x2 + 200 and y1 - 200 < ys.mean() < y2 + 200


@pytest.mark.slow
def test_run_reference_two_frames_encoded(weights, testdata, tmp_path):
    out_path = tmp_path / "ref.mp4"
    report = run_reference(testdata / CLIP, out_path, max_frames=2, threads=2, **weights)
    assert report["frames"] == 2 and report["faces"] == 2 and report["faces_per_frame"] == [1, 1]
    assert set(STAGES) <= set(report["seconds"]) and all(v >= 0 for v in report["seconds"].values())
    assert report["seconds"]["restore"] > 0.5 * sum(report["seconds"][s] for s in STAGES)
    assert report["fps"] == pytest.approx(2 / report["seconds"]["total"])
    src, dst = _frames(testdata / CLIP, 2), _frames(out_path, 10)
    assert len(dst) == 2 and dst[0].shape == src[0].shape
    for a, b in zip(src, dst):
        diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2)
        changed = diff > 40
        ys, xs = np.nonzero(changed)
        assert changed.mean() > 0.02                      # the face was replaced
        h, w = diff.shape                                 # and the changes sit around the face,
        assert 0.2 * w < xs.mean() < 0.8 * w and 0.15 * h < ys.mean() < 0.85 * h
        border = np.ones_like(changed)
        border[32:-32, 32:-32] = False
        assert changed[border].mean() < 0.01              # not at the frame's edges (encoder noise only)
