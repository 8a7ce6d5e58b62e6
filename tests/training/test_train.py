"""training/train.py: the command line (config + --set overrides, --print-config, errors, --iters, --resume auto)."""
from __future__ import annotations

from pathlib import Path

import cv2
import torch

from training.config import load_config
from training.train import main

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny_cpu.toml"


def test_print_config_applies_overrides(capsys, tmp_path):
    assert main(["--config", str(TINY), "--set", "losses.l1_weight=0.25", "--set", "model.out_size=128",
                 "--print-config"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "c.toml").write_text(text)
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.losses.l1_weight == 0.25 and cfg.model.out_size == 128 and cfg.model.narrow == 0.0625


def test_errors_are_one_line_and_non_zero(capsys):
    assert main(["--config", str(TINY), "--set", "losses.nope=1"]) == 7
    assert "unknown option(s) losses.nope" in capsys.readouterr().err
    assert main(["--config", str(TINY)]) == 7                                   # no data folder configured
    assert main(["--config", "/no/such.toml"]) == 7


def test_train_a_few_iterations_and_resume_auto(testdata, tmp_path, capsys):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png"):
        cv2.imwrite(str(faces / name), cv2.resize(cv2.imread(str(testdata / "images" / name)), (64, 64)))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["--config", str(TINY), "--set", f"data.train_dir={faces}", "--set", f"logging.out_dir={tmp_path / 'run'}"]
        assert main(args + ["--set", "logging.sample_every=2", "--iters", "2"]) == 0
        assert (tmp_path / "run" / "checkpoints" / "state_00000002.pt").is_file()
        grid = cv2.imread(str(tmp_path / "run" / "samples" / "train_00000002.png"))   # no val set: batch grid
        assert grid.shape == (2 * 64, 3 * 64, 3)
        assert main(args + ["--iters", "1", "--resume", "auto"]) == 0
        out = capsys.readouterr().out
        assert "from iteration 2" in out and "l_g_total=" in out
        assert (tmp_path / "run" / "checkpoints" / "state_00000003.pt").is_file()
        assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["train_00000002.png"]
        rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    finally:
        torch.set_num_threads(n)
