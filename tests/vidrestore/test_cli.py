"""The command line as a user runs it: a real subprocess, real files, exit codes and messages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vidrestore import __version__
from vidrestore.cli import run


def vidrestore(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "vidrestore", *args], capture_output=True,
                          text=True, timeout=timeout, env=e, cwd=REPO)


def test_version():
    p = vidrestore("--version")
    assert p.returncode == 0 and __version__ in p.stdout


def test_identity_run_writes_output_and_report(testdata, tmp_path):
    out, rep = tmp_path / "o.mp4", tmp_path / "r.json"
    p = vidrestore(str(testdata / "clips/lp_d10_talking_512_audio.mp4"), "-o", str(out),
                   "--restorer", "identity", "--preset", "ultrafast", "--report", str(rep))
    assert p.returncode == 0, p.stderr
    assert out.exists()
    data = json.loads(rep.read_text())
    assert data["frames_written"] == 150 and data["backend"]["name"] == "identity"
    assert data["input"]["audio"] and data["output_info"]["audio"]
    assert "fps" in p.stderr and "150 frames written" in p.stderr


@pytest.mark.parametrize("rel", ["edge/empty_0byte.mp4", "edge/truncated_60pct_moov_at_end.mp4",
                                 "edge/audio_only.m4a"])
def test_broken_input_one_line_error(rel, testdata, tmp_path):
    out = tmp_path / "o.mp4"
    p = vidrestore(str(testdata / rel), "-o", str(out), "--restorer", "identity")
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    assert Path(rel).name in lines[0] and lines[0].startswith("vidrestore: error:")
    assert list(tmp_path.iterdir()) == []


def test_missing_input(tmp_path):
    code = run([str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"), "--restorer", "identity"])
    assert code == 2


def test_refuses_existing_output_without_y(testdata, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"x")
    code = run([str(testdata / "clips/lp_d0_talking_512.mp4"), "-o", str(out), "--restorer", "identity"])
    assert code == 3 and out.read_bytes() == b"x"


def test_bad_option_value(testdata, tmp_path, capsys):
    code = run([str(testdata / "clips/lp_d0_talking_512.mp4"), "-o", str(tmp_path / "o.mp4"),
                "--strength", "1.5"])
    assert code == 7 and "--strength" in capsys.readouterr().err


def test_cuda_without_gpu_is_clear(testdata, tmp_path, capsys, gfpgan_checkpoint):
    import torch
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    code = run([str(testdata / "clips/lp_d0_talking_512.mp4"), "-o", str(tmp_path / "o.mp4"),
                "--weights", str(gfpgan_checkpoint), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 5 and "cuda" in err.lower() and not (tmp_path / "o.mp4").exists()


def test_weights_list(tmp_path):
    p = vidrestore("weights", "list", env={"VIDRESTORE_HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "GFPGANv1.3" in p.stdout and "GFPGANv1.4" in p.stdout and "not cached" in p.stdout
    # every network of the project is in the one registry: upsamplers, face parsing, evaluation metrics
    for name in ("RealESRGAN_x4plus", "parsenet", "alexnet", "inception_fid", "niqe_pris_params"):
        assert name in p.stdout


def test_weights_download_offline_names_the_file_for_a_metric_network(tmp_path):
    p = vidrestore("weights", "download", "alexnet",
                   env={"VIDRESTORE_HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert p.returncode == 4 and p.stderr.count("\n") == 1, p.stderr
    assert "alexnet-owt-7be5be79.pth" in p.stderr and "--alexnet" in p.stderr


def test_mask_and_colour_match_options_end_to_end(testdata, tmp_path):
    """--mask face --color-match lab through the real CLI on a real clip: written, recorded in the report
    and the summary; the identity restorer with a colour match keeps the video close to the input."""
    src = testdata / "edge/png_rgba_face.mov"                     # 15 frames, 256x256, one face
    out, rep = tmp_path / "o.mp4", tmp_path / "r.json"
    p = vidrestore(str(src), "-o", str(out), "--restorer", "identity", "--preset", "ultrafast",
                   "--mask", "face", "--mask-blur", "0.04", "--mask-erode", "0.01", "--color-match", "lab",
                   "--report", str(rep))
    assert p.returncode == 0, p.stderr
    data = json.loads(rep.read_text())
    assert data["paste_mask"] == "face" and data["color_match"] == "lab"
    assert data["frames_written"] == 15 and data["faces_restored"] >= 14
    assert "paste mask face, colour match lab" in p.stderr
    import av
    import numpy as np
    with av.open(str(src)) as a, av.open(str(out)) as b:
        x = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        y = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert 10 * np.log10(255 ** 2 / np.mean((x - y) ** 2)) > 30


def test_mask_options_are_validated_and_parse_weights_missing_is_exit_4(testdata, tmp_path, capsys):
    src = str(testdata / "clips/lp_d0_talking_512.mp4")
    assert run([src, "-o", str(tmp_path / "o.mp4"), "--mask-blur", "0.5"]) == 7
    assert "--mask-blur" in capsys.readouterr().err
    missing = tmp_path / "parsing_parsenet.pth"
    code = run([src, "-o", str(tmp_path / "o.mp4"), "--restorer", "identity", "--mask", "parse",
                "--parse-weights", str(missing)])
    err = capsys.readouterr().err
    assert code == 4 and str(missing) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()
