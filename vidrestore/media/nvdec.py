"""GPU video decoding: PyAV demuxes, NVDEC (PyNvVideoCodec) decodes, frames stay on the GPU.

:class:`NvdecReader` has the :class:`~vidrestore.media.decode.VideoReader` interface (``info``,
``stats``, one-shot iteration, ``close``, context manager) but yields frames whose ``rgb`` is an
(H, W, 3) uint8 CUDA tensor, upright, with the stored ``pts`` and the stream time base.

* Demux: PyAV, packet by packet. H.264/HEVC packets from MP4/MKV (length-prefixed NAL units) go
  through FFmpeg's ``*_mp4toannexb`` bitstream filter, since NVDEC's parser wants Annex B.
* Decode: PyNvVideoCodec's core decoder (``CreateDecoder`` + ``Decode(PacketData)``) into device
  memory (NV12). NVDEC returns frames in presentation order; each gets the smallest pts not yet
  handed out (the packets' pts in a heap), which is what FFmpeg's reorder yields too.
* Colour: NV12 -> RGB with engines' ``nv12_to_rgb`` kernel (CuPy) or its torch reference, with the
  matrix the CPU reader would use (BT.709 for HD or tagged streams, BT.601 below). Only what that
  conversion reproduces is decoded here: 8-bit 4:2:0 limited range, BT.601/709, even sizes.
  Everything else (10-bit, 4:4:4, full range, BT.2020, other codecs) is decoded by
  :func:`open_reader`'s fallback, the CPU reader, with a counted warning - as is a stream whose
  first frame NVDEC does not produce (:meth:`NvdecReader.prime`: it rejects the first 16 packets,
  or the stream ends without a frame), so a GPU that lacks a codec never fails a run.

:func:`open_reader` is the one entry point for the pipeline::

    reader = open_reader(path, config=config.decode, device="cuda:0")   # NvdecReader or VideoReader
"""
from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..config import DecodeConfig, check_kernels
from ..errors import BackendUnavailable, InputError
from ..types import Frame, VideoInfo
from .decode import DecodeStats, VideoReader, _open, probe

log = logging.getLogger(__name__)

INSTALL_ADVICE = "PyNvVideoCodec not installed: pip install PyNvVideoCodec"
# FFmpeg codec name -> PyNvVideoCodec cudaVideoCodec member (what NVDEC decodes on Turing and later;
# AV1 needs Ampere or later).
NVDEC_CODECS = {"h264": "H264", "hevc": "HEVC", "vp8": "VP8", "vp9": "VP9", "av1": "AV1",
                "mpeg1video": "MPEG1", "mpeg2video": "MPEG2", "mpeg4": "MPEG4"}
# packets NVDEC may reject before its first frame before the stream counts as one it cannot take
# (open_reader then decodes on the CPU); later rejections are corrupt packets like on the CPU
REJECTED_BEFORE_FIRST_FRAME = 16
ANNEXB_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
_ANNEXB_START = (b"\x00\x00\x00\x01", b"\x00\x00\x01")


def unsupported_reason(info: VideoInfo) -> str | None:
    """Why this stream must not be decoded by NvdecReader (None: it can be)."""
    if info.is_image:
        return "still image"
    if info.codec not in NVDEC_CODECS:
        return f"codec {info.codec} not decoded by NVDEC"
    if info.pix_fmt != "yuv420p":
        return f"pixel format {info.pix_fmt} (NVDEC path handles 8-bit 4:2:0 only)"
    if info.decode_range != "tv":
        return f"colour range {info.decode_range} (limited range only)"
    if info.decode_matrix not in ("bt601", "bt709"):
        return f"colour matrix {info.decode_matrix} (BT.601/709 only)"
    if info.stored_width % 2 or info.stored_height % 2:
        return f"odd frame size {info.stored_width}x{info.stored_height}"
    return None


def is_annexb(data: bytes) -> bool:
    return data.startswith(_ANNEXB_START)


def _nvc() -> Any:
    try:
        import PyNvVideoCodec as nvc
    except ImportError as err:
        raise BackendUnavailable(INSTALL_ADVICE) from err
    return nvc


def _rgb_converter(device: Any, kernels: str = "auto") -> Any:
    """NV12 -> RGB: the CuPy kernel (``kernels`` "auto" when it loads, "cupy"), else the torch
    reference ("torch", or "auto" without CuPy). Lazy engines import."""
    check_kernels(kernels)
    if kernels == "torch":
        from engines.kernels_reference import nv12_to_rgb
        return nv12_to_rgb
    if kernels == "cupy":           # asked for: its failure is the caller's (open_reader falls back)
        from engines.kernels import WarpKernels
        return WarpKernels(device).nv12_to_rgb
    try:
        from engines.kernels import WarpKernels
        return WarpKernels(device).nv12_to_rgb
    except Exception as err:  # noqa: BLE001 - CuPy missing or NVRTC failure
        log.info("nv12_to_rgb kernel unavailable (%s); torch reference", err)
        from engines.kernels_reference import nv12_to_rgb
        return nv12_to_rgb


class _Decoder:
    """The few PyNvVideoCodec calls we make, in one place (its API moved between releases)."""

    def __init__(self, nvc: Any, codec: str, device_index: int) -> None:
        import torch
        self._nvc = nvc
        self._torch = torch
        cuda_codec = getattr(nvc.cudaVideoCodec, NVDEC_CODECS[codec])
        stream = torch.cuda.current_stream(device_index).cuda_stream
        self._dec = nvc.CreateDecoder(gpuid=device_index, codec=cuda_codec, cudacontext=0,
                                      cudastream=stream, usedevicememory=True)

    def decode(self, data: bytes | None, pts: int) -> list[Any]:
        """Feed one Annex B access unit (None = end of stream); NV12 (H*3/2, W) uint8 CUDA tensors
        of the frames that came out, copied out of the decoder's surface pool."""
        pkt = self._nvc.PacketData()
        buf = None
        if data:
            buf = np.frombuffer(data, dtype=np.uint8)
            pkt.bsl_data = int(buf.ctypes.data)
            pkt.bsl = int(buf.size)
            pkt.pts = int(pts)
        else:
            pkt.bsl_data = 0
            pkt.bsl = 0
        frames = self._dec.Decode(pkt)
        del buf
        return [self._torch.from_dlpack(f).clone() for f in frames]


class NvdecReader:
    """NVDEC decoding into CUDA tensors; the VideoReader interface (see the module docstring)."""

    def __init__(self, path: str | Path, *, config: DecodeConfig = DecodeConfig(),
                 device: str = "cuda", kernels: str = "auto", _decoder_factory: Any = None) -> None:
        """``kernels``: the NV12 -> RGB conversion, as ``--kernels`` (auto, cupy, torch).
        ``_decoder_factory(codec, device_index)`` replaces PyNvVideoCodec (tests drive the
        demux/convert logic on the CPU with a decoder of the same interface)."""
        import torch

        self.path = Path(path)
        self.config = config
        self.stats = DecodeStats()
        dev = torch.device(device)
        if _decoder_factory is None:
            nvc = _nvc()
            if not torch.cuda.is_available() or dev.type != "cuda":
                raise BackendUnavailable("NVDEC decoding needs a CUDA GPU visible to torch")

            def _decoder_factory(codec: str, index: int) -> _Decoder:
                return _Decoder(nvc, codec, index)
        if dev.type == "cuda":
            dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        self.device = dev
        self.info = probe(self.path, config=config)
        reason = unsupported_reason(self.info)
        if reason is not None:
            raise BackendUnavailable(f"not decoded with NVDEC: {reason}", path=self.path)
        self._matrix = self.info.decode_matrix
        self._container, self._stream = _open(self.path, 0, False, config.max_pixels)
        bsf_name = ANNEXB_FILTERS.get(self.info.codec)
        self._bsf = av.bitstream.BitStreamFilterContext(bsf_name, self._stream) if bsf_name else None
        self._decoder = _decoder_factory(self.info.codec, self.device.index)
        self._to_rgb = _rgb_converter(self.device, kernels)
        self._iterated = False
        self._frames_gen: Iterator[Frame] | None = None
        self._first: Frame | None = None

    def __enter__(self) -> NvdecReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def prime(self) -> None:
        """Decode up to the first frame now, so that a stream NVDEC cannot take fails here with
        BackendUnavailable (:func:`open_reader` then falls back to the CPU) instead of mid-run."""
        if self._frames_gen is None:
            self._frames_gen = self._frames()
            self._first = next(self._frames_gen, None)

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("NvdecReader can be iterated only once")
        self._iterated = True
        return self._resume()

    def _resume(self) -> Iterator[Frame]:
        self.prime()                         # a no-op when open_reader already primed the reader
        if self._first is not None:
            yield self._first
            self._first = None
        yield from self._frames_gen

    def _packets(self) -> Iterator[tuple[bytes, int | None]]:
        """Annex B access units with their pts, in decode order."""
        for packet in self._container.demux(self._stream):
            outs = ([packet] if self._bsf is None
                    else self._bsf.filter(packet if packet.size else None))
            for p in outs:
                if p.size:
                    yield bytes(p), (p.pts if p.pts is not None else p.dts)

    def _frames(self) -> Iterator[Frame]:
        import torch

        if self._container is None:
            return
        h, w = self.info.stored_height, self.info.stored_width
        k = (self.info.rotation // 90) % 4
        pending: list[int] = []                   # pts not yet assigned to an output frame
        counter = 0

        def convert(nv12: torch.Tensor) -> Frame:
            nonlocal counter
            coded_h = nv12.shape[0] * 2 // 3       # the surface may be taller than the picture
            y = nv12[:h, :w]
            uv = nv12[coded_h:coded_h + h // 2, :w].reshape(h // 2, w // 2, 2)
            rgb = self._to_rgb(y, uv, matrix=self._matrix)
            if k:
                rgb = torch.rot90(rgb, k, dims=(0, 1)).contiguous()
            pts = heapq.heappop(pending) if pending else None
            frame = Frame(index=self.stats.frames, pts=pts, time_base=self.info.time_base, rgb=rgb)
            self.stats.frames += 1
            counter += 1
            return frame

        with torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext():
            for data, pts in self._packets():
                if pts is not None:
                    heapq.heappush(pending, int(pts))
                try:
                    out = self._decoder.decode(data, pts or 0)
                except Exception as err:  # noqa: BLE001 - a rejected packet: count and go on
                    self.stats.corrupt_packets += 1
                    if counter == 0 and self.stats.corrupt_packets >= REJECTED_BEFORE_FIRST_FRAME:
                        raise BackendUnavailable(f"NVDEC rejected the first {self.stats.corrupt_packets} "
                                                 f"packets ({' '.join(str(err).split())[:100]})",
                                                 path=self.path) from err
                    self.stats.warn("corrupt packets skipped")
                    if self.stats.corrupt_packets > self.config.max_corrupt_packets:
                        raise InputError(f"more than {self.config.max_corrupt_packets} corrupt packets, "
                                         "giving up", path=self.path) from err
                    continue
                for nv12 in out:
                    yield convert(nv12)
            for nv12 in self._decoder.decode(None, 0):
                yield convert(nv12)
        if counter == 0:   # the CPU reader, which open_reader falls back to, says what is wrong
            raise BackendUnavailable("NVDEC decoded no frame", path=self.path)


def open_reader(path: str | Path, *, config: DecodeConfig = DecodeConfig(), device: str = "cpu",
                kernels: str = "auto", _decoder_factory: Any = None) -> NvdecReader | VideoReader:
    """The reader for ``device``: NvdecReader on CUDA when PyNvVideoCodec is installed, the stream is
    one it reproduces and NVDEC decodes its first frame, else the CPU VideoReader (counting the reason
    as a warning when NVDEC was installed but could not take this stream). ``_decoder_factory``: see
    :class:`NvdecReader` (tests)."""
    if not str(device).startswith("cuda") and _decoder_factory is None:
        return VideoReader(path, config=config)
    try:
        reader = NvdecReader(path, config=config, device=device, kernels=kernels,
                             _decoder_factory=_decoder_factory)
        try:
            reader.prime()
        except BaseException:
            reader.close()
            raise
        return reader
    except InputError:
        raise
    except BackendUnavailable as err:
        reader = VideoReader(path, config=config)
        if err.message != INSTALL_ADVICE:
            reader.stats.warn(f"decoded on the CPU ({err.message})")
        log.info("CPU decoding: %s", err.message)
        return reader
    except Exception as err:  # noqa: BLE001 - PyNvVideoCodec API/driver failures
        reader = VideoReader(path, config=config)
        reader.stats.warn(f"decoded on the CPU (NVDEC failed: {' '.join(str(err).split())[:120]})")
        return reader
