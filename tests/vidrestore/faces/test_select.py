"""Face selection: by track and stable over time; end to end on a real multi-face clip through restore_video."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.config import AlignConfig, EncodeConfig, ModelConfig, PasteConfig, RestoreConfig, SelectConfig
from vidrestore.errors import ConfigError
from vidrestore.faces.select import FaceSelector
from vidrestore.media.decode import VideoReader
from vidrestore.pipeline import restore_video
from vidrestore.types import Face, TrackedFace

W, H = 640, 480


def _face(tid: int, frame: int, cx: float, cy: float, size: float) -> TrackedFace:
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], np.float32)
    lm = np.tile(np.array([[cx, cy]], np.float32), (5, 1))
    return TrackedFace(track_id=tid, frame_index=frame, face=Face(box=box, landmarks=lm, score=0.9), landmarks=lm)


def _run(sel: FaceSelector, frames: list[list[TrackedFace]]) -> list[list[int]]:
    out = []
    for t, faces in enumerate(frames):
        sel.observe(t, faces, W, H)
        out.append([tf.track_id for tf in sel.select(faces)])
    return out


def test_largest_is_chosen_by_track_and_does_not_flicker() -> None:
    rng = np.random.default_rng(0)
    # tracks 0 and 1 of nearly the same size whose per-frame sizes cross every few frames; track 2 small
    frames = [[_face(0, t, 150, 200, 100 + rng.normal(0, 4)), _face(1, t, 450, 200, 101 + rng.normal(0, 4)),
               _face(2, t, 320, 400, 50)] for t in range(60)]
    per_frame_largest = [max(f, key=lambda tf: tf.face.size).track_id for f in frames]
    assert len(set(per_frame_largest)) == 2                     # choosing per frame would flicker
    got = _run(FaceSelector(config=SelectConfig(faces="largest")), frames)
    assert all(len(g) == 1 for g in got)
    assert len({g[0] for g in got}) == 1                           # one track, all the way
    # a clearly larger face appearing takes over (after its median is 25 % larger), and it stays
    frames2 = frames + [[*f, _face(3, 60 + t, 320, 150, 160)] for t, f in enumerate(frames)]
    got2 = _run(FaceSelector(config=SelectConfig(faces="largest")), frames2)
    assert got2[-1] == [3] and all(g == [3] for g in got2[60:])
    # when the chosen track leaves, the best present one takes over
    frames3 = frames[:30] + [[f[1], f[2]] for f in frames[30:]]
    got3 = _run(FaceSelector(config=SelectConfig(faces="largest")), frames3)
    assert all(g == [1] for g in got3[30:])


def test_center_and_track_ids() -> None:
    frames = [[_face(0, t, 100, 100, 150), _face(1, t, 330, 250, 60), _face(2, t, 600, 400, 90)] for t in range(10)]
    assert _run(FaceSelector(config=SelectConfig(faces="center")), frames) == [[1]] * 10
    assert _run(FaceSelector(config=SelectConfig(track_ids=(0, 2))), frames) == [[0, 2]] * 10
    assert _run(FaceSelector(config=SelectConfig(faces="center", track_ids=(1, 2))), frames) == [[1]] * 10
    assert _run(FaceSelector(config=SelectConfig(faces="center", track_ids=(0, 2))), frames) == [[0]] * 10
    assert _run(FaceSelector(), frames) == [[0, 1, 2]] * 10
    with pytest.raises(ConfigError):
        SelectConfig(faces="biggest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SelectConfig(track_ids=(-1,))


# ----------------------------------------------------------------------------------------- end to end
LOSSLESS = EncodeConfig(codec="ffv1", crf=None, preset=None)
CLIP = "edge/multi_face_group_zoompan.mp4"
FRAMES = 4


def _brighten(x: torch.Tensor) -> torch.Tensor:
    return (x + 0.3).clamp(-1.0, 1.0)


@pytest.fixture(scope="module")
def multi_face(testdata, tmp_path_factory):
    """The first frames of the group clip (3 faces), and the outputs of a no-restore run and an all-faces run."""
    from vidrestore.media.encode import VideoWriter
    d = tmp_path_factory.mktemp("select")
    src = d / "group.mkv"
    with VideoReader(testdata / CLIP) as r, VideoWriter(src, info=r.info, source=testdata / CLIP,
                                                        config=LOSSLESS) as w:
        for f in r:
            if f.index >= FRAMES:
                break
            w.write(f)
        w.commit()
    none = _restore(src, d / "none.mkv", paste=PasteConfig(strength=0.0))
    every = _restore(src, d / "all.mkv")
    return src, d, none, every


def _restore(src, out, **kw):
    cfg = RestoreConfig(model=ModelConfig(restorer="identity"), encode=LOSSLESS,
                        align=AlignConfig(interpolation="linear"), **kw)     # the fast warp: not what is tested
    rep = restore_video(src, out, cfg, restorer=_brighten)
    with VideoReader(out) as r:
        return rep, [f.rgb for f in r]


def _changed(frames: list[np.ndarray], base: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.any(a != b, axis=2) for a, b in zip(frames, base)])


@pytest.mark.parametrize("how", ["largest", "center", "track_ids"])
def test_selected_faces_only(multi_face, how) -> None:
    src, d, (rep0, none), (rep_all, every) = multi_face
    assert min(rep_all.faces_per_frame) >= 2 and len(rep_all.tracks) >= 2
    all_changed = _changed(every, none)
    if how == "track_ids":
        ids = tuple(sorted(t.track_id for t in rep_all.tracks)[1:2])
        rep, got = _restore(src, d / f"{how}.mkv", select=SelectConfig(track_ids=ids))
        assert rep.faces_per_frame == tuple(1 for _ in range(FRAMES))
    else:
        rep, got = _restore(src, d / f"{how}.mkv", select=SelectConfig(faces=how))
        assert set(rep.faces_per_frame) == {1}
    changed = _changed(got, none)
    assert changed.any(axis=(1, 2)).all()                      # a face restored in every frame
    assert not (changed & ~all_changed).any()                  # nothing outside the faces of the all-faces run
    # the faces not selected are bit-identical to the no-restore run: a large part of the all-faces change is
    # left untouched in every frame
    for k in range(FRAMES):
        assert all_changed[k].sum() > 1.5 * changed[k].sum()
        np.testing.assert_array_equal(got[k][~changed[k]], none[k][~changed[k]])
    # one track throughout: the changed region moves smoothly (its centre jumps less than 40 px per frame)
    centres = np.array([np.argwhere(c).mean(0) for c in changed])
    assert np.abs(np.diff(centres, axis=0)).max() < 40, centres
