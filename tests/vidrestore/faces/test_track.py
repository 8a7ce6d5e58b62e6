"""Tracker: identities through crossings and short misses, new IDs after long absences, detect-every-k."""
from __future__ import annotations

import numpy as np
import pytest

from vidrestore.config import TrackConfig
from vidrestore.faces.track import Tracker, iou_matrix
from vidrestore.types import Face
from tests.support.face_frames import read_frames
from tests.support.synthetic_faces import face_from_landmarks, talking_head_path


def _face_at(cx: float, cy: float, size: float = 100.0) -> Face:
    shape = np.array([[-0.2, -0.1], [0.2, -0.1], [0.0, 0.1], [-0.15, 0.25], [0.15, 0.25]]) * size
    lm = (shape + [cx, cy]).astype(np.float32)
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], np.float32)
    return Face(box=box, landmarks=lm, score=0.99)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    b = np.array([[5, 0, 15, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150], [0]])


@pytest.mark.parametrize("dy", [0.0, 40.0])
def test_crossing_faces_keep_ids(dy: float) -> None:
    tracker = Tracker()
    ids_a, ids_b = [], []
    for t in range(60):
        a = _face_at(100 + 6 * t, 200)            # moves right
        b = _face_at(460 - 6 * t, 200 + dy)       # moves left; they cross around t = 30
        faces = [b, a] if t % 2 else [a, b]       # detection order must not matter
        out = tracker.update(t, faces)
        assert len(out) == 2 and all(o.detected for o in out)
        ids_a.append(next(o.track_id for o in out if o.face is a))
        ids_b.append(next(o.track_id for o in out if o.face is b))
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and ids_a[0] != ids_b[0]


@pytest.mark.parametrize("gap,same_id", [(3, True), (10, True), (11, False), (30, False)])
def test_exit_and_reenter(gap: int, same_id: bool) -> None:
    tracker = Tracker(config=TrackConfig(max_misses=10))
    for t in range(10):
        first = tracker.update(t, [_face_at(200, 200)])
    for t in range(10, 10 + gap):
        out = tracker.update(t, [])
        assert all(not o.detected for o in out)
        assert len(out) == (1 if t - 10 < 2 else 0)         # coasts 2 missed frames, then silent
    back = tracker.update(10 + gap, [_face_at(205, 200)])
    assert back[0].detected
    assert (back[0].track_id == first[0].track_id) is same_id
    summaries = tracker.summaries()
    assert len(summaries) == (1 if same_id else 2)
    s0 = summaries[0]
    assert s0.first_frame == 0 and (s0.last_frame == 11 if not same_id else s0.last_frame == 10 + gap)


def test_new_face_gets_new_track_and_far_detection_is_not_matched() -> None:
    tracker = Tracker()
    tracker.update(0, [_face_at(100, 100)])
    out = tracker.update(1, [_face_at(101, 100), _face_at(400, 300)])
    assert sorted(o.track_id for o in out) == [0, 1]
    assert next(o for o in out if o.track_id == 0).face.box[0] == pytest.approx(51)


def test_detect_every_k_propagates_with_constant_velocity() -> None:
    _, true, _ = talking_head_path(60)
    tracker = Tracker()
    k = 3
    errors, hold_errors = [], []
    for t in range(60):
        faces = [face_from_landmarks(true[t])] if t % k == 0 else None
        out = tracker.update(t, faces)
        assert len(out) == 1 and out[0].track_id == 0 and out[0].detected == (t % k == 0)
        if t >= 2 * k and t % k:                             # velocity known after two detections
            errors.append(np.linalg.norm(out[0].landmarks - true[t], axis=-1).mean())
            hold_errors.append(np.linalg.norm(true[t - t % k] - true[t], axis=-1).mean())
    # up to 7 px/frame: holding the last detection is off by up to 14 px; prediction does much better
    assert np.mean(errors) < 0.35 * np.mean(hold_errors)
    assert max(errors) < 10.0


def test_summaries_count_frames() -> None:
    tracker = Tracker()
    for t in range(5):
        tracker.update(t, [_face_at(100, 100)] if t != 2 else None)
    (s,) = tracker.summaries()
    assert (s.track_id, s.first_frame, s.last_frame, s.frames) == (0, 0, 4, 5)
    assert s.raw_jitter_px is None


def test_face_exit_reenter_clip(testdata) -> None:
    """edge/face_exit_reenter.mp4: the face leaves (~1.6 s), is absent, and re-enters (~3.3 s): two tracks,
    each continuous while the face is visible."""
    from vidrestore.faces.detect import RetinaFaceDetector

    frames = read_frames(testdata / "edge/face_exit_reenter.mp4")
    assert len(frames) == 150
    k = 3
    dets = RetinaFaceDetector().detect(frames[::k])
    tracker = Tracker()
    per_frame = [tracker.update(t, dets[t // k] if t % k == 0 else None) for t in range(len(frames))]
    summaries = tracker.summaries()
    assert [s.track_id for s in summaries] == [0, 1]
    first, second = summaries
    assert first.first_frame == 0 and 40 <= first.last_frame <= 60
    assert 85 <= second.first_frame <= 110 and second.last_frame == 149
    assert all(len(f) == 0 for f in per_frame[first.last_frame + 1:second.first_frame])
    assert all(len(f) == 1 for f in per_frame[:first.last_frame + 1] + per_frame[second.first_frame:])


def test_one_face_is_followed_without_the_assignment_solver() -> None:
    """One track and one detection need no solver: a single-face video never imports scipy.optimize
    (about 0.3 s of every start), and a detection too far away still starts a new track."""
    import subprocess
    import sys

    code = """if True:
        import sys
        import numpy as np
        from vidrestore.faces.track import Tracker
        from vidrestore.types import Face
        def face(cx):
            lm = (np.array([[-20, -10], [20, -10], [0, 10], [-15, 25], [15, 25]]) + [cx, 200]).astype(np.float32)
            return Face(box=np.array([cx - 50, 150, cx + 50, 250], np.float32), landmarks=lm, score=0.99)
        tracker = Tracker()
        ids = [tracker.update(t, [face(100 + 3 * t)])[0].track_id for t in range(10)]
        far = next(o.track_id for o in tracker.update(10, [face(900)]) if o.detected)
        print(len(set(ids)), far != ids[0], 'scipy.optimize' in sys.modules)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "False"]
