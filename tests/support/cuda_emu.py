"""Run the CUDA kernels of engines/kernels/*.cu on the CPU, one thread at a time (tests only).

Each .cu is compiled by g++ as C++ with tests/support/cuda_emu.h (CUDA built-ins as plain C++), and
:func:`launch` calls an extern "C" kernel once per (block, thread) of the launch grid, threads of a
block in descending order (see the header). Arguments are checked against the kernel's real parameter
list taken from the PTX that nvcc (or NVRTC) makes of the same file, so a wrapper that passes an
int64 where the kernel takes an int fails here instead of on the GPU.
"""
from __future__ import annotations

import ctypes
import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HEADER = Path(__file__).with_name("cuda_emu.h")
KERNEL_DIR = REPO / "engines" / "kernels"

_CTYPE = {"u64": ctypes.c_uint64, "s64": ctypes.c_int64, "b64": ctypes.c_uint64,
          "u32": ctypes.c_uint32, "s32": ctypes.c_int32, "b32": ctypes.c_uint32, "f32": ctypes.c_float}
_NUMPY = {"u64": (np.uint64, np.int64), "s64": (np.uint64, np.int64), "b64": (np.uint64, np.int64),
          "u32": (np.int32, np.uint32), "s32": (np.int32, np.uint32), "b32": (np.int32, np.uint32),
          "f32": (np.float32,)}


def available() -> bool:
    return shutil.which("g++") is not None


@functools.lru_cache(maxsize=None)
def build(name: str) -> ctypes.CDLL:
    """The kernel family ``name`` compiled for the CPU (cached per process)."""
    out = Path(tempfile.mkdtemp(prefix="vidrestore_emu_")) / f"{name}.so"
    cmd = ["g++", "-O1", "-shared", "-fPIC", "-std=c++17", "-Wall", "-Werror", "-DVIDRESTORE_KERNEL_EMULATION",
           "-include", str(HEADER), "-I", str(KERNEL_DIR), "-x", "c++", str(KERNEL_DIR / f"{name}.cu"), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode:
        raise RuntimeError(f"g++ failed on {name}.cu:\n{res.stderr}")
    lib = ctypes.CDLL(str(out))
    lib.emu_set_thread.argtypes = [ctypes.c_uint] * 12
    lib.emu_set_thread.restype = None
    return lib


def _ptx(name: str) -> str | None:
    src = KERNEL_DIR / f"{name}.cu"
    nvcc = shutil.which("nvcc")
    if nvcc:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.ptx"
            subprocess.run([nvcc, "-ptx", "-arch=compute_80", "-std=c++17", "-I", str(KERNEL_DIR), str(src),
                            "-o", str(out)], check=True, capture_output=True, timeout=300)
            return out.read_text()
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError:
        return None
    from engines.kernels import NVRTC_OPTIONS, kernel_source
    prog = nvrtc.createProgram(kernel_source(name), f"{name}.cu", (), ())
    nvrtc.compileProgram(prog, [*NVRTC_OPTIONS, "-arch=compute_80"])
    return nvrtc.getPTX(prog).decode()


@functools.lru_cache(maxsize=None)
def signatures(name: str) -> dict[str, tuple[str, ...]] | None:
    """{kernel: PTX parameter types ('u64', 'u32', 'f32', ...)} or None without nvcc/NVRTC."""
    ptx = _ptx(name)
    if ptx is None:
        return None
    sigs = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)", ptx, flags=re.S):
        sigs[m.group(1)] = tuple(re.findall(r"\.param\s+\.(\w+)", m.group(2)))
    return sigs


def check_args(name: str, kernel: str, args: tuple[Any, ...]) -> None:
    sigs = signatures(name)
    if sigs is None:
        return
    if kernel not in sigs:
        raise AssertionError(f"{kernel} is not an entry point of {name}.cu: {sorted(sigs)}")
    sig = sigs[kernel]
    if len(sig) != len(args):
        raise AssertionError(f"{kernel} takes {len(sig)} parameters {sig}, got {len(args)}")
    for i, (t, a) in enumerate(zip(sig, args)):
        if not isinstance(a, _NUMPY[t]):
            raise AssertionError(f"{kernel} parameter {i} is .{t}, got {type(a).__name__} {a!r}")


def launch(name: str, kernel: str, grid: tuple[int, int, int], block: tuple[int, int, int],
           args: tuple[Any, ...]) -> None:
    """Emulate ``kernel<<<grid, block>>>(*args)`` of family ``name`` on the CPU (pointers = host addresses)."""
    check_args(name, kernel, args)
    if "vec4" in kernel:   # float4/half4 loads fault on the GPU unless every pointer is 16-byte aligned
        for i, a in enumerate(args):
            v = int(a) if isinstance(a, (int, np.integer)) else 0
            assert not (v > 2 ** 32 and v % 16), \
                f"{kernel}: argument {i} is a pointer misaligned by {v % 16} bytes for a vectorised kernel"
    lib = build(name)
    sig = (signatures(name) or {}).get(kernel)
    fn = getattr(lib, kernel)
    fn.restype = None
    if sig is not None:
        fn.argtypes = [_CTYPE[t] for t in sig]
        cargs = [int(a) if t != "f32" else float(a) for t, a in zip(sig, args)]
    else:
        cargs = [ctypes.c_float(float(a)) if isinstance(a, np.float32) else
                 ctypes.c_int32(int(a)) if isinstance(a, np.int32) else ctypes.c_uint64(int(a) & (2**64 - 1))
                 for a in args]
    gx, gy, gz = grid
    bx, by, bz = block
    assert bx * by * bz <= 1024 and bx * by * bz % 32 == 0, f"odd block {block}"
    for k in range(gz):
        for j in range(gy):
            for i in range(gx):
                for tz in reversed(range(bz)):
                    for ty in reversed(range(by)):
                        for tx in reversed(range(bx)):
                            lib.emu_set_thread(tx, ty, tz, i, j, k, bx, by, bz, gx, gy, gz)
                            fn(*cargs)
