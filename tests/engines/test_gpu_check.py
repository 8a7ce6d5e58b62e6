"""gpu_engine_check runs end to end on whatever this machine has and returns JSON-able numbers."""
from __future__ import annotations

import json

from engines.gpu_check import gpu_engine_check, load_faces, psnr
from tests.support.small_gfpgan import small_checkpoint


def test_gpu_engine_check_on_this_machine(tmp_path, testdata):
    ckpt = small_checkpoint(tmp_path / "w.pth")
    report = gpu_engine_check(ckpt, tmp_path / "out", batch=2, testdata=testdata)
    assert json.loads((tmp_path / "out" / "gpu_engine_check.json").read_text()) == json.loads(
        json.dumps(report, default=str))
    assert report["export"]["fp32"]["bytes"] > 0 and report["export"]["fp16"]["bytes"] > 0
    cpu = report["runs"]["onnxruntime_cpu_fp32"]
    assert "error" not in cpu and cpu["faces_per_s"] > 0 and cpu["max_abs_vs_torch_fp32"] <= 2e-3
    trt = report["runs"].get("tensorrt_fp16", {})
    assert "error" not in trt
    if "skipped" in trt:
        assert trt["skipped"] == "tensorrt: not installed"


def test_faces_are_real_crops_and_psnr_behaves(testdata):
    faces = load_faces(3, size=64, testdata=testdata)
    assert faces.shape == (3, 3, 64, 64) and -1 <= float(faces.min()) < float(faces.max()) <= 1
    assert psnr(faces, faces) == float("inf")
    assert 10 < psnr(faces[:1], faces[1:2]) < 30      # two different people


def test_gpu_check_script_calls_the_cli_with_valid_flags(tmp_path, monkeypatch):
    """benchmarks/gpu_check.sh step 5: its engines.gpu_check command line parses and reaches the check
    with a checkpoint and a scratch output folder (it used to pass no flags: argparse exit 2)."""
    import re
    import shlex

    import engines.gpu_check as G
    from tests.conftest import REPO

    line = re.search(r"-m engines\.gpu_check(.*)$", (REPO / "benchmarks" / "gpu_check.sh").read_text(),
                     re.M).group(1)
    argv = shlex.split(line.replace('"$ENG_WORK"', str(tmp_path)))
    calls = {}
    monkeypatch.setattr(G, "random_weights", lambda folder: calls.setdefault("made_in", folder) / "w.pth")
    monkeypatch.setattr(G, "gpu_engine_check", lambda w, out, **kw: calls.update(w=w, out=out, kw=kw) or {})
    assert G.main(argv) == 0
    assert calls["made_in"] == tmp_path and calls["w"] == tmp_path / "w.pth" and calls["out"] == tmp_path
    assert calls["kw"]["include_cpu"] is False
