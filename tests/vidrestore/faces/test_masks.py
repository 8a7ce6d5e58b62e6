"""Paste masks: the template face outline, the authors' parse classes, softening (numpy and torch), and
what a black-face restorer does to the frame outside the face with each mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.config import ModelConfig, PasteConfig, RestoreConfig
from vidrestore.faces.masks import (PASTE_CLASSES, face_mask, feather_mask, hard_face_mask, select_classes,
                                    select_classes_torch, soften, soften_torch, static_mask)
from vidrestore.faces.parse import FaceParser
from vidrestore.pipeline import Restorer
from tests.support.face_frames import cached_frames

# crop points well outside the face (its corners and the middle of its left and right edges), inset
# so that the box mode's feather ramp (2 * 0.05 * 512 = 51 px) is about half way up there
OUTSIDE = np.array([[26, 26], [486, 26], [26, 486], [486, 486], [26, 256], [486, 256]], np.float64)
INSIDE = np.array([[256, 300], [200, 250], [312, 250], [256, 400]], np.float64)   # cheeks, nose, mouth


def _old_feather_mask(crop_size: int, feather: float) -> np.ndarray:
    """The box mask exactly as paste.py computed it before masks existed."""
    width = 2.0 * feather * crop_size
    d = np.minimum(np.arange(crop_size) + 0.5, crop_size - 0.5 - np.arange(crop_size))
    t = np.clip(d / width, 0.0, 1.0)
    r = t * t * (3.0 - 2.0 * t)
    return np.ascontiguousarray(np.outer(r, r), dtype=np.float32)


def test_box_mode_is_bit_identical_to_the_old_feather_mask() -> None:
    for size, feather in ((512, 0.05), (256, 0.1), (128, 0.0125)):
        cfg = PasteConfig(mask="box", feather=feather)
        assert np.array_equal(static_mask(size, cfg), _old_feather_mask(size, feather))
    assert static_mask(512, PasteConfig(mask="box")) is feather_mask(512, 0.05)


def test_face_mask_covers_the_face_not_the_corners() -> None:
    m = face_mask(512, 0.03, 0.02)
    assert m is face_mask(512, 0.03, 0.02) and not m.flags.writeable and m.dtype == np.float32
    assert static_mask(512, PasteConfig()) is m                       # the default mode is face
    for x, y in OUTSIDE.astype(int):
        assert m[y, x] == 0.0
    for x, y in INSIDE.astype(int):
        assert m[y, x] == 1.0
    # brows (y ~ 205) and chin (y ~ 450) in (in the feathered band), hair (y 130) and ears (x 85) out
    assert m[205, 200] > 0.8 and m[450, 256] > 0.5 and m[130, 256] == 0.0 and m[240, 85] == 0.0
    assert 0.18 < m.mean() < 0.3                                     # a face, not the square
    assert np.allclose(m, m[:, ::-1], atol=0.05)                     # symmetric about the face's midline
    # erosion shrinks, blur widens the soft band; both scale with the crop (fractions of the face size)
    assert face_mask(512, 0.03, 0.06).sum() < m.sum()
    band = lambda a: np.count_nonzero((a > 0) & (a < 1))            # noqa: E731
    assert band(face_mask(512, 0.06, 0.02)) > 1.5 * band(m)
    small = face_mask(128, 0.03, 0.02)
    assert abs(small.mean() - m.mean()) < 0.01


def _facexlib_colormap() -> list[int]:
    """MASK_COLORMAP as written in facexlib's paste helper (the authors' class table)."""
    import ast
    from tests.support.parse_reference import facexlib_file
    path = facexlib_file("utils/face_restoration_helper.py")
    if path is None:
        pytest.skip("facexlib not installed")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MASK_COLORMAP":
            return ast.literal_eval(node.value)
    raise AssertionError("MASK_COLORMAP not found in facexlib's helper")


def test_parse_class_selection_is_the_authors_without_hair() -> None:
    theirs = _facexlib_colormap()
    ours = [255 * int(v) for v in PASTE_CLASSES]
    assert [i for i in range(19) if ours[i] != theirs[i]] == [13, 15]   # hair, earring: theirs pastes them
    assert {i for i in range(19) if PASTE_CLASSES[i] == 1} == set(range(1, 13))   # skin .. lips
    for out in (0, 13, 14, 16, 17, 18):                         # background, hair, hat, necklace, neck, cloth
        assert select_classes(np.array([out]))[0] == 0.0
    labels = np.arange(19).reshape(1, 19).repeat(3, 0)
    np.testing.assert_array_equal(select_classes(labels)[0], PASTE_CLASSES)
    t = select_classes_torch(torch.from_numpy(labels))
    np.testing.assert_array_equal(t.numpy(), select_classes(labels))


def test_soften_torch_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    hard = np.stack([hard_face_mask(256), (rng.random((256, 256)) > 0.5).astype(np.float32)])
    for blur, erode in ((0.03, 0.02), (0.0, 0.05), (0.05, 0.0), (0.0, 0.0)):
        a = soften(hard, blur=blur, erode=erode)
        b = soften_torch(torch.from_numpy(hard), blur=blur, erode=erode).numpy()
        assert np.abs(a - b).max() * 255 < 2.0, (blur, erode)      # within 2 levels as alpha
        assert a[:, :3].max() == 0.0                               # the border is zeroed


def _black(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, -1.0)


def _ideal_labels(x: torch.Tensor) -> torch.Tensor:
    """An 'ideal' parser: skin (1) inside the template outline, hair (13) elsewhere."""
    inside = torch.from_numpy(hard_face_mask(x.shape[-1]) > 0.5)
    return torch.where(inside, 1, 13).expand(x.shape[0], -1, -1)


@pytest.fixture(scope="module")
def interview_frames(testdata):
    return [np.array(f) for f in cached_frames(str(testdata / "clips/lp_s18_interview_1280x720_audio.mp4"),
                                               None, 3)]


@pytest.mark.parametrize("mode", ["face", "parse", "box"])
def test_black_face_restorer_leaves_the_outside_alone(mode, interview_frames) -> None:
    """The issue's measurement: a restorer returning black; points of the crop outside the face keep their
    value exactly with the face and parse masks and change (by tens of levels) with the box."""
    cfg = RestoreConfig(paste=PasteConfig(mask=mode), model=ModelConfig(batch=4))
    parser = FaceParser(config=cfg.paste, labels=_ideal_labels) if mode == "parse" else None
    r = Restorer(cfg, restorer=_black, parser=parser)
    seen: list[np.ndarray] = []
    r.ops.warp = _recording(r.ops.warp, seen)
    out = list(r.restore_frames(iter(interview_frames)))
    assert len(out) == 3 and len(seen) == 3
    for src, dst, mats in zip(interview_frames, out, seen):
        (m,) = mats                                                   # one face in this clip
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        diff = np.abs(src.astype(int) - dst.astype(int)).max(axis=2)
        outside = [diff[int(round(y)), int(round(x))] for x, y in _to_frame(inv, OUTSIDE)]
        inside = [diff[int(round(y)), int(round(x))] for x, y in _to_frame(inv, INSIDE)]
        assert min(inside) > 40                                       # the face was pasted
        if mode == "box":
            assert min(outside) > 10
        else:
            assert max(outside) == 0, outside


def _recording(warp, seen):
    def wrapped(frame, matrices, *, crop_size):
        seen.append(np.asarray(matrices, np.float64).copy())
        return warp(frame, matrices, crop_size=crop_size)
    return wrapped


def _to_frame(inv: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ inv[:, :2].T + inv[:, 2]


def _brightness_parsenet(path) -> None:
    """A real ParseNet-512 checkpoint (the released format) whose weights make it a brightness classifier:
    every residual branch is zeroed (BN scale 0), the stem averages RGB into channel 0, the shortcuts pass
    channel 0 down and up (16-px cells), and the head says skin (1) for dark and hair (13) for bright."""
    from vidrestore.models.parsenet import ParseNet
    net = ParseNet()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for name, mod in net.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.fill_(1.0)
        net.encoder[0].conv2d.weight[0, :, 1, 1] = 1.0 / 3.0
        for block in list(net.encoder[1:]) + list(net.decoder):
            block.shortcut_func.conv2d.weight[0, 0, 1, 1] = 1.0
        head = net.out_mask_conv.conv2d
        head.bias.fill_(-10.0)
        head.weight[1, 0, 1, 1], head.bias[1] = -5.0, 0.0
        head.weight[13, 0, 1, 1], head.bias[13] = 5.0, 0.0
    torch.save(net.state_dict(), path)


@pytest.mark.slow
def test_parse_mode_with_a_parsenet_checkpoint_end_to_end(interview_frames, tmp_path) -> None:
    """--mask parse through the real checkpoint loader and the real ParseNet-512 forward: a restorer that
    paints the template face black and the rest white is parsed as skin/hair, and only the face is pasted."""
    path = tmp_path / "parsing_parsenet.pth"
    _brightness_parsenet(path)
    face = torch.from_numpy(hard_face_mask(512) > 0.5)

    def paint(x: torch.Tensor) -> torch.Tensor:
        return torch.where(face, -1.0, 1.0).expand_as(x).clone()
    cfg = RestoreConfig(paste=PasteConfig(mask="parse", parse_weights=str(path)))
    r = Restorer(cfg, restorer=paint)
    seen: list[np.ndarray] = []
    r.ops.warp = _recording(r.ops.warp, seen)
    (src,), (dst,) = interview_frames[:1], list(r.restore_frames(iter(interview_frames[:1])))
    inv = np.linalg.inv(np.vstack([seen[0][0], [0, 0, 1]]))[:2]
    diff = np.abs(src.astype(int) - dst.astype(int)).max(axis=2)
    assert max(diff[int(round(y)), int(round(x))] for x, y in _to_frame(inv, OUTSIDE)) == 0
    assert min(diff[int(round(y)), int(round(x))] for x, y in _to_frame(inv, INSIDE)) > 40
