"""Loading weights never runs pickled code: every torch.load in vidrestore/, engines/, training/ is
weights_only=True, and files whose unpickling would execute a command are refused with a
CheckpointError naming the file (the command does not run)."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vidrestore.errors import CheckpointError
from vidrestore.models import load_gfpgan


class _RunsCode:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_files(tmp_path: Path) -> list[tuple[Path, Path]]:
    """(file, marker) pairs: a torch zip checkpoint and a legacy raw pickle, both running code."""
    out = []
    zip_marker, raw_marker = tmp_path / "ran-zip", tmp_path / "ran-raw"
    z = tmp_path / "evil_zip.pth"
    torch.save({"params_ema": {"conv_body_first.weight": torch.zeros(1)}, "x": _RunsCode(zip_marker)}, z)
    out.append((z, zip_marker))
    r = tmp_path / "evil_raw.pth"
    r.write_bytes(pickle.dumps({"params_ema": _RunsCode(raw_marker)}, protocol=2))
    out.append((r, raw_marker))
    return out


def test_the_evil_files_would_run_code(tmp_path):
    """The fixture is real: an unsafe load does run the command."""
    for path, marker in _evil_files(tmp_path):
        try:
            torch.load(path, weights_only=False)
        except RuntimeError:       # the raw pickle is not a torch file, but it was unpickled first
            pass
        assert marker.exists()


def test_load_gfpgan_refuses_code(tmp_path):
    for path, marker in _evil_files(tmp_path):
        with pytest.raises(CheckpointError) as e:
            load_gfpgan(path)
        assert e.value.path == str(path) and path.name in str(e.value)
        assert not marker.exists()


def test_training_loads_refuse_code(tmp_path):
    from training.dataset import convert_authors_components
    from training.export import export_checkpoint
    from training.pretrained import load_torch
    for path, marker in _evil_files(tmp_path):
        for load in (lambda p: load_torch(p, what="checkpoint"),
                     lambda p: export_checkpoint(p, tmp_path / "o.pth"),
                     lambda p: convert_authors_components(p, tmp_path / "c.json", tmp_path)):
            with pytest.raises(CheckpointError) as e:
                load(path)
            assert path.name in str(e.value)
            assert not marker.exists()


def test_authors_component_file_still_loads(tmp_path):
    """The authors' component file holds numpy arrays: admitted by the safe load."""
    from training.dataset import convert_authors_components
    parts = {"left_eye": np.array([10.0, 20.0, 5.0]), "right_eye": np.array([30.0, 20.0, 5.0]),
             "mouth": np.array([20.0, 40.0, 8.0], np.float32)}
    pth = tmp_path / "FFHQ_eye_mouth_landmarks_512.pth"
    torch.save({"00000000": parts}, pth)
    images = tmp_path / "imgs"
    images.mkdir()
    import cv2
    cv2.imwrite(str(images / "00000.png"), np.zeros((8, 8, 3), np.uint8))
    assert convert_authors_components(pth, tmp_path / "c.json", images) == 1


def test_every_torch_load_is_weights_only():
    calls = []
    for folder in ("vidrestore", "engines", "training"):
        for py in (REPO / folder).rglob("*.py"):
            text = py.read_text()
            for m in re.finditer(r"torch\.load\((.*?)\)\s*$", text, re.M):
                calls.append((py.relative_to(REPO), m.group(1)))
    assert calls, "no torch.load found: the pattern is wrong"
    unsafe = [(f, a) for f, a in calls if "weights_only=True" not in a]
    assert not unsafe, unsafe
