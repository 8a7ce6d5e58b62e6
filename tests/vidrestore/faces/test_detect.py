"""RetinaFaceDetector on real media: MANIFEST face counts, batching, 4K, geometry of the results."""
from __future__ import annotations

import numpy as np
import pytest

from vidrestore.config import DetectConfig
from vidrestore.faces.detect import RetinaFaceDetector, detection_size
from tests.support.face_frames import cached_frames


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector()


def _frames(testdata, path: str, indices: tuple[int, ...] | None = None, limit: int | None = None):
    return list(cached_frames(str(testdata / path), indices, limit))


@pytest.mark.parametrize("path", [
    "clips/lp_d0_talking_512.mp4",
    "clips/lp_s32_interview_1080p_silentaudio.mp4",
    "clips/lp_s20_selfie_480x908_silentaudio.mp4",
    "edge/face_exit_reenter.mp4",
    "edge/no_faces_cartoon_landscape.mp4",
])
def test_counts_match_manifest(detector, testdata, manifest, path: str) -> None:
    info = manifest[path]["faces"]
    frames = _frames(testdata, path, tuple(info["frames_checked"]))
    got = [len(f) for f in detector.detect(frames)]
    assert got == info["counts"], (path, got, info["counts"])


def test_uhd_clip_one_face_per_frame(detector, testdata) -> None:
    """Native 4K detection gives 2-5 boxes for the one ~900 px face (MANIFEST); downscaled gives one."""
    frames = _frames(testdata, "clips/lp_s18_uhd_3840x2160_1s.mp4", limit=4)
    assert frames[0].shape == (2160, 3840, 3)
    faces = detector.detect(frames)
    assert [len(f) for f in faces] == [1, 1, 1, 1]
    box = faces[0][0].box
    assert 1500 < (box[0] + box[2]) / 2 < 2700 and box[3] - box[1] > 500   # frame pixels, not detector pixels


def test_group_photo_three_faces(detector, testdata) -> None:
    (img,) = _frames(testdata, "images/face_recognition_obama_and_biden.jpg")
    faces = detector.detect([img])[0]
    assert len(faces) == 3
    assert all(f.score > 0.9 for f in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_batch_equals_single(testdata) -> None:
    det = RetinaFaceDetector(config=DetectConfig(batch=3))
    frames = _frames(testdata, "edge/multi_face_group_zoompan.mp4", limit=5)
    frames.append(np.ascontiguousarray(_frames(testdata, "clips/lp_d0_talking_512.mp4", limit=1)[0]))  # other size
    batched = det.detect(frames)
    single = [det.detect([f])[0] for f in frames]
    assert [len(b) for b in batched] == [len(s) for s in single]
    assert len(batched[0]) == 3 and len(batched[-1]) == 1
    for b, s in zip(batched, single):
        for fb, fs in zip(b, s):
            np.testing.assert_allclose(fb.box, fs.box, atol=1e-3)
            np.testing.assert_allclose(fb.landmarks, fs.landmarks, atol=1e-3)
            assert abs(fb.score - fs.score) < 1e-5


@pytest.mark.parametrize("path", ["clips/lp_d10_talking_512_audio.mp4", "clips/lp_s18_interview_1280x720_audio.mp4",
                                  "clips/lp_d13_portrait_720x1280.mp4"])
def test_landmarks_inside_boxes_and_ordered(detector, testdata, path: str) -> None:
    for faces in detector.detect(_frames(testdata, path, limit=3)):
        assert len(faces) == 1
        f = faces[0]
        assert f.box.dtype == np.float32 and f.box.shape == (4,) and f.landmarks.shape == (5, 2)
        x1, y1, x2, y2 = f.box
        assert np.all((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2))
        assert np.all((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2))
        le, re, nose, lm, rm = f.landmarks
        assert le[0] < re[0] and lm[0] < rm[0]              # image-left eye first (frontal faces)
        assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])


def test_resize_maps_back_to_frame_pixels(testdata) -> None:
    """Detection at two different detector sizes finds the same face in frame pixels (within a few px)."""
    (frame,) = _frames(testdata, "clips/lp_s32_interview_1080p_silentaudio.mp4", limit=1)
    a = RetinaFaceDetector(config=DetectConfig(max_side=1920)).detect([frame])[0][0]
    b = RetinaFaceDetector(config=DetectConfig(max_side=800)).detect([frame])[0][0]
    size = a.size
    assert np.abs(a.box - b.box).max() < 0.06 * size
    assert np.abs(a.landmarks - b.landmarks).max() < 0.04 * size


def test_detection_size() -> None:
    assert detection_size(3840, 2160, 960) == (960, 540)
    assert detection_size(853, 481, 960) == (853, 481)        # never upscaled
    assert detection_size(481, 853, 640) == (361, 640)


def test_rejects_non_rgb(detector) -> None:
    with pytest.raises(ValueError):
        detector.detect([np.zeros((10, 10), np.uint8)])
    assert detector.detect([]) == []


@pytest.mark.slow   # importing facexlib (torchvision) takes ~10 s on a busy 2-core machine
def test_facexlib_detector_wiring(tmp_path) -> None:
    """facexlib variant: loads a RetinaFace-mobilenet0.25 state dict (random here: no weights offline), runs our
    pre/post-processing; wrong or missing files are CheckpointErrors. Priors equal facexlib's PriorBox."""
    from tests.support.require import require_module
    torch = require_module("torch")
    retinaface_mod = require_module("facexlib.detection.retinaface")
    from facexlib.detection.retinaface_utils import PriorBox

    from vidrestore.errors import CheckpointError
    from vidrestore.faces.detect import FacexlibRetinaFaceDetector
    from vidrestore.models import retinaface as rf

    fx_priors = PriorBox(retinaface_mod.generate_config("mobile0.25"), image_size=(96, 160)).forward().numpy()
    np.testing.assert_allclose(fx_priors * [160, 96, 160, 96], rf.priors(160, 96), atol=1e-3)

    torch.manual_seed(0)
    net = retinaface_mod.RetinaFace(network_name="mobile0.25", device="cpu")
    weights = tmp_path / "detection_mobilenet0.25_random.pth"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, weights)
    det = FacexlibRetinaFaceDetector(weights, config=DetectConfig(max_side=160))
    assert det.name == "retinaface-mobile0.25-facexlib"
    frames = [np.zeros((120, 200, 3), np.uint8), np.full((120, 200, 3), 200, np.uint8)]
    out = det.detect(frames)
    assert len(out) == 2 and all(isinstance(f, list) for f in out)
    x = rf.make_input([np.full((96, 160, 3), 200, np.uint8)], 160, 96, mean_bgr=det.MEAN_BGR)
    loc, conf, lms = det._run(x)
    assert loc.shape == (1, len(rf.priors(160, 96)), 4) and lms.shape[-1] == 10
    np.testing.assert_allclose(conf.sum(-1), 1.0, atol=1e-5)

    with pytest.raises(CheckpointError):
        FacexlibRetinaFaceDetector(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(CheckpointError):
        FacexlibRetinaFaceDetector(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        FacexlibRetinaFaceDetector(junk)
