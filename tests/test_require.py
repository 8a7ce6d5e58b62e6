"""tests/support/require.py: a missing dependency skips locally and fails under CI=true; GPU-only
ones fail only under VIDRESTORE_REQUIRE_CUDA=1."""
from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.support.require import require, require_module


@pytest.mark.parametrize("env,gpu,outcome", [
    ({}, False, Skipped), ({"CI": "true"}, False, Failed), ({"VIDRESTORE_REQUIRE_CUDA": "1"}, False, Failed),
    ({"CI": "true"}, True, Skipped), ({"VIDRESTORE_REQUIRE_CUDA": "1"}, True, Failed)])
def test_missing_dependency(env, gpu, outcome, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("VIDRESTORE_REQUIRE_CUDA", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(outcome, match="no_such_module_xyz"):
        require_module("no_such_module_xyz", gpu=gpu)
    assert require("here", "present") == "here"
    assert require_module("json").dumps([1]) == "[1]"
