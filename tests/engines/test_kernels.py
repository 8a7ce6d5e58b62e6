"""The CUDA kernels and their CuPy wrappers (engines/kernels.py) against the torch references.

Without a GPU the kernels still run here: tests/support/cuda_emu compiles each .cu for the CPU and
runs every thread, and the wrapper classes drive it through their real argument validation and
marshalling (argument types checked against the PTX signatures). The needs_cuda tests run the same
comparisons with CuPy on the GPU, for the NVRTC build and for the prebuilt fatbin.
"""
from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines import kernel_loader as L
from engines import kernels as K
from engines import kernels_reference as R
from tests.support import cuda_emu
from tests.support.emulated_kernels import FAMILIES, emulated
from vidrestore.errors import BackendUnavailable
from tests.support.numerics import product_numerics

CI = os.environ.get("CI", "").lower() == "true"


def _need(cond: bool, why: str) -> None:
    from tests.support.require import require
    require(cond, why)


# ----------------------------------------------------------------------------- sources
@pytest.mark.parametrize("name", sorted(K.KERNEL_NAMES))
def test_source_is_nvrtc_friendly(name):
    src = (K.KERNEL_DIR / f"{name}.cu").read_text()
    directive = re.compile(r"^\s*#\s*include\s*[<\"]([^>\"]+)", re.M)
    assert directive.findall(src) == [L.COMMON_HEADER]
    inlined = K.kernel_source(name)
    assert directive.findall(inlined) == [] and "h2f" in inlined
    assert directive.findall((L.KERNEL_DIR / L.COMMON_HEADER).read_text()) == []


@pytest.mark.parametrize("name", sorted(K.KERNEL_NAMES))
def test_ptx_entry_points_match_the_wrapper(name):
    """nvcc -ptx (or NVRTC) compiles the file; its entry points are exactly the names kernels.py uses."""
    _need(shutil.which("nvcc") is not None or _nvrtc() is not None, "neither nvcc nor NVRTC available")
    sigs = cuda_emu.signatures(name)
    assert sigs is not None and set(sigs) == set(K.KERNEL_NAMES[name])


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
        return nvrtc
    except Exception:
        return None


@pytest.mark.parametrize("name", sorted(K.KERNEL_NAMES))
def test_nvrtc_compiles_the_inlined_source(name):
    """The exact text and options CuPy hands to NVRTC at run time (needs no GPU)."""
    nvrtc = _nvrtc()
    if nvrtc is None:
        _need(False, "NVRTC (cupy + nvidia-cuda-nvrtc) not available")
    prog = nvrtc.createProgram(K.kernel_source(name), f"{name}.cu", (), ())
    try:
        nvrtc.compileProgram(prog, [*K.NVRTC_OPTIONS, "-arch=compute_80"])
    except Exception as err:  # pragma: no cover - the log is the useful part
        pytest.fail(f"NVRTC: {err}\n{nvrtc.getProgramLog(prog)}")
    ptx = nvrtc.getPTX(prog).decode()
    for kernel in K.KERNEL_NAMES[name]:
        assert f".entry {kernel}(" in ptx


# ----------------------------------------------------------------------------- wrapper plumbing
def test_missing_cupy_raises_backend_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    major = (torch.version.cuda or "12").split(".")[0]
    with pytest.raises(BackendUnavailable, match=f"pip install cupy-cuda{major}x"):
        K.SFTKernels("cuda")
    with pytest.raises(BackendUnavailable, match="CuPy not installed"):
        L._load_module.__wrapped__("sft", 0, "auto")


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown kernel family"):
        K.kernel_source("nope")


def test_cpu_device_refused():
    _need(importlib.util.find_spec("cupy") is not None, "cupy not installed (requirements/test-extra.txt)")
    with pytest.raises(BackendUnavailable, match="CUDA device"):
        K.WarpKernels("cpu")


class StreamCupy:
    """CuPy 14's stream rules without a GPU: Stream.from_external tags the stream with the current
    device (runtime.getDevice()), and entering a stream of another device raises RuntimeError."""

    def __init__(self) -> None:
        self.device = 0
        self.stream = None
        fake = self

        class Device:
            def __init__(self, index):
                self.index = index

            def __enter__(self):
                self.prev, fake.device = fake.device, self.index

            def __exit__(self, *exc):
                fake.device = self.prev

        class Stream:
            def __init__(self, ptr, device_id):
                self.ptr, self.device_id = ptr, device_id

            @classmethod
            def from_external(cls, obj):
                return cls(obj.__cuda_stream__()[1], fake.device)

            def __enter__(self):
                if self.device_id != fake.device:
                    raise RuntimeError(f"stream of device {self.device_id} used on device {fake.device}")
                self.prev, fake.stream = fake.stream, self

            def __exit__(self, *exc):
                fake.stream = self.prev

        self.cuda = types.SimpleNamespace(Device=Device, Stream=Stream)


def test_launch_runs_on_torchs_stream_of_the_tensors_device(monkeypatch):
    """A launch for cuda:1 from a thread whose current device is 0 (a pipeline worker)."""
    class TorchStream:
        cuda_stream = 0xabc

        def __cuda_stream__(self):
            return (0, self.cuda_stream)

    asked = []
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: asked.append(device) or TorchStream())
    fake = StreamCupy()
    ops = K.SFTKernels.__new__(K.SFTKernels)
    ops._cupy, ops.device = fake, torch.device("cuda", 1)
    seen = []
    ops._functions = {"k": lambda grid, block, args: seen.append((fake.device, fake.stream.ptr, grid, args))}
    ops._launch("k", (2, 1, 1), (256, 1, 1), (np.int32(7),))
    assert seen == [(1, 0xabc, (2, 1, 1), (np.int32(7),))]
    assert asked == [torch.device("cuda", 1)]
    assert fake.device == 0 and fake.stream is None      # both restored afterwards


def test_functions_are_fetched_on_the_kernels_device(monkeypatch):
    """CuPy loads a RawModule's kernels on its *current* device: fetching them for cuda:1 while device
    0 is current would load (and create a context) on the wrong GPU."""
    fake = StreamCupy()
    fetched = []

    class Module:
        def get_function(self, name):
            fetched.append(fake.device)
            return name

    monkeypatch.setattr(L, "_cupy", lambda: fake)
    monkeypatch.setattr(L, "load_module", lambda name, device, source: Module())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ops = K.SFTKernels("cuda:1")
    assert ops.device == torch.device("cuda", 1) and set(ops._functions) == set(K.KERNEL_NAMES["sft"])
    assert fetched == [1] * len(K.KERNEL_NAMES["sft"]) and fake.device == 0


class FakeCupy:
    """Records how _load_module builds modules: RawModule(path=...) or RawModule(code=...)."""

    def __init__(self, fail_path: bool = False) -> None:
        self.made: list[str] = []
        fake = self

        class RawModule:
            def __init__(self, code=None, *, path=None, options=()):
                self.kind = "fatbin" if path else "nvrtc"
                fake.made.append(self.kind)
                if code is not None:
                    assert code == K.kernel_source("sft") and tuple(options) == K.NVRTC_OPTIONS

            def get_function(self, name):
                if self.kind == "fatbin" and fail_path:
                    raise RuntimeError("CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
                return name

        class Device:
            def __init__(self, index):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        self.RawModule = RawModule
        self.cuda = types.SimpleNamespace(Device=Device)


@pytest.mark.parametrize("case", ["fresh", "stale", "missing", "broken"])
def test_load_module_prefers_a_fresh_loadable_fatbin(case, tmp_path, monkeypatch):
    fake = FakeCupy(fail_path=case == "broken")
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(L, "FATBIN_DIR", tmp_path)
    if case != "missing":
        fatbin = tmp_path / "sft.fatbin"
        fatbin.write_bytes(b"x")
        src_time = (K.KERNEL_DIR / "sft.cu").stat().st_mtime
        os.utime(fatbin, (src_time - 10, src_time - 10) if case == "stale" else (src_time + 10, src_time + 10))
    load = L._load_module.__wrapped__
    mod = load("sft", 0, "auto")
    assert mod.kind == ("fatbin" if case == "fresh" else "nvrtc")
    assert load("sft", 0, "nvrtc").kind == "nvrtc"
    if case in ("fresh", "stale"):  # forcing the fatbin ignores its age
        assert load("sft", 0, "fatbin").kind == "fatbin"
    else:
        with pytest.raises(BackendUnavailable, match="prebuilt kernels"):
            load("sft", 0, "fatbin")


needs_emu = pytest.mark.skipif(not cuda_emu.available(), reason="g++ not available for the kernel emulation")


# ----------------------------------------------------------------------------- shared comparisons
def check_modconv(ops, device, dtype, hw: tuple[int, int]):
    gen = torch.Generator().manual_seed(10)
    b, cin, cout = 2, 40, 9  # Cin > 32: several lanes per warp; Cout not a multiple of 8
    h, w = hw
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-3, rtol=2e-3)
    s = (torch.randn(b, cin, generator=gen) + 1).to(device)
    wsq = torch.rand(cout, cin, generator=gen).to(device)
    for sd in (s, s.to(dtype)):
        torch.testing.assert_close(ops.style_demod(sd, wsq), R.style_demod(sd, wsq), atol=0, rtol=1e-5)
    x = torch.randn(b, cin, h, w, generator=gen).to(device, dtype)
    torch.testing.assert_close(ops.modulate_input(x, s), R.modulate_input(x, s), **tol)
    inplace = x.clone()
    assert ops.modulate_input(inplace, s.to(dtype), out=inplace) is inplace
    torch.testing.assert_close(inplace, R.modulate_input(x, s.to(dtype)), **tol)
    y = torch.randn(b, cout, h, w, generator=gen).to(device, dtype)
    demod = R.style_demod(s, wsq)
    bias = torch.randn(1, cout, 1, 1, generator=gen).to(device)
    noise = torch.randn(1, 1, h, w, generator=gen).to(device)
    for kwargs in (dict(noise=noise, noise_strength=0.3), dict(), dict(gain=1.0, activate=False)):
        dm = None if kwargs.get("activate") is False else demod
        got = ops.modconv_epilogue(y.clone(), dm, bias, **kwargs)
        want = R.modconv_epilogue(y.clone(), dm, bias, **kwargs)
        torch.testing.assert_close(got, want, **tol)
    assert (got != y).any()


def check_sft(ops, device, dtype, hw):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 6, *hw, generator=gen).to(device, dtype)
    scale = torch.randn(3, 3, *hw, generator=gen).to(device, dtype)
    shift = torch.randn(3, 3, *hw, generator=gen).to(device, dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-3, rtol=2e-3)
    got = x.clone()
    assert ops.sft_half(got, scale, shift) is got
    torch.testing.assert_close(got, R.sft_half(x.clone(), scale, shift), **tol)
    assert torch.equal(got[:, :3], x[:, :3])


FRAME_TO_CROP = np.stack([
    np.array([[0.55, -0.17, -8.0], [0.17, 0.55, 4.0]]),      # inside the frame
    np.array([[0.8, 0.45, -30.0], [-0.45, 0.8, 30.0]]),      # straddles the frame border
    np.array([[-0.2, -0.45, 30.0], [0.45, -0.2, 10.0]]),     # rotated, overlaps the first
])


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def check_warp(ops, device, dtype, size, h=40, w=60):
    # nvcc/NVRTC contract the kernel's a*x + b*y + c into FMAs, torch's eager reference rounds every
    # step: the source point can differ by 2 ulp (3e-5 px at x ~ 120), times a tap gap of up to 255
    # levels that is up to ~3e-5 here on a GPU (2e-5 was exceeded in a float32 simulation); one
    # level is 2/255 = 7.8e-3, so 1e-4 still catches any wrong tap.
    tol = dict(atol=1e-4, rtol=0) if dtype == torch.float32 else dict(atol=1e-3, rtol=0)
    frame = _frame(h, w).to(device)
    inv = R.invert_affine(FRAME_TO_CROP).astype(np.float32)
    for border, bv in (("constant", (0, 0, 0)), ("constant", (135, 133, 132)), ("replicate", (0, 0, 0))):
        got = ops.warp_crops_rgb(frame, inv, size=size, dtype=dtype, border=border, border_value=bv)
        want = R.warp_crops_rgb(frame, inv, size=size, dtype=dtype, border=border, border_value=bv)
        torch.testing.assert_close(got, want, **tol)
    # a padded frame (row pitch > 3*W) gives the same crops
    padded = torch.zeros(h, w + 5, 3, dtype=torch.uint8, device=device)
    padded[:, :w] = frame
    torch.testing.assert_close(ops.warp_crops_rgb(padded[:, :w], inv, size=size, dtype=dtype),
                               R.warp_crops_rgb(frame, inv, size=size, dtype=dtype), **tol)
    for matrix in ("bt601", "bt709"):
        y, uv = R.rgb_to_nv12(frame, matrix=matrix)
        got = ops.warp_crops_nv12(y, uv, inv, matrix=matrix, size=size, dtype=dtype, border="replicate")
        want = R.warp_crops_nv12(y, uv, inv, matrix=matrix, size=size, dtype=dtype, border="replicate")
        # a uint8 conversion may round the other way at an exact .5 (FMA): 1 level = 2/255
        diff = (got.float() - want.float()).abs()
        assert diff.max() <= 2.0 / 255 + 2e-3 and (diff > 2e-3).float().mean() < 0.01


def check_paste(ops, device, dtype, size, h=40, w=60):
    gen = torch.Generator().manual_seed(12)
    frame = _frame(h, w, seed=1).to(device)
    crops = (torch.randn(3, 3, size, size, generator=gen) * 0.8).to(device, dtype)
    ramp = torch.clamp(torch.minimum(torch.arange(size), size - 1 - torch.arange(size)) / 4.0, 0, 1)
    mask = torch.outer(ramp, ramp).float().to(device)
    got = ops.paste_crops(frame.clone(), crops, FRAME_TO_CROP, mask, strength=0.9)
    want = R.paste_crops(frame.clone(), crops, FRAME_TO_CROP, mask, strength=0.9)
    diff = (got.int() - want.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
    assert (got != frame).any()
    boxes = [(0, 0, 10, 10)] * 3
    got_b = ops.paste_crops(frame.clone(), crops, FRAME_TO_CROP, mask, boxes=boxes)
    want_b = R.paste_crops(frame.clone(), crops, FRAME_TO_CROP, mask, boxes=boxes)
    assert (got_b.int() - want_b.int()).abs().max() <= 1
    assert torch.equal(got_b[10:], frame[10:]) and torch.equal(got_b[:, 10:], frame[:, 10:])


def check_colour(ops, device, h=16, w=22):
    rgb = _frame(h, w, seed=2).to(device)
    for matrix in ("bt601", "bt709"):
        y, uv = ops.rgb_to_nv12(rgb, matrix=matrix)
        ry, ruv = R.rgb_to_nv12(rgb, matrix=matrix)
        assert (y.int() - ry.int()).abs().max() <= 1 and (uv.int() - ruv.int()).abs().max() <= 1
        back = ops.nv12_to_rgb(ry, ruv, matrix=matrix)
        assert (back.int() - R.nv12_to_rgb(ry, ruv, matrix=matrix).int()).abs().max() <= 1
        flat = ops.nv12_to_rgb(ry, ruv.reshape(h // 2, w), matrix=matrix)
        assert torch.equal(flat, back)
    y_out = torch.empty(h, w, dtype=torch.uint8, device=device)
    uv_out = torch.empty(h // 2, w, dtype=torch.uint8, device=device)
    y2, uv2 = ops.rgb_to_nv12(rgb, y_out=y_out, uv_out=uv_out)
    assert y2 is y_out and uv2 is uv_out


# ----------------------------------------------------------------------------- emulated (CPU)
@needs_emu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("hw", [(4, 6), (3, 5)], ids=["vec4", "scalar"])
def test_emulated_modconv(dtype, hw):
    check_modconv(emulated("modconv"), torch.device("cpu"), dtype, hw)


@needs_emu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("hw", [(4, 2), (3, 3)], ids=["vec4", "scalar"])
def test_emulated_sft(dtype, hw):
    check_sft(emulated("sft"), torch.device("cpu"), dtype, hw)


@needs_emu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_emulated_warp(dtype):
    check_warp(emulated("warp"), torch.device("cpu"), dtype, size=20)


@needs_emu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_emulated_paste(dtype):
    check_paste(emulated("warp"), torch.device("cpu"), dtype, size=20)


@needs_emu
def test_emulated_colour():
    check_colour(emulated("warp"), torch.device("cpu"))


@needs_emu
def test_emulated_grid_stride_loop_covers_everything():
    """One block of 32 threads still walks the whole tensor (the wrappers cap grids at 65535)."""
    x = torch.randn(2, 3, 4, 4)
    s = torch.rand(2, 3)
    out = torch.zeros_like(x)
    for kernel, n in (("modulate_input_f32", 96), ("modulate_input_vec4_f32", 96)):
        out.zero_()
        cuda_emu.launch("modconv", kernel, (1, 1, 1), (32, 1, 1),
                        (np.uint64(x.data_ptr()), np.uint64(s.data_ptr()), np.uint64(out.data_ptr()),
                         np.int64(16), np.int64(n)))
        torch.testing.assert_close(out, R.modulate_input(x, s))


@needs_emu
def test_emulated_misaligned_view_takes_the_scalar_kernel(monkeypatch):
    """A view starting one float in has a 4-byte-aligned pointer: the emulator refuses it for a vec4
    kernel (as a GPU would fault), and the wrappers pick the scalar kernel and stay exact."""
    base = torch.randn(2 * 3 * 4 * 4 + 1)
    x = base[1:].view(2, 3, 4, 4)                 # row length 16 (vec4-able), pointer 4 bytes off
    assert x.data_ptr() % 16 != 0
    s = torch.rand(2, 3)
    out = torch.zeros_like(x)
    with pytest.raises(AssertionError, match="misaligned"):
        cuda_emu.launch("modconv", "modulate_input_vec4_f32", (1, 1, 1), (32, 1, 1),
                        (np.uint64(x.data_ptr()), np.uint64(s.data_ptr()), np.uint64(out.data_ptr()),
                         np.int64(16), np.int64(96)))
    launched = []
    real = cuda_emu.launch
    monkeypatch.setattr(cuda_emu, "launch", lambda fam, k, *a: (launched.append(k), real(fam, k, *a)))
    torch.testing.assert_close(emulated("modconv").modulate_input(x, s), R.modulate_input(x, s))
    hb = torch.randn(1 + 32 + 16 + 16)            # x (2,4,2,2), scale and shift (2,2,2,2), all 4 bytes off
    xs, sc, sh = hb[1:33].view(2, 4, 2, 2), hb[33:49].view(2, 2, 2, 2), hb[49:65].view(2, 2, 2, 2)
    want = R.sft_half(xs.clone(), sc.clone(), sh.clone())
    torch.testing.assert_close(emulated("sft").sft_half(xs, sc, sh), want)
    assert launched == ["modulate_input_f32", "sft_half_f32"], launched


@needs_emu
def test_emulated_wrapper_validation():
    ops = emulated("modconv")
    with pytest.raises(TypeError, match="dtype"):
        ops.modulate_input(torch.zeros(1, 2, 4, 4, dtype=torch.float64), torch.ones(1, 2))
    with pytest.raises(ValueError, match="styles must have shape"):
        ops.modulate_input(torch.zeros(1, 2, 4, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="contiguous"):
        ops.modconv_epilogue(torch.zeros(1, 2, 4, 4).transpose(2, 3), None, None)
    with pytest.raises(ValueError, match="noise must be"):
        ops.modconv_epilogue(torch.zeros(1, 2, 4, 4), None, None, noise=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="C even"):
        emulated("sft").sft_half(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    warp = emulated("warp")
    with pytest.raises(ValueError, match="dense rows"):
        warp.warp_crops_rgb(torch.zeros(6, 4, 3, dtype=torch.uint8).transpose(0, 1), np.eye(2, 3)[None])
    with pytest.raises(ValueError, match="border"):
        warp.warp_crops_rgb(torch.zeros(4, 6, 3, dtype=torch.uint8), np.eye(2, 3)[None], border="wrap")
    with pytest.raises(ValueError, match="even"):
        warp.nv12_to_rgb(torch.zeros(5, 6, dtype=torch.uint8), torch.zeros(2, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="frame_to_crop"):
        warp.paste_crops(torch.zeros(8, 8, 3, dtype=torch.uint8), torch.zeros(2, 3, 4, 4), np.eye(2, 3)[None],
                         torch.ones(4, 4))


@needs_emu
def test_emulated_benchmark_helper(monkeypatch):
    """benchmark_kernels end to end on the emulation, with wall-clock stand-ins for CUDA events."""
    import time

    from engines import kernels_bench

    class Event:
        def __init__(self, enable_timing: bool = False) -> None:
            self.t = 0.0

        def record(self) -> None:
            self.t = time.perf_counter()

        def synchronize(self) -> None:
            pass

        def elapsed_time(self, other: "Event") -> float:
            return (other.t - self.t) * 1000.0

    monkeypatch.setattr(torch.cuda, "Event", Event)
    for family, cls in FAMILIES.items():
        monkeypatch.setattr(K, cls.__name__, lambda *a, _f=family, **k: emulated(_f))
    res = kernels_bench.benchmark_kernels("cpu", repeats=1, small=True)
    assert set(res) == {"style_demod", "modulate_input", "modconv_epilogue", "sft_half", "warp_crops_rgb",
                        "warp_crops_nv12", "paste_crops", "nv12_to_rgb", "rgb_to_nv12"}
    for row in res.values():
        assert row["kernel_ms"] > 0 and row["torch_ms"] > 0 and row["speedup"] > 0


# ----------------------------------------------------------------------------- real GPU
SOURCES = ["nvrtc", "fatbin"]


_DRIVER_TOO_OLD = ("UNSUPPORTED_PTX_VERSION", "NO_BINARY_FOR_GPU", "INSUFFICIENT_DRIVER")


def _ops(family: str, source: str):
    if source == "fatbin" and not (L.FATBIN_DIR / f"{family}.fatbin").is_file():
        from tests.support.require import require
        require(None, "no prebuilt fatbin (run cmake --build build)", gpu=True)
    try:
        return FAMILIES[family]("cuda", source=source)
    except BackendUnavailable as err:
        if source == "fatbin" and any(code in str(err) for code in _DRIVER_TOO_OLD):
            pytest.skip(f"fatbin built by a newer CUDA than this driver supports: {err}")
        raise


@pytest.mark.needs_cuda
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("hw", [(16, 16), (5, 7)], ids=["vec4", "scalar"])
def test_cuda_modconv(source, dtype, hw):
    check_modconv(_ops("modconv", source), torch.device("cuda"), dtype, hw)
    torch.cuda.synchronize()


@pytest.mark.needs_cuda
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("hw", [(16, 16), (5, 7)], ids=["vec4", "scalar"])
def test_cuda_sft(source, dtype, hw):
    check_sft(_ops("sft", source), torch.device("cuda"), dtype, hw)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_warp_and_paste(source, dtype):
    ops = _ops("warp", source)
    check_warp(ops, torch.device("cuda"), dtype, size=64, h=90, w=120)
    check_paste(ops, torch.device("cuda"), dtype, size=64, h=90, w=120)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("source", SOURCES)
def test_cuda_colour(source):
    check_colour(_ops("warp", source), torch.device("cuda"), h=90, w=120)


@pytest.mark.needs_cuda
def test_cuda_realistic_shapes_and_stream():
    """GFP-GAN-sized tensors on a side stream: results match and respect stream order."""
    mc = K.ModConvKernels("cuda")
    sft = K.SFTKernels("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x = torch.randn(4, 512, 32, 32, device="cuda", generator=gen).half()
        s = torch.randn(4, 512, device="cuda", generator=gen) + 1
        wsq = torch.rand(512, 512, device="cuda", generator=gen)
        got = mc.modulate_input(x, s)
        demod = mc.style_demod(s, wsq)
        y = torch.randn(4, 512, 32, 32, device="cuda", generator=gen).half()
        bias = torch.randn(512, device="cuda", generator=gen)
        noise = torch.randn(1, 1, 32, 32, device="cuda", generator=gen)
        ey = mc.modconv_epilogue(y.clone(), demod, bias, noise=noise, noise_strength=0.1)
        z = torch.randn(4, 512, 32, 32, device="cuda", generator=gen).half()
        sc, sh = torch.randn(2, 4, 256, 32, 32, device="cuda", generator=gen).half()
        gz = sft.sft_half(z.clone(), sc, sh)
    stream.synchronize()
    torch.testing.assert_close(got, R.modulate_input(x, s), atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(demod, R.style_demod(s, wsq), atol=0, rtol=1e-5)
    torch.testing.assert_close(ey, R.modconv_epilogue(y.clone(), demod, bias, noise=noise, noise_strength=0.1),
                               atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(gz, R.sft_half(z.clone(), sc, sh), atol=2e-3, rtol=2e-3)


@pytest.mark.needs_cuda
def test_cuda_styleconv_end_to_end():
    """Kernels + cuDNN conv equal the authors' grouped-conv StyleConv (FP32) at 64x64, 128 channels."""
    mc = K.ModConvKernels("cuda")
    gen = torch.Generator(device="cuda").manual_seed(1)
    b, cin, cout = 2, 128, 128
    x = torch.randn(b, cin, 64, 64, device="cuda", generator=gen)
    s = torch.randn(b, cin, device="cuda", generator=gen) + 1
    weight = torch.randn(1, cout, cin, 3, 3, device="cuda", generator=gen) / math.sqrt(cin * 9)
    bias = torch.randn(1, cout, 1, 1, device="cuda", generator=gen)
    noise = torch.randn(1, 1, 64, 64, device="cuda", generator=gen)
    w = weight * s.view(b, 1, cin, 1, 1)
    w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(b, cout, 1, 1, 1)
    with product_numerics():
        ref = F.conv2d(x.view(1, b * cin, 64, 64), w.view(b * cout, cin, 3, 3), padding=1, groups=b)
        want = F.leaky_relu(ref.view(b, cout, 64, 64) * 2 ** 0.5 + 0.2 * noise + bias, 0.2)
        y = F.conv2d(mc.modulate_input(x, s), weight[0], padding=1)
        got = mc.modconv_epilogue(y, mc.style_demod(s, R.weight_sq_sum(weight)), bias, noise=noise,
                                  noise_strength=0.2)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.needs_cuda
def test_cuda_benchmark_helper_runs():
    from engines.kernels_bench import benchmark_kernels
    res = benchmark_kernels("cuda", repeats=2, small=True)
    assert {"style_demod", "modulate_input", "modconv_epilogue", "sft_half", "warp_crops_rgb",
            "warp_crops_nv12", "paste_crops", "nv12_to_rgb", "rgb_to_nv12"} <= set(res)
    for row in res.values():
        assert row["kernel_ms"] > 0 and row["torch_ms"] > 0
