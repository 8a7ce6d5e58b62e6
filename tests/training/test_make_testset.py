"""training/make_testset.py: the CelebA-Test ranges, byte-identical output for one seed, different
for another, a refused non-empty output folder (exit 3) and a missing source (exit 2)."""
from __future__ import annotations

import hashlib
import json

import cv2

from training.make_testset import CELEBA_TEST, main


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_and_protocol(testdata, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png"):
        cv2.imwrite(str(src / name), cv2.imread(str(testdata / "images" / name)))
    args = ["--src", str(src), "--size", "128"]
    assert main(args + ["--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    assert main(args + ["--out", str(tmp_path / "c"), "--seed", "4"]) == 0
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b and a != c and len(a) == 5
    rec = json.loads((tmp_path / "a" / "degradations.json").read_text())["images"]
    for p in rec.values():
        assert 0.2 <= p["sigma"][0] <= 10 and 1 <= p["scale"] <= 8 and 0 <= p["noise"] <= 15
        assert 60 <= p["jpeg_quality"] <= 100
    assert CELEBA_TEST.color_jitter_prob == CELEBA_TEST.color_jitter_pt_prob == CELEBA_TEST.gray_prob == 0
    lq = cv2.imread(str(tmp_path / "a" / "lq" / "gfpgan_cropped_Adele_512.png"))
    assert lq.shape == (128, 128, 3)
    assert main(args + ["--out", str(tmp_path / "a"), "--seed", "3"]) == 3     # not empty: refused
    assert _digest(tmp_path / "a") == a
    assert main(["--src", str(tmp_path / "none"), "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "src"]
