"""Shared test configuration: where the test media live, the slow/needs_cuda markers."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_testdata() -> Path | None:
    candidates = [os.environ.get("VIDRESTORE_TESTDATA"), REPO.parent / "shared" / "testdata",
                  REPO / "shared" / "testdata"]
    for c in candidates:
        if c and (Path(c) / "MANIFEST.json").is_file():
            return Path(c)
    return None


TESTDATA = _find_testdata()
CI = os.environ.get("CI", "").lower() == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--runslow") or os.environ.get("VIDRESTORE_SLOW") == "1"
    require_cuda = os.environ.get("VIDRESTORE_REQUIRE_CUDA") == "1"
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    skip_slow = pytest.mark.skip(reason="slow: use --runslow or VIDRESTORE_SLOW=1")
    skip_cuda = pytest.mark.skip(reason="needs_cuda: no CUDA device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "needs_cuda" in item.keywords and not has_cuda and not require_cuda:
            item.add_marker(skip_cuda)  # with VIDRESTORE_REQUIRE_CUDA=1 setup fails instead


def pytest_runtest_setup(item: pytest.Item) -> None:
    if ("needs_cuda" in item.keywords and os.environ.get("VIDRESTORE_REQUIRE_CUDA") == "1"):
        import torch
        if not torch.cuda.is_available():
            pytest.fail("VIDRESTORE_REQUIRE_CUDA=1 but torch.cuda.is_available() is False")


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared media corpus (../shared/testdata). Missing: skipped locally, an error in CI."""
    from tests.support.require import require
    return require(TESTDATA, "test media not found: set VIDRESTORE_TESTDATA or put shared/testdata "
                             "beside the repo")


@pytest.fixture(scope="session")
def manifest(testdata: Path) -> dict[str, dict]:
    """MANIFEST.json entries by relative path."""
    data = json.loads((testdata / "MANIFEST.json").read_text())
    return {f["path"]: f for f in data["files"]}


@pytest.fixture(scope="session")
def gfpgan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised 512 px GFP-GAN checkpoint in the official {'params_ema': ...} format
    (realistic weights, see tests/support/checkpoints.py), built once per session."""
    from tests.support.checkpoints import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("gfpgan") / "gfpgan_random_512.pth", 512, seed=0)


@pytest.fixture(scope="session")
def small_gfpgan_64():
    """The small 64 px GFP-GAN of tests/support/small_gfpgan.py, built once per session (read-only)."""
    from tests.support.small_gfpgan import small_gfpgan
    return small_gfpgan(64)


@pytest.fixture(scope="session")
def small_gfpgan_onnx(small_gfpgan_64, tmp_path_factory) -> Path:
    """``small_gfpgan_64`` exported once per session to FP32 ONNX (dynamic batch); do not write beside it."""
    from engines.export_onnx import export_onnx
    return export_onnx(small_gfpgan_64, tmp_path_factory.mktemp("small_onnx") / "small.onnx")
