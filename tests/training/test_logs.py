"""training/logs.py: CSV columns, resume truncation, sample grids."""
from __future__ import annotations

import cv2
import pytest
import torch

from training.logs import RunLog, read_log, save_grid


def test_csv_and_resume(tmp_path):
    log = RunLog(tmp_path, ["a", "b"], tensorboard=False)
    for i in range(1, 5):
        log.write(i, {"a": i * 0.5} | ({"b": float(i)} if i % 2 == 0 else {}))
    with pytest.raises(KeyError):
        log.write(5, {"c": 1.0})
    log.close()
    rows = read_log(tmp_path / "log.csv")
    assert rows[0] == {"iter": 1.0, "a": 0.5} and rows[3] == {"iter": 4.0, "a": 2.0, "b": 4.0}
    log = RunLog(tmp_path, ["a", "b"], tensorboard=False, resume_at=2)         # a resumed run rewrites 3, 4
    log.write(3, {"a": 9.0})
    log.close()
    assert [r["iter"] for r in read_log(tmp_path / "log.csv")] == [1, 2, 3]
    assert read_log(tmp_path / "log.csv")[-1]["a"] == 9.0
    log = RunLog(tmp_path, ["other"], tensorboard=False)                      # other columns: old log kept aside
    log.close()
    assert (tmp_path / "log.old.csv").is_file()


def test_grid(tmp_path):
    red = -torch.ones(3, 8, 8)
    red[0] = 1
    blk = -torch.ones(3, 8, 8)
    p = save_grid(tmp_path / "s" / "g.png", [[red, blk], [blk, red]])
    img = cv2.imread(str(p))
    assert img.shape == (16, 16, 3)
    assert tuple(img[0, 0]) == (0, 0, 255) and tuple(img[0, 8]) == (0, 0, 0) and tuple(img[8, 8]) == (0, 0, 255)
