"""benchmarks.plot draws the charts its JSON sections allow, and only those."""
from __future__ import annotations

import json

import pytest

from benchmarks.plot import latest_per_label, load_results, main, model_row, plot_all
from vidrestore.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STAGES = {"decode": 0.02, "detect": 0.5, "align": 0.02, "restore": 9.9, "paste": 0.05, "encode": 0.03}


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def results(tmp_path) -> list[str]:
    reference = {"pipeline": [{"label": "reference", "frames": 3, "seconds": {**STAGES, "total": 10.52},
                               "fps": 3 / 10.52}]}
    ours = {
        "pipeline": {"label": "ours", "backend": "tensorrt", "precision": "fp16", "frames": 100,
                     "seconds": {"decode": 0.2, "detect": 0.3, "track": 0.01, "restore": 0.6, "paste": 0.1,
                                 "encode": 0.3, "total": 1.2}},
        "model": [{"backend": b, "precision": p, "batch": n, "faces_per_s": f * n ** 0.5}
                  for b, p, f in (("torch", "fp32", 20.0), ("tensorrt", "fp16", 150.0)) for n in (1, 2, 4, 8)],
        "scaling": {
            "faces": [{"label": "ours", "faces_per_frame": n, "fps": 80.0 / n} for n in (1, 2, 4, 8)],
            "resolution": [{"label": "ours", "resolution": r, "fps": f}
                           for r, f in (("4K", 20.0), ("480p", 90.0), ("1080p", 50.0), ("720p", 70.0))],
        },
    }
    return [_write(tmp_path / "reference.json", reference), _write(tmp_path / "ours.json", ours)]


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 5000 and data.startswith(PNG_MAGIC)


def test_all_charts_written(results, tmp_path):
    out = tmp_path / "plots"
    written = main([*results, "--out", str(out)])
    assert sorted(p.name for p in written) == ["model_throughput.png", "pipeline_stages.png", "scaling.png"]
    assert all(_is_png(p) for p in written)


def test_merges_sections_and_labels(results):
    data = load_results(results)
    assert [r["label"] for r in data["pipeline"]] == ["reference", "ours"]
    assert len(data["model"]) == 8
    assert len(data["scaling"]["faces"]) == 4 and data["scaling"]["resolution"][0]["label"] == "ours"


def test_a_later_run_of_the_same_label_replaces_the_earlier_one():
    runs = [{"label": "ref", "fps": 1.0}, {"label": "ours", "backend": "onnxruntime", "fps": 2.0},
            {"label": "ours", "backend": "onnxruntime", "fps": 3.0}, {"label": "ours", "backend": "torch", "fps": 4.0}]
    assert [r["fps"] for r in latest_per_label(runs)] == [1.0, 3.0, 4.0]


def test_model_throughput_results_become_model_rows(tmp_path):
    mt = {"benchmark": "model_throughput", "dtype": "float32", "device": "cpu",
          "results": [{"backend": "authors-torch", "batch": 1, "faces_per_s": 0.21, "times_s": [4.7]},
                      {"backend": "ort-int8", "batch": 4, "faces_per_s": 0.5}]}
    rows = load_results([_write(tmp_path / "mt.json", mt)])["model"]
    assert rows == [{"backend": "authors-torch", "precision": "fp32", "device": "cpu", "batch": 1, "faces_per_s": 0.21},
                    {"backend": "ort-int8", "precision": "int8", "device": "cpu", "batch": 4, "faces_per_s": 0.5}]
    assert model_row({"backend": "x"}, {})["precision"] == ""
    written = plot_all([_write(tmp_path / "mt.json", mt)], tmp_path / "p")
    assert [p.name for p in written] == ["model_throughput.png"] and _is_png(written[0])


def test_missing_sections_are_skipped(tmp_path):
    only_model = _write(tmp_path / "m.json", {"model": [{"backend": "torch", "precision": "fp32", "batch": 1,
                                                         "faces_per_s": 0.3}]})
    only_res = _write(tmp_path / "r.json", {"scaling": {"resolution": [{"resolution": "720p", "fps": 3.0}]}})
    empty = _write(tmp_path / "e.json", {})
    assert [p.name for p in plot_all([only_model, empty], tmp_path / "a")] == ["model_throughput.png"]
    written = plot_all([only_res], tmp_path / "b")
    assert [p.name for p in written] == ["scaling.png"] and _is_png(written[0])
    assert plot_all([empty], tmp_path / "c") == [] and not (tmp_path / "c").exists()


def test_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_results([bad])
