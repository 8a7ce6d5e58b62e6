"""Weight releases and the cache: resolving names/paths, verified downloads from local servers only."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidrestore.errors import CheckpointError, WeightsUnavailable
from vidrestore.models import weights
from vidrestore.models.weights import KNOWN_WEIGHTS, WeightSpec


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIDRESTORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    src = tmp_path / "srv" / "GFPGANv1.4.pth"
    src.parent.mkdir()
    src.write_bytes(bytes(range(256)) * 4099)   # > 1 MiB: several chunks
    return src


@pytest.fixture
def http_server(payload: Path) -> Iterator[str]:
    """A quiet http.server on 127.0.0.1 serving the payload's folder; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(payload.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _use_spec(monkeypatch: pytest.MonkeyPatch, **changes) -> WeightSpec:
    spec = dataclasses.replace(KNOWN_WEIGHTS["GFPGANv1.4"], **changes)
    monkeypatch.setattr(weights, "KNOWN_WEIGHTS", {**KNOWN_WEIGHTS, "GFPGANv1.4": spec})
    return spec


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(home: Path) -> list[str]:
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_weights_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.weights_home() == home
    monkeypatch.delenv("VIDRESTORE_HOME")
    assert weights.weights_home() == Path.home() / ".cache" / "vidrestore"


def test_known_releases() -> None:
    assert {"GFPGANv1.3", "GFPGANv1.4", "parsenet"} <= set(KNOWN_WEIGHTS)
    v13, v14 = KNOWN_WEIGHTS["GFPGANv1.3"], KNOWN_WEIGHTS["GFPGANv1.4"]
    assert v13.url == "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth"
    assert v14.url == "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth"
    for spec in (v13, v14):
        assert spec.filename == f"{spec.name}.pth"
        assert spec.size == 348_632_874
    # the exact digests recorded for the release files (README table; see weights.py for the sources):
    # a typo or a swapped value here would make every real download fail its check
    assert v13.sha256 == "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70"
    assert v14.sha256 == "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for spec in (v13, v14):
        assert f"| `{spec.name}` | [{spec.filename}]({spec.url}) | `{spec.sha256}` |" in readme
    with pytest.raises(dataclasses.FrozenInstanceError):
        v14.url = "x"  # type: ignore[misc]


def test_resolve_existing_path_as_is(tmp_path: Path) -> None:
    f = tmp_path / "my weights.pth"
    f.write_bytes(b"x")
    assert weights.resolve_weights(str(f)) == f


def test_resolve_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.pth"
    with pytest.raises(CheckpointError, match="not found") as err:
        weights.resolve_weights(str(missing))
    assert err.value.path == str(missing)
    with pytest.raises(CheckpointError, match="not found"):
        weights.resolve_weights("custom_model.pth")


def test_resolve_unknown_name_lists_known() -> None:
    with pytest.raises(CheckpointError) as err:
        weights.resolve_weights("GFPGANv9")
    assert not isinstance(err.value, WeightsUnavailable)
    assert "GFPGANv1.3" in str(err.value) and "GFPGANv1.4" in str(err.value)


def test_resolve_cached_release_without_network(home: Path) -> None:
    cached = home / "weights" / "GFPGANv1.4.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    assert weights.resolve_weights("GFPGANv1.4") == cached
    assert weights.resolve_weights("gfpganv1.4", download=False) == cached


def test_resolve_not_cached_without_download(home: Path) -> None:
    with pytest.raises(WeightsUnavailable) as err:
        weights.resolve_weights("GFPGANv1.3", download=False)
    msg = str(err.value)
    assert KNOWN_WEIGHTS["GFPGANv1.3"].url in msg
    assert str(home / "weights" / "GFPGANv1.3.pth") in msg and "--weights PATH" in msg


def test_offline_download_says_what_to_fetch_and_where(home: Path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/GFPGANv1.4.pth"
    _use_spec(monkeypatch, url=url)
    with pytest.raises(WeightsUnavailable) as err:
        weights.resolve_weights("GFPGANv1.4")
    msg = str(err.value)
    assert url in msg
    assert str(home / "weights" / "GFPGANv1.4.pth") in msg
    assert "--weights PATH" in msg
    assert _leftovers(home) == []


def test_download_verifies_and_installs(home: Path, payload: Path, http_server: str, monkeypatch) -> None:
    data = payload.read_bytes()
    _use_spec(monkeypatch, url=f"{http_server}/{payload.name}", size=len(data),
              sha256=hashlib.sha256(data).hexdigest())
    calls: list[tuple[int, int | None]] = []
    path = weights.download_weights("GFPGANv1.4", progress=lambda done, total: calls.append((done, total)))
    assert path == home / "weights" / "GFPGANv1.4.pth"
    assert path.read_bytes() == data
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    assert _leftovers(home) == ["GFPGANv1.4.pth"]
    assert weights.list_cached() == [("GFPGANv1.4", path, len(data))]
    # cached: no second download unless forced
    path.write_bytes(b"stale")
    assert weights.download_weights("GFPGANv1.4").read_bytes() == b"stale"
    assert weights.download_weights("GFPGANv1.4", force=True).read_bytes() == data


def test_checksum_mismatch_keeps_nothing(home: Path, payload: Path, monkeypatch) -> None:
    data = payload.read_bytes()
    _use_spec(monkeypatch, url=payload.as_uri(), size=len(data), sha256="0" * 64)
    with pytest.raises(WeightsUnavailable, match="checksum mismatch"):
        weights.download_weights("GFPGANv1.4")
    assert _leftovers(home) == []


def test_size_mismatch_keeps_nothing(home: Path, payload: Path, http_server: str, monkeypatch) -> None:
    _use_spec(monkeypatch, url=f"{http_server}/{payload.name}", size=123, sha256=None)
    with pytest.raises(WeightsUnavailable, match="expected 123"):
        weights.download_weights("GFPGANv1.4")
    assert _leftovers(home) == []


def test_unknown_checksum_is_not_checked(home: Path, payload: Path, monkeypatch) -> None:
    _use_spec(monkeypatch, url=payload.as_uri(), size=None, sha256=None)
    assert weights.download_weights("GFPGANv1.4").read_bytes() == payload.read_bytes()


def test_http_404_is_unavailable(home: Path, http_server: str, monkeypatch) -> None:
    _use_spec(monkeypatch, url=f"{http_server}/missing.pth")
    with pytest.raises(WeightsUnavailable, match="404"):
        weights.download_weights("GFPGANv1.4")
    assert _leftovers(home) == []


def test_list_cached(home: Path) -> None:
    assert weights.list_cached() == []
    folder = home / "weights"
    folder.mkdir(parents=True)
    (folder / "GFPGANv1.3.pth").write_bytes(b"abc")
    (folder / "mine.pth").write_bytes(b"abcd")
    (folder / ".GFPGANv1.4.pth.x.part").write_bytes(b"partial")
    assert weights.list_cached() == [("GFPGANv1.3", folder / "GFPGANv1.3.pth", 3),
                                     ("mine", folder / "mine.pth", 4)]


def test_realesrgan_releases_are_registered() -> None:
    """The three background upsamplers: the authors' release URLs, sizes and SHA-256 as recorded
    independently by several projects (see vidrestore/models/weights.py)."""
    x2, x4, v3 = (KNOWN_WEIGHTS[n] for n in ("RealESRGAN_x2plus", "RealESRGAN_x4plus", "realesr-general-x4v3"))
    assert x2.url == "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"
    assert x4.url == "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
    assert v3.url == "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth"
    assert (x2.size, x4.size, v3.size) == (67_061_725, 67_040_989, 4_885_111)
    for spec in (x2, x4, v3):
        assert spec.filename == spec.url.rsplit("/", 1)[1] and len(spec.sha256) == 64


def test_realesrgan_download_by_name(home: Path, payload: Path, http_server: str, monkeypatch) -> None:
    """`vidrestore weights download realesr-general-x4v3` fetches, verifies and installs; offline it
    names the URL and the path."""
    from vidrestore import cli

    data = payload.read_bytes()
    spec = dataclasses.replace(KNOWN_WEIGHTS["realesr-general-x4v3"], url=f"{http_server}/{payload.name}",
                               size=len(data), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(weights, "KNOWN_WEIGHTS", {**KNOWN_WEIGHTS, "realesr-general-x4v3": spec})
    assert cli.run(["weights", "download", "realesr-general-x4v3"]) == 0
    assert (home / "weights" / "realesr-general-x4v3.pth").read_bytes() == data
    with pytest.raises(WeightsUnavailable) as err:
        weights.resolve_weights("RealESRGAN_x2plus", download=False)
    assert KNOWN_WEIGHTS["RealESRGAN_x2plus"].url in str(err.value)
    assert str(home / "weights" / "RealESRGAN_x2plus.pth") in str(err.value)
