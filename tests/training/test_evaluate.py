"""training/evaluate.py end to end on real face images: identical folders give SSIM 1 and PSNR inf (the
best), LPIPS/LMD 0 (Deg: tests/training/metrics/test_identity.py); a degraded folder scores worse on every metric; NIQE per image equals the niqe
module; bad input and output give one line and the documented exit code; the JSON is written atomically."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from training.evaluate import main
from training.metrics import niqe as N
from tests.support.basicsr_ref import sdist_member

NAMES = ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png")


@pytest.fixture(scope="module")
def folders(testdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    gt, same, worse = root / "gt", root / "same", root / "worse"
    for d in (gt, same, worse):
        d.mkdir()
    for name in NAMES:
        img = cv2.resize(cv2.imread(str(testdata / "images" / name)), (256, 256), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(gt / name), img)
        cv2.imwrite(str(same / name), img)
        blurred = cv2.GaussianBlur(img, (0, 0), 2.5)
        cv2.imwrite(str(worse / name.replace(".png", ".jpg")), blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])
    import torchvision
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), root / "alexnet.pth")
    (root / "niqe.npz").write_bytes(sdist_member("metrics/niqe_pris_params.npz"))
    return root


def _args(root, restored, out, metrics="psnr,ssim,lpips,niqe,lmd"):
    return ["--gt", str(root / "gt"), "--restored", str(root / restored), "--metrics", metrics,
            "--json", str(out), "--alexnet", str(root / "alexnet.pth"), "--arcface", "random",
            "--niqe-params", str(root / "niqe.npz")]


def test_identical_folders_score_best_and_degraded_worse(folders, tmp_path, capsys):
    torch.manual_seed(0)
    assert main(_args(folders, "same", tmp_path / "same.json")) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    m = same["metrics"]
    assert same["count"] == 2 and m["psnr"] == "inf" and m["ssim"] == pytest.approx(1.0)
    assert m["lpips"] == pytest.approx(0, abs=1e-7) and m["lmd"] == 0
    assert main(_args(folders, "worse", tmp_path / "worse.json")) == 0
    worse = json.loads((tmp_path / "worse.json").read_text())["metrics"]
    assert 15 < worse["psnr"] < 45 and worse["ssim"] < 0.99
    assert worse["lpips"] > 0.001 and worse["lmd"] > 0
    assert worse["niqe"] > m["niqe"]                               # blur + JPEG look less natural
    params = N.load_params(folders / "niqe.npz")
    img = cv2.imread(str(folders / "same" / NAMES[0]))[..., ::-1]
    assert same["per_image"][NAMES[0][:-4]]["niqe"] == pytest.approx(N.niqe(img, params))
    assert "2 images: psnr=inf" in capsys.readouterr().out


def test_bad_input_and_output(folders, tmp_path, capsys):
    assert main(_args(folders, "nope", tmp_path / "x.json")) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(_args(folders, "same", tmp_path / "x.json", metrics="psnr,bogus")) == 7
    assert main(_args(folders, "same", tmp_path / "no" / "such" / "x.json", metrics="psnr")) == 3
    assert not (tmp_path / "x.json").exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)
    # no cached weights and no path: the registry's offline message, exit 4
    import os
    os.environ["VIDRESTORE_HOME"] = str(tmp_path / "home")
    try:
        assert main(["--gt", str(folders / "gt"), "--restored", str(folders / "same"), "--metrics", "lpips"]) == 4
    finally:
        del os.environ["VIDRESTORE_HOME"]
    assert "vidrestore weights download alexnet" in capsys.readouterr().err
