"""CMakeLists.txt builds every engines/kernels/*.cu into a fatbin with SASS for sm_80/86/89/90 + PTX."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO / "engines" / "kernels"
SASS_ARCHS = {80, 86, 89, 90}
FATBIN_MAGIC = 0xBA55ED50


def fatbin_entries(data: bytes) -> list[tuple[str, int]]:
    """(kind, arch) of every image in an nvcc fatbin: kind 'ptx' or 'elf', arch e.g. 90."""
    magic, _version, header_size, fat_size = struct.unpack_from("<IHHQ", data, 0)
    assert magic == FATBIN_MAGIC, f"not a fatbin (magic {magic:#x})"
    entries, off, end = [], header_size, header_size + fat_size
    while off < end:
        kind, _, entry_header, size = struct.unpack_from("<HHIQ", data, off)
        arch = struct.unpack_from("<I", data, off + 28)[0]
        entries.append(({1: "ptx", 2: "elf"}.get(kind, str(kind)), arch))
        off += entry_header + size
    return entries


def test_cmake_builds_fatbins_for_all_archs(tmp_path):
    tools = {t: shutil.which(t) for t in ("nvcc", "cmake")}
    if not all(tools.values()):
        from tests.support.require import require
        require(None, f"CUDA build tools missing: {[t for t, p in tools.items() if not p]}")
    build, out = tmp_path / "build", tmp_path / "fatbin"
    cfg = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), f"-DVIDRESTORE_FATBIN_DIR={out}"],
                         capture_output=True, text=True, timeout=300)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    jobs = str(max(2, min(4, os.cpu_count() or 2)))
    res = subprocess.run(["cmake", "--build", str(build), "-j", jobs], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    sources = sorted(p.stem for p in KERNEL_DIR.glob("*.cu"))
    assert sources == ["modconv", "sft", "warp"]
    cuobjdump = shutil.which("cuobjdump")
    for name in sources:
        fatbin = out / f"{name}.fatbin"
        assert fatbin.is_file() and fatbin.stat().st_size > 0, fatbin
        assert (build / "fatbin" / f"{name}.fatbin").read_bytes() == fatbin.read_bytes()
        entries = fatbin_entries(fatbin.read_bytes())
        assert {arch for kind, arch in entries if kind == "elf"} == SASS_ARCHS, entries
        assert ("ptx", 90) in entries, entries
        if cuobjdump:
            listing = subprocess.run([cuobjdump, "--list-elf", str(fatbin)], capture_output=True, text=True,
                                     timeout=60).stdout
            for arch in SASS_ARCHS:
                assert f"sm_{arch}" in listing, listing
