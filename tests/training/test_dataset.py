"""training/dataset.py: aligned-face folders, component boxes, video frames (decord), data order."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.require import require_module
import torch

from training.config import DataConfig, DegradationConfig
from training.dataset import (FFHQ_TEMPLATE_512, DrawSampler, FaceDataset, ValidationSet, component_boxes,
                              components_from_landmarks, list_images, read_image)
from vidrestore.errors import ConfigError, InputError

FACES = ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png")


@pytest.fixture
def faces_dir(testdata, tmp_path) -> Path:
    d = tmp_path / "faces"
    d.mkdir()
    for name in FACES:
        (d / name).symlink_to(testdata / "images" / name)
    (d / "notes.txt").write_text("not an image")
    return d


def test_list_and_read(faces_dir, tmp_path):
    paths = list_images(faces_dir)
    assert [p.name for p in paths] == sorted(FACES)
    img = read_image(paths[0], 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(InputError, match="cannot read"):
        read_image(faces_dir / "notes.txt")


def test_samples_are_deterministic_per_draw(faces_dir):
    data = DataConfig(train_dir=str(faces_dir), template_components=True)
    ds = FaceDataset(data, DegradationConfig(), out_size=64, seed=3, need_components=True)
    assert len(ds) == 2
    a, b, c = ds[5], ds[5], ds[7]
    assert a["lq"].shape == a["gt"].shape == (3, 64, 64) and a["index"] == 1
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["loc_mouth"], b["loc_mouth"])
    assert not torch.equal(a["lq"], c["lq"])
    assert -1 <= float(a["gt"].min()) and float(a["gt"].max()) <= 1
    for part in ("loc_left_eye", "loc_right_eye", "loc_mouth"):
        x1, y1, x2, y2 = a[part].tolist()
        assert 0 < x1 < x2 < 64 and 0 < y1 < y2 < 64
    other = FaceDataset(data, DegradationConfig(), out_size=64, seed=4, need_components=True)
    assert not torch.equal(other[5]["lq"], a["lq"])


def test_component_boxes_follow_flips():
    comp = components_from_landmarks(FFHQ_TEMPLATE_512)
    assert comp["left_eye"][:2] == pytest.approx([192.98, 239.95]) and comp["mouth"][0] == pytest.approx(257.175)
    plain = component_boxes(comp, scale=0.25, width=128, hflip=False, eye_enlarge_ratio=1.0)
    half = comp["left_eye"][2] * 0.25
    torch.testing.assert_close(plain["loc_left_eye"], torch.tensor(
        [192.98 / 4 - half + 1, 239.95 / 4 - half + 1, 192.98 / 4 + half, 239.95 / 4 + half]))
    flip = component_boxes(comp, scale=0.25, width=128, hflip=True, eye_enlarge_ratio=1.4)
    # flipped: the right eye becomes the left one, mirrored (x -> width - x), enlarged 1.4x
    cx = 128 - 318.90 / 4
    h = comp["right_eye"][2] * 0.25 * 1.4
    torch.testing.assert_close(flip["loc_left_eye"], torch.tensor([cx - h + 1, 240.19 / 4 - h + 1, cx + h, 240.19 / 4 + h]))
    assert float(flip["loc_left_eye"][0]) < float(flip["loc_right_eye"][0])


def test_component_file_and_missing_entries(faces_dir, tmp_path):
    boxes = {Path(n).stem: {"left_eye": [190, 240, 18], "right_eye": [320, 240, 18], "mouth": [256, 370, 40]}
             for n in FACES}
    (tmp_path / "c.json").write_text(json.dumps(boxes))
    ds = FaceDataset(DataConfig(train_dir=str(faces_dir), component_file=str(tmp_path / "c.json"), use_hflip=False,
                                eye_enlarge_ratio=1.0), DegradationConfig(), out_size=128, seed=0, need_components=True)
    torch.testing.assert_close(ds[0]["loc_mouth"], torch.tensor([256 / 4 - 10 + 1, 370 / 4 - 10 + 1, 256 / 4 + 10, 370 / 4 + 10]))
    del boxes[Path(FACES[0]).stem]
    (tmp_path / "c.json").write_text(json.dumps(boxes))
    with pytest.raises(InputError, match="no component boxes"):
        FaceDataset(DataConfig(train_dir=str(faces_dir), component_file=str(tmp_path / "c.json")),
                    DegradationConfig(), out_size=64, seed=0, need_components=True)
    with pytest.raises(ConfigError, match="component"):
        FaceDataset(DataConfig(train_dir=str(faces_dir)), DegradationConfig(), out_size=64, seed=0,
                    need_components=True)


def test_draw_sampler_resumes_the_same_order():
    def take(s, n):
        it = iter(s)
        return [next(it) for _ in range(n)]
    full = take(DrawSampler(7, seed=1), 30)
    assert sorted(x % 7 for x in full[:7]) == list(range(7)) and full[:7] != list(range(7))
    assert sorted(full[7:14]) == list(range(7, 14))                          # epoch 1, its own permutation
    for start in (0, 3, 7, 12, 20):
        assert take(DrawSampler(7, seed=1, start=start), 30 - start) == full[start:]
    assert take(DrawSampler(7, seed=2), 7) != full[:7]


def test_dataloader_with_workers_matches_in_process(faces_dir):
    ds = FaceDataset(DataConfig(train_dir=str(faces_dir), template_components=True), DegradationConfig(),
                     out_size=32, seed=0, need_components=True)
    def batches(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=2, drop_last=True, num_workers=workers,
                                         sampler=DrawSampler(len(ds), seed=0, start=2))
        it = iter(dl)
        return [next(it) for _ in range(2)]
    a, b = batches(0), batches(2)
    for x, y in zip(a, b):
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["loc_left_eye"], y["loc_left_eye"])


def test_validation_set_is_fixed(faces_dir):
    vs = ValidationSet(DataConfig(val_dir=str(faces_dir)), DegradationConfig(), out_size=64)
    again = ValidationSet(DataConfig(val_dir=str(faces_dir)), DegradationConfig(), out_size=64)
    assert len(vs) == 2 and vs[0]["name"] == Path(sorted(FACES)[0]).stem
    assert torch.equal(vs[1]["lq"], again[1]["lq"])              # fixed degradations: same in a new set
    assert not torch.equal(vs[0]["lq"], vs[1]["lq"])
    assert float((vs[0]["lq"] - vs[0]["gt"]).abs().mean()) > 0.01


def test_video_frames_with_landmarks(testdata, tmp_path):
    require_module("decord")
    vdir, ldir = tmp_path / "videos", tmp_path / "lms"
    vdir.mkdir()
    ldir.mkdir()
    (vdir / "talk.mp4").symlink_to(testdata / "clips" / "lp_d0_talking_512.mp4")
    # landmarks = the template moved by a known similarity (scale 0.8, 10 degrees, shift)
    a = math.radians(10)
    m = 0.8 * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lm = FFHQ_TEMPLATE_512 @ m.T + np.array([40.0, 20.0])
    (ldir / "talk.json").write_text(json.dumps({"3": lm.tolist(), "40": lm.tolist()}))
    data = DataConfig(video_dir=str(vdir), video_landmarks_dir=str(ldir))
    ds = FaceDataset(data, DegradationConfig(), out_size=64, seed=0, need_components=True)
    assert len(ds) == 2
    img, comp = ds.videos.frame(0)
    assert img.shape == (512, 512, 3) and 0.05 < img.mean() < 0.95
    assert comp["left_eye"][:2] == pytest.approx(FFHQ_TEMPLATE_512[0], abs=0.05)   # aligned back onto the template
    s = ds[1]
    assert s["lq"].shape == (3, 64, 64) and "loc_mouth" in s
    import pickle
    clone = pickle.loads(pickle.dumps(ds))                                          # picklable for workers
    assert torch.equal(clone[1]["lq"], s["lq"])


def test_video_frames_without_landmarks(testdata, tmp_path):
    require_module("decord")
    vdir = tmp_path / "videos"
    vdir.mkdir()
    (vdir / "talk.mp4").symlink_to(testdata / "clips" / "lp_d0_talking_512.mp4")
    ds = FaceDataset(DataConfig(video_dir=str(vdir)), DegradationConfig(), out_size=32, seed=0)
    assert len(ds) == 78 and ds[77]["gt"].shape == (3, 32, 32)
