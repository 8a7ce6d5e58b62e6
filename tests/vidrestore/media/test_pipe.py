"""Standard input/output through real processes: a real ffmpeg binary (imageio-ffmpeg) on both sides
of `python -m vidrestore - -o - -f ...` with the real detector; errors on a pipe."""
from __future__ import annotations

import os
import subprocess
import sys

import av
import pytest

from tests.conftest import REPO
from vidrestore.cli import run


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    import imageio_ffmpeg   # a test dependency (pinned in requirements/constraints.txt): never skipped
    return imageio_ffmpeg.get_ffmpeg_exe()


def _vidrestore(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidrestore", *args, "--restorer", "identity"]


ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _chain(*cmds, timeout=240):
    """Run cmds as a shell-free pipeline; returns [(rc, stderr)] per process."""
    procs, prev = [], None
    for k, cmd in enumerate(cmds):
        last = k == len(cmds) - 1
        p = subprocess.Popen(cmd, stdin=prev, stdout=None if last else subprocess.PIPE,
                             stderr=subprocess.PIPE, env=ENV)
        if prev is not None:
            prev.close()    # only the next process holds the read end
        prev = p.stdout
        procs.append(p)
    out = []
    for p in reversed(procs):
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err.decode(errors="replace")))
    return list(reversed(out))


def test_y4m_in_and_out_between_two_ffmpegs(ffmpeg, testdata, tmp_path):
    out = tmp_path / "out.mkv"
    res = _chain([ffmpeg, "-v", "error", "-i", str(testdata / "edge/fps60_face.mp4"), "-frames:v", "6",
                  "-f", "yuv4mpegpipe", "-"],
                 _vidrestore("-", "-o", "-", "-f", "y4m"),
                 [ffmpeg, "-v", "error", "-y", "-i", "-", "-c:v", "ffv1", str(out)])
    assert [rc for rc, _ in res] == [0, 0, 0], res
    assert "6 frames written" in res[1][1] and "1 tracks" in res[1][1]    # summary on stderr
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (512, 512) and sum(1 for _ in c.decode(video=0)) == 6
        assert round(float(s.average_rate)) == 60


def test_nut_with_audio_through_stdin_and_stdout(ffmpeg, testdata, tmp_path):
    out = tmp_path / "out.mkv"
    res = _chain([ffmpeg, "-v", "error", "-i", str(testdata / "clips/lp_d10_talking_512_audio.mp4"),
                  "-t", "0.32", "-c:v", "ffv1", "-c:a", "pcm_s16le", "-f", "nut", "-"],
                 _vidrestore("-", "-o", "-", "-f", "nut", "--codec", "ffv1"),
                 [ffmpeg, "-v", "error", "-y", "-i", "-", "-c", "copy", str(out)])
    assert [rc for rc, _ in res] == [0, 0, 0], res
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        kinds = [(p.stream.type, float((p.pts + p.duration) * p.time_base)) for p in c.demux() if p.size]
    with av.open(str(testdata / "clips/lp_d10_talking_512_audio.mp4")) as c:
        rate = float(c.streams.video[0].average_rate)
    assert sum(k == "video" for k, _ in kinds) == round(0.32 * rate)
    a_end = max(t for k, t in kinds if k == "audio")
    assert a_end == pytest.approx(0.32, abs=0.03)          # all the audio, carried from stdin


def test_garbage_on_stdin_is_one_line_exit_2(tmp_path):
    p = subprocess.run(_vidrestore("-", "-o", "-", "-f", "y4m"), input=b"this is not video" * 100,
                       capture_output=True, env=ENV, timeout=120)
    assert p.returncode == 2 and p.stdout == b""
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error: <stdin>:"), lines


def test_reader_hanging_up_ends_the_stream_with_a_nonzero_exit(testdata):
    p = subprocess.Popen(_vidrestore(str(testdata / "edge/fps60_face.mp4"), "-o", "-", "-f", "y4m", "-q"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    head = p.stdout.read(64)
    p.stdout.close()                                       # the next program stops reading
    _, err = p.communicate(timeout=240)
    assert head.startswith(b"YUV4MPEG2 W512 H512 F60:1")
    assert p.returncode == 6, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidrestore: error: <stdout>: ") and "Broken pipe" in lines[0]


@pytest.mark.parametrize("args", [["-o", "-"], ["-o", "x.mp4", "-f", "nut"]])
def test_pipe_option_errors(testdata, capsys, args):
    assert run([str(testdata / "edge/fps60_face.mp4"), *args, "--restorer", "identity"]) == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "-f" in err[0]


def test_pipe_input_gets_the_file_checks():
    """Standard input opens through the same stream checks as a file: a frame size over the limit is
    one InputError naming <stdin> (read from a real OS pipe, a hand-made 64x64 y4m)."""
    from vidrestore.config import DecodeConfig
    from vidrestore.errors import InputError
    from vidrestore.media.pipe import PipeReader

    def y4m() -> bytes:
        return b"YUV4MPEG2 W64 H64 F25:1 Ip A1:1 C420jpeg\n" + (b"FRAME\n" + bytes(64 * 64 * 3 // 2)) * 2

    for max_pixels, ok in ((64 * 64, True), (64 * 64 - 1, False)):
        r, w = os.pipe()
        os.write(w, y4m())
        os.close(w)
        try:
            if ok:
                reader = PipeReader(fd=r, config=DecodeConfig(max_pixels=max_pixels))
                assert (reader.info.width, reader.info.height) == (64, 64)
                reader.close()
            else:
                with pytest.raises(InputError, match="over the limit") as info:
                    PipeReader(fd=r, config=DecodeConfig(max_pixels=max_pixels))
                assert "<fd" in str(info.value) or "<stdin>" in str(info.value)
        finally:
            os.close(r)
