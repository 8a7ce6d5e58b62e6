"""Engine cache: keys, records, invalidation, atomic writes - real files, an injected fake builder."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engines.engine_cache import BatchProfile, EngineCache, EngineKey, default_cache_dir
from vidrestore.errors import ConfigError

KEY = EngineKey(onnx_sha256="ab" * 32, precision="fp16", profile=BatchProfile(1, 8, 32), image_size=512,
                gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", tensorrt_version="10.13.0")


class FakeBuilder:
    """Writes a deterministic fake engine and counts calls."""

    def __init__(self) -> None:
        self.calls: list[EngineKey] = []

    def __call__(self, key: EngineKey, out: Path) -> None:
        self.calls.append(key)
        out.write_bytes(b"ENGINE:" + key.digest().encode() + bytes(range(256)))


def test_first_call_builds_second_reuses(tmp_path):
    cache, build = EngineCache(tmp_path), FakeBuilder()
    first = cache.get_or_build(KEY, build)
    second = cache.get_or_build(KEY, build)
    assert first == second and first.is_file()
    assert len(build.calls) == 1
    record = json.loads(cache.record_path(KEY).read_text())
    assert EngineKey.from_dict(record["key"]) == KEY
    assert record["engine_bytes"] == first.stat().st_size
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("precision", "fp32"), ("profile", BatchProfile(1, 4, 16)),
    ("profile", BatchProfile(2, 8, 32)), ("image_size", 256), ("gpu_name", "NVIDIA A100-SXM4-80GB"),
    ("compute_capability", "8.0"), ("tensorrt_version", "10.14.1"),
])
def test_every_key_field_changes_the_engine(tmp_path, field, value):
    cache, build = EngineCache(tmp_path), FakeBuilder()
    cache.get_or_build(KEY, build)
    other = replace(KEY, **{field: value})
    assert other.digest() != KEY.digest()
    assert cache.lookup(other) is None
    cache.get_or_build(other, build)
    assert build.calls == [KEY, other]
    assert cache.lookup(KEY) is not None and cache.lookup(other) is not None  # both kept


def test_foreign_engine_under_the_same_name_is_rebuilt(tmp_path):
    """An engine copied in from another GPU (its record names that GPU) is never loaded."""
    cache, build = EngineCache(tmp_path), FakeBuilder()
    cache.get_or_build(KEY, build)
    record = cache.record_path(KEY)
    data = json.loads(record.read_text())
    data["key"]["gpu_name"] = "NVIDIA GeForce RTX 4090"
    record.write_text(json.dumps(data))
    assert "gpu_name" in cache.why_invalid(KEY)
    assert cache.lookup(KEY) is None
    cache.get_or_build(KEY, build)
    assert len(build.calls) == 2 and cache.lookup(KEY) is not None


@pytest.mark.parametrize("damage", ["delete_record", "corrupt_record", "empty_record_key", "delete_engine",
                                    "truncate_engine", "flip_engine_byte"])
def test_damaged_entries_are_rebuilt(tmp_path, damage):
    cache, build = EngineCache(tmp_path), FakeBuilder()
    engine = cache.get_or_build(KEY, build)
    record = cache.record_path(KEY)
    if damage == "delete_record":
        record.unlink()
    elif damage == "corrupt_record":
        record.write_text("{not json")
    elif damage == "empty_record_key":
        record.write_text(json.dumps({"key": {}, "engine_bytes": 1, "engine_sha256": "x"}))
    elif damage == "delete_engine":
        engine.unlink()
    elif damage == "truncate_engine":
        engine.write_bytes(engine.read_bytes()[:10])
    elif damage == "flip_engine_byte":
        data = bytearray(engine.read_bytes())
        data[-1] ^= 0xFF
        engine.write_bytes(bytes(data))
    assert cache.why_invalid(KEY) is not None
    assert cache.lookup(KEY) is None
    rebuilt = cache.get_or_build(KEY, build)
    assert len(build.calls) == 2 and cache.lookup(KEY) == rebuilt


def test_failed_build_leaves_nothing_that_looks_valid(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, FakeBuilder())

    def broken(key, out):
        out.write_bytes(b"partial")
        raise RuntimeError("builder crashed")

    other = replace(KEY, precision="fp32")
    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_build(other, broken)
    assert cache.lookup(other) is None
    assert not cache.engine_path(other).exists() and not cache.record_path(other).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a rebuild of an existing key that crashes also invalidates the old record first
    with pytest.raises(RuntimeError):
        cache.store(KEY, broken)
    assert cache.lookup(KEY) is None


def test_builder_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="no engine"):
        EngineCache(tmp_path).get_or_build(KEY, lambda key, out: None)


def test_key_round_trips_through_json_and_file_name_carries_profile(tmp_path):
    assert EngineKey.from_dict(json.loads(json.dumps(KEY.to_dict()))) == KEY
    stem = KEY.file_stem()
    assert stem.startswith("gfpgan-fp16-b1-8-32-") and len(stem.split("-")[-1]) == 16
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, FakeBuilder())
    [(engine, record)] = cache.entries()
    assert engine == cache.engine_path(KEY) and record["key"]["precision"] == "fp16"


def test_profile_validation_and_chunks():
    for bad in [(0, 1, 4), (2, 1, 4), (1, 8, 4)]:
        with pytest.raises(ConfigError, match="min <= opt <= max"):
            BatchProfile(*bad)
    p = BatchProfile(1, 8, 32)
    assert p.chunks(0) == [] and p.chunks(5) == [5] and p.chunks(32) == [32]
    assert p.chunks(70) == [32, 32, 6] and sum(p.chunks(1000)) == 1000
    assert p.contains(1) and p.contains(32) and not p.contains(33)
    q = BatchProfile(4, 8, 8)
    assert q.chunks(10) == [8, 2] and q.padded(2) == 4 and q.padded(8) == 8
    with pytest.raises(ValueError):
        q.padded(9)


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDRESTORE_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "engines"
    monkeypatch.delenv("VIDRESTORE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_cache_dir() == tmp_path / "user" / ".cache" / "vidrestore" / "engines"
