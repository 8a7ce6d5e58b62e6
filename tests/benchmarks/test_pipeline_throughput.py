"""benchmarks.pipeline_throughput: one in-process run gives plot.py-ready JSON with honest fields."""
from __future__ import annotations

import json

import pytest

from benchmarks import pipeline_throughput as pt
from benchmarks.plot import plot_all

STAGES = {"decode", "detect", "align", "restore", "paste", "encode"}


def test_peak_formula_and_variants():
    # 2 cores x 2.5 GHz x 2 FMA units x 8 FP32 lanes x 2 flops
    assert pt.fp32_peak_gflops(2, 2500.0) == pytest.approx(160.0)
    assert pt.parse_variants("onnxruntime:fp32, torch,onnxruntime:int8,identity") == [
        ("onnxruntime", "fp32"), ("torch", "fp32"), ("onnxruntime", "int8"), ("identity", "fp32")]
    mhz, source = pt.cpu_mhz()
    assert mhz > 0 and source


def test_make_clip_truncates_tiles_and_rescales(testdata, tmp_path):
    import av

    src = testdata / "clips" / "lp_d0_talking_512.mp4"
    tiled = pt.make_clip(src, tmp_path / "t.mp4", frames=2, tile=4)
    scaled = pt.make_clip(src, tmp_path / "s.mp4", frames=3, size=(320, 240))
    with av.open(str(tiled)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (1024, 1024, 3)
    # the grid repeats the same real frame: top-left and bottom-right cells agree up to coding noise
    diff = abs(frames[0][:512, :512].astype(int) - frames[0][512:, 512:].astype(int)).mean()
    assert diff < 4.0
    with av.open(str(scaled)) as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (320, 240)


def test_main_identity_json_and_plot(testdata, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDRESTORE_TESTDATA", str(testdata))
    out = tmp_path / "pipeline.json"
    data = pt.main(["--frames", "2", "--variants", "identity,nosuchbackend:fp32", "--no-reference",
                    "--json", str(out)])
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed["pipeline"] == saved["pipeline"] and saved["meta"]["written_to"] == str(out)
    (run,) = saved["pipeline"]
    assert run["backend"] == "identity" and run["device"] == "cpu" and run["frames"] == 2
    assert run["faces"] == 2                          # one face per frame in the talking head
    assert STAGES <= set(run["seconds"]) and run["seconds"]["total"] > 0
    assert run["fps"] == pytest.approx(2 / run["seconds"]["total"], rel=1e-6)
    assert run["gflops_per_s"] is None                # no network ran: no GFLOP/s claimed
    assert "nosuchbackend:fp32" in saved["skipped"]   # unknown backend: skipped with the reason
    meta = saved["meta"]
    assert meta["fp32_peak_gflops"] > 0 and len(meta["loadavg_start"]) == 3
    assert (meta["load_warning"] is None) == (meta["loadavg_start"][0] <= pt.LOAD_LIMIT)
    assert data["summary"][0]["label"] == "vidrestore identity"
    pngs = plot_all([str(out)], tmp_path / "plots")
    assert [p.name for p in pngs] == ["pipeline_stages.png"]


def test_profile_only_names_pipeline_functions(testdata, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDRESTORE_TESTDATA", str(testdata))
    data = pt.main(["--profile-only", "--profile-frames", "2", "--no-save"])
    prof = data["profile"]
    assert prof["frames"] == 2 and len(prof["top_tottime"]) == 15
    # functions from the worker threads are in the merged profile, not only the caller's thread
    assert "_restore_loop" in prof["tables"]["cumulative"] and "_run_chunk" in prof["tables"]["cumulative"]
    assert "acquire" not in prof["tables"]["tottime"]           # waiting between threads is not work
    assert "own s" in prof["tables"]["tottime"]


@pytest.mark.slow
def test_reference_and_onnxruntime_scaling(testdata, tmp_path, monkeypatch, capsys):
    """The real 512 model: reference loop vs onnxruntime, plus the scaling study (minutes)."""
    monkeypatch.setenv("VIDRESTORE_TESTDATA", str(testdata))
    out = tmp_path / "p.json"
    data = pt.main(["--frames", "1", "--variants", "onnxruntime:fp32", "--scaling", "--scaling-frames", "1",
                    "--face-counts", "1,2", "--scaling-batches", "1,2", "--resolutions", "480p",
                    "--json", str(out)])
    ref, ours = data["pipeline"]
    assert ref["faces"] == ours["faces"] == 1
    assert ours["gflops_per_s"] > 0 and "speedup_fps_ours_over_reference" in data["summary"][0]
    skip = {r["label"]: r for r in data["scaling"]["skip"]}
    assert all(r["faces_restored"] == 0 and r["seconds"].get("restore", 0.0) < 0.05 for r in skip.values())
    names = {p.name for p in plot_all([str(out)], tmp_path / "plots")}
    assert names == {"pipeline_stages.png", "scaling.png"}


def test_proposed_ops_match_current_bit_for_bit():
    import numpy as np
    import torch

    from benchmarks.scaling import proposed_cpu_ops
    from vidrestore.faces.ops import CpuImageOps

    cur, new = CpuImageOps(), proposed_cpu_ops()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert torch.equal(cur.to_input(crops), new.to_input(crops))
    y = torch.from_numpy(rng.normal(0.0, 0.8, (2, 3, 64, 64)).astype(np.float32))   # beyond [-1, 1] too
    assert np.array_equal(cur.from_output(y), new.from_output(y))


def test_ab_fixes_reports_both_sides(testdata, tmp_path):
    from benchmarks.scaling import ab_fixes

    out = ab_fixes(testdata, tmp_path, frames=2, sizes=("480p",), repeats=1)
    (row,) = out["rows"]
    assert row["current"]["restore"] > 0 and row["proposed"]["restore"] > 0
    assert row["current"]["wall"] > 0 and "480p" in out["lines"][0]


def test_a_broken_variant_is_recorded_and_the_others_still_run(testdata, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDRESTORE_TESTDATA", str(testdata))
    bad = tmp_path / "not_a_checkpoint.pth"
    bad.write_bytes(b"not a checkpoint")
    data = pt.main(["--frames", "1", "--variants", "torch:fp32,torch:fp16,identity", "--no-reference",
                    "--weights", str(bad), "--no-save"])
    assert "torch:fp32" in data["failed"] and "CheckpointError" in data["failed"]["torch:fp32"]
    assert "torch:fp16" in data["skipped"] or "torch:fp16" in data["failed"]
    assert [r["backend"] for r in data["pipeline"]] == ["identity"]
    assert "FAILED torch:fp32" in capsys.readouterr().err


def test_helpers_do_not_import_pipeline_throughput():
    """pipeline_throughput imports scaling/pipeline_runs/startup, never the reverse (no import cycle)."""
    import ast

    from tests.conftest import REPO
    for name in ("pipeline_runs", "scaling", "startup"):
        tree = ast.parse((REPO / "benchmarks" / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.endswith("pipeline_throughput")}, name
