"""Several inputs from the command line, one process (no Ray): outputs named after the inputs, one
broken input reported while the others finish, non-zero exit."""
from __future__ import annotations

import json
import shutil

from vidrestore.cli import run
from vidrestore.scale.runner import output_pairs


def test_folder_and_files_to_a_folder_one_broken(testdata, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(testdata / "images" / "gfpgan_cropped_Adele_512.png", src / "adele.png")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 4096)
    out = tmp_path / "out"
    rc = run([str(tmp_path / "broken.mp4"), str(testdata / "images" / "facexlib_test.jpg"),
              str(src / "adele.png"), "-o", str(out), "--restorer", "identity", "--report",
              str(tmp_path / "r.json")])
    assert rc == 2
    assert sorted(p.name for p in out.iterdir()) == ["adele.png", "facexlib_test.jpg"]
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "FAILED" in err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["failures"] == [str(tmp_path / "broken.mp4")]
    assert [r["ok"] for r in rep["inputs"]] == [False, True, True]


def test_output_names_for_a_folder(tmp_path):
    (tmp_path / "a.mpg").write_bytes(b"x")      # MPEG-PS is not an output format: a.mp4, taken
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mov").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    pairs = output_pairs([tmp_path], tmp_path / "out")
    assert [(i.name, o.name) for i, o in pairs] == [("a.mp4", "a.mp4"), ("a.mpg", "a_mpg.mp4"),
                                                         ("b.mov", "b.mov")]
