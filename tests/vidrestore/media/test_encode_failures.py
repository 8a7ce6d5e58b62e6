"""Unwritable outputs through the real CLI / pipeline: a full disk mid-write (RLIMIT_FSIZE, and a small
tmpfs where mounting one is possible), a read-only folder, a folder that disappears or is moved mid-run,
and two runs racing for one output name. Each: one line naming the output and the cause, exit 3,
nothing left behind under any name, the input untouched."""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig
from vidrestore.errors import OutputError
from vidrestore.pipeline import restore_video

SOURCE = "clips/lp_d10_talking_512_audio.mp4"   # cut to its first 24 frames (with audio), ~4 kB/frame out
ARGS = ("--restorer", "identity", "--preset", "ultrafast")
FAST = EncodeConfig(codec="libx264", crf=23, preset="ultrafast")


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory) -> Path:
    from tests.support.clips import remux_head
    return remux_head(testdata / SOURCE, tmp_path_factory.mktemp("clip") / "in.mp4", frames=24)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str, preexec=None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "vidrestore", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout, preexec_fn=preexec)


def one_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("vidrestore: error: ") and "Traceback" not in stderr
    return lines[0]


def _limit_file_size(nbytes: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def test_file_size_limit_mid_write(clip, tmp_path):
    src = clip
    before = sha(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.mp4"
    p = cli(str(src), "-o", str(out), *ARGS, preexec=_limit_file_size(40_000))
    assert p.returncode == 3, p.stderr
    line = one_line(p.stderr)
    assert str(out) in line and "file too large" in line, line
    assert list(out_dir.iterdir()) == []
    assert sha(src) == before


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (root, or a user namespace otherwise)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare not available: cannot mount a tmpfs")
    cmd = [unshare, "-m", "sh", "-c", script] if os.geteuid() == 0 else \
        [unshare, "-rm", "sh", "-c", script]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    if "MOUNT-FAILED" in p.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()[:200]}")
    return p


def _tmpfs_run(clip: Path, tmp_path: Path, mount_opts: str) -> tuple[subprocess.CompletedProcess, str, list[str]]:
    src = clip
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = mnt / "o.mp4"
    script = (f"mount -t tmpfs -o {mount_opts} tmpfs {mnt} 2>&1 || {{ echo MOUNT-FAILED; exit 0; }}; "
              f"{sys.executable} -m vidrestore {src} -o {out} {' '.join(ARGS)}; echo RC=$?; "
              f"echo LS; ls -A {mnt}")
    p = _in_namespace(script)
    rc = p.stdout.split("RC=")[1].split()[0]
    listing = p.stdout.split("LS\n", 1)[1].split()
    return p, rc, listing


def test_disk_full_on_small_tmpfs(clip, tmp_path):
    before = sha(clip)
    p, rc, listing = _tmpfs_run(clip, tmp_path, "size=40k")
    assert rc == "3", p.stderr
    line = one_line(p.stderr)
    assert "o.mp4" in line and "no space left on" in line, line
    assert listing == []
    assert sha(clip) == before


def test_read_only_folder(clip, tmp_path):
    if os.geteuid() != 0:            # permissions bind an ordinary user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        p = cli(str(clip), "-o", str(ro / "o.mp4"), *ARGS)
        rc, listing = str(p.returncode), [x.name for x in ro.iterdir()]
    else:                            # root ignores them: a read-only mount instead
        p, rc, listing = _tmpfs_run(clip, tmp_path, "ro,size=1m")
    assert rc == "3", p.stderr
    line = one_line(p.stderr)
    assert "o.mp4" in line and ("read-only" in line or "no permission" in line), line
    assert listing == []


class _AfterFrames:
    """progress callback doing something to the output folder after n frames were written."""

    def __init__(self, n: int, action) -> None:
        self.n, self.action, self.done = n, action, False

    def __call__(self, p) -> None:
        if p.frames_done >= self.n and not self.done:
            self.done = True
            self.action()


def test_output_folder_deleted_mid_run(clip, tmp_path):
    src = clip
    before = sha(src)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(OutputError, match="disappeared") as e:
        restore_video(src, folder / "o.mp4", RestoreConfig(model=ModelConfig(restorer="identity"), encode=FAST),
                      progress=_AfterFrames(5, lambda: shutil.rmtree(folder)))
    assert "o.mp4" in str(e.value) and e.value.exit_code == 3
    assert list(tmp_path.iterdir()) == []
    assert sha(src) == before


def test_output_folder_moved_mid_run(clip, tmp_path):
    folder, moved = tmp_path / "out", tmp_path / "moved"
    folder.mkdir()
    with pytest.raises(OutputError, match="disappeared"):
        restore_video(clip, folder / "o.mp4",
                      RestoreConfig(model=ModelConfig(restorer="identity"), encode=FAST),
                      progress=_AfterFrames(5, lambda: folder.rename(moved)))
    assert [p.name for p in tmp_path.iterdir()] == ["moved"]
    assert list(moved.iterdir()) == []       # the temp file was removed from where it now is


def test_concurrent_runs_into_one_folder(clip, tmp_path):
    """Two real processes at once: different names both succeed; the same name (no -y) -> exactly one
    wins, the other says the output exists, and no temp file is left."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    src = str(clip)

    def start(name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "vidrestore", src, "-o", str(tmp_path / name), *ARGS],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)

    procs = [start("same.mp4"), start("same.mp4"), start("other.mp4")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results[:2])
    assert codes == [0, 3], results
    loser = next(err for rc, err in results[:2] if rc == 3)
    assert "already exists" in one_line(loser)
    assert results[2][0] == 0, results[2][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4", "same.mp4"]
