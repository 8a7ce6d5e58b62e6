"""Encode upright RGB frames with PyAV, copying the source's audio, subtitles and metadata.

Decisions (what the output looks like):

* **Same frames and times**: the video stream's time base is the source's and every frame keeps its
  ``pts`` (VFR stays VFR, start offsets stay); the muxer may rescale the time base (Matroska 1/1000,
  MP4 multiplies small ones), which keeps the times.
* **Rotation**: frames are turned back to the *stored* orientation and the source's display matrix is
  written again (``VideoStream.set_display_rotation``), so the output is stored and displayed exactly
  like the input (a phone clip stays 1280x720 + "rotate 90").
* **Odd sizes** keep their exact size: with 4:2:0 codecs (libx264/libx265) an odd width or height
  switches the default pixel format to 4:4:4 (``yuv444p``), counted as ``"odd size: yuv444p"``.
  ``crf=0`` with libx264 also uses ``yuv444p`` so the round trip is lossless apart from RGB<->YUV.
* **Colour**: RGB is converted to YUV with the matrix and range the decoder used for the source
  (BT.709/BT.601/BT.2020, tv/pc) and the stream is tagged with them and the source's primaries/transfer.
  HDR sources are written as 8-bit with their signalling kept (no tone mapping).
* **Alpha**: when the source has alpha and the codec was left at the default (libx264), the codec is
  chosen for the container: ``.mov`` -> ProRes 4444 (``prores_ks``, yuva444p10le), ``.mkv``/``.avi`` ->
  FFV1 (bgra), ``.webm`` -> VP9 (yuva420p). Otherwise (``.mp4``, ``.ts`` or an explicit codec without
  alpha) the alpha is dropped and ``"alpha dropped"`` counted. Images: PNG/WebP keep alpha, JPEG drops it.
* **WebM** cannot hold H.264: with the default codec, ``.webm`` gets libvpx-vp9.
* **Audio/subtitles**: see :mod:`vidrestore.media.audio` (copied; re-encoded or dropped with a warning).
* **Atomic output**: everything goes to a hidden temporary file in the target folder with the same
  extension (``.NAME.vidrestore-XXXX.ext``) renamed over the target by :meth:`VideoWriter.commit`;
  :meth:`VideoWriter.abort` deletes it. The input is only ever opened for reading.
"""
from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..config import EncodeConfig
from ..errors import EncodeError, OutputError
from ..types import Frame, VideoInfo
from .audio import AudioMuxer
from .pixels import rot90
from .image import ALPHA_EXTS, IMAGE_EXTS, encode_image
from .output import (ALPHA_CODEC, ALPHA_PIX, CHROMA_420, CODEC_ALIASES, DEFAULT_CODEC, DROP_CONTAINER_META,
                     HIGH_ALPHA_PIX, HIGH_PIX, MATRIX_IDS, VIDEO_FORMATS, CommitOnSuccess, check_output_path,
                     colour_tags, pix_bits, write_failure)

@dataclass
class EncodeStats:
    """Counters of one :class:`VideoWriter` (mutated while writing)."""
    frames: int = 0
    audio_packets: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    video_codec: str = ""
    pix_fmt: str = ""

    def warn(self, key: str, n: int = 1) -> None:
        self.warnings[key] = self.warnings.get(key, 0) + n


def _even(n: int) -> bool:
    return n % 2 == 0


class VideoWriter(CommitOnSuccess):
    """``with VideoWriter(out, info=info, source=src) as w: w.write(frame)``; commits on success."""

    def __init__(self, output: str | Path, *, info: VideoInfo, source: Path | None,
                 config: EncodeConfig = EncodeConfig(), overwrite: bool = False,
                 audio_from: object | None = None, trim_audio: bool = False) -> None:
        """``trim_audio``: the frames are a part of the source (``--start/--end``): keep only the audio
        from the first written frame's time to the end of the last one (packet-exact), not the whole
        track. ``audio_from``: an open input container to take audio from instead of reopening
        ``source`` (a pipe's); see :mod:`vidrestore.media.pipe`."""
        self.path = check_output_path(output, source=source, overwrite=overwrite)
        ext = self.path.suffix.lower()
        self._init_state(info, config, audio_from, trim_audio)
        self._tmp: Path | None = self.path.with_name(
            f".{self.path.stem}.vidrestore-{secrets.token_hex(4)}{ext}")
        self._ext = ext
        # the folder as opened now: the temp file is removed from it even if it is moved meanwhile;
        try:  # commit refuses when the folder at the output path is no longer this one
            self._dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise write_failure(e, self.path) or OutputError(f"cannot open the output folder ({e})",
                                                             path=self.path) from e
        self._overwrite = overwrite
        if ext in IMAGE_EXTS:
            if not info.is_image:
                self.abort()
                raise OutputError("image output needs a still-image input; use a video extension",
                                  path=self.path)
            self._image_bytes: bytes | None = None
            self._keep_alpha = info.has_alpha and ext in ALPHA_EXTS
            if info.has_alpha and not self._keep_alpha:
                self.stats.warn("alpha dropped")
            self.stats.video_codec = ext.lstrip(".")
            return
        self._format = VIDEO_FORMATS[ext]
        self._start(str(self._tmp), source)

    def _init_state(self, info: VideoInfo, config: EncodeConfig, audio_from: object | None,
                    trim_audio: bool = False) -> None:
        self._trim_audio = trim_audio
        self._audio_end: float | None = None     # trim_audio: end of the last written frame (seconds)
        self.info = info
        self.config = config
        self.stats = EncodeStats()
        self._audio_from = audio_from
        self._done = False
        self._dir_fd: int | None = None   # VideoWriter: the output folder, opened (pipes: none)
        self._audio: AudioMuxer | None = None
        self._container: av.container.OutputContainer | None = None
        self._last_pts: int | None = None
        self._k = (int(info.rotation) // 90) % 4

    def _start(self, url: str, source: Path | None) -> None:
        """Open the output container at ``url`` (a file or ``pipe:1``) and write the header."""
        try:
            # Matroska would otherwise shift every stream so the earliest packet (often AAC priming at
            # -0.023 s) starts at 0, moving the video; it can store the small negative times itself.
            opts = {"avoid_negative_ts": "disabled"} if self._format in ("matroska", "webm") else {}
            self._container = av.open(url, "w", format=self._format, options=opts)
            self._setup_video(source)
            self._container.start_encoding()  # opens the codecs and writes the header: fail early
        except (av.FFmpegError, OSError, ValueError) as e:
            self.abort()
            raise write_failure(e, self.path) or OutputError(f"cannot create the output ({' '.join(str(e).split())[:200]})",
                              path=self.path) from e

    # -- setup -----------------------------------------------------------------------------------
    def _choose_codec(self) -> tuple[str, str]:
        cfg, info, fmt = self.config, self.info, self._format
        codec = cfg.codec
        self._codec_opts: dict[str, str] = {}
        if codec == DEFAULT_CODEC and fmt == "webm":
            codec = "libvpx-vp9"
        if codec in CODEC_ALIASES:
            codec, alias_pix, self._codec_opts = CODEC_ALIASES[codec]
            if alias_pix.startswith("yuv444p10") and info.has_alpha and cfg.pix_fmt is None:
                alias_pix = "yuva444p10le"
            cfg = replace(cfg, pix_fmt=cfg.pix_fmt or alias_pix)
        self._keep_alpha = False
        if info.has_alpha:
            if codec == DEFAULT_CODEC and fmt in ALPHA_CODEC:
                codec = ALPHA_CODEC[fmt]
            self._keep_alpha = codec in ALPHA_PIX and cfg.pix_fmt in (None, ALPHA_PIX[codec])
            if not self._keep_alpha:
                self.stats.warn("alpha dropped")
        if cfg.pix_fmt:
            pix = cfg.pix_fmt
        elif self._keep_alpha:
            pix = ALPHA_PIX[codec]
        elif codec == "ffv1":
            pix = "bgr0"
        elif codec == "prores_ks":
            pix = "yuv422p10le"
        elif codec in ("png",):
            pix = "rgb24"
        elif codec == "libx264" and cfg.crf == 0:
            pix = "yuv444p"
        else:
            pix = "yuv420p"
        table = HIGH_ALPHA_PIX if self._keep_alpha else HIGH_PIX
        if not cfg.pix_fmt and info.bit_depth > 8 and codec in table:
            depth = {9: 10, 11: 12, 13: 16, 14: 16, 15: 16}.get(info.bit_depth, min(info.bit_depth, 16))
            high = table[codec].format(d=depth)
            supported = av.Codec(codec, "w").video_formats
            if supported and high not in {f.name for f in supported}:
                high = table[codec].format(d=10)
            if not supported or high in {f.name for f in supported}:
                pix = high
        w, h = info.stored_width, info.stored_height
        if codec in CHROMA_420 and pix in ("yuv420p", "nv12", "yuv420p10le") and not (_even(w) and _even(h)):
            pix = "yuv444p10le" if pix == "yuv420p10le" else "yuv444p"
            self.stats.warn("odd size: yuv444p")
        return codec, pix

    def _setup_video(self, source: Path | None) -> None:
        info, cfg, out = self.info, self.config, self._container
        codec, pix = self._choose_codec()
        rate = info.avg_rate if info.avg_rate else Fraction(25)
        stream = out.add_stream(codec, rate=rate)
        cc = stream.codec_context
        stream.width, stream.height = info.stored_width, info.stored_height
        stream.pix_fmt = pix
        stream.time_base = info.time_base
        cc.time_base = info.time_base
        cc.thread_count = cfg.threads
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        opts: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            if cfg.crf is not None:
                opts["crf"] = f"{cfg.crf:g}"
            if cfg.preset:
                opts["preset"] = cfg.preset
        elif codec in ("libvpx-vp9", "libvpx"):
            opts.update({"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
            if cfg.crf is not None:
                opts["crf"] = f"{min(cfg.crf, 63):g}"
                if cfg.crf == 0 and codec == "libvpx-vp9":
                    opts["lossless"] = "1"
        elif codec == "prores_ks":
            opts["profile"] = "4444" if pix.startswith(("yuva", "yuv444")) else "hq"
        elif codec == "dnxhd":   # DNxHR: resolution-independent profiles
            opts["profile"] = "dnxhr_444" if pix.startswith(("yuv444", "gbr")) else \
                ("dnxhr_hqx" if pix_bits(pix) > 8 else "dnxhr_hq")
        opts.update(self._codec_opts)
        stream.options = opts
        self._rgb_out = av.VideoFormat(pix).is_rgb
        self._high = pix_bits(pix) > 8   # write Frame.rgb_hi (uint16) when the frame has it
        self._colour = colour_tags(self.info)
        if not self._rgb_out:
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = self._colour
        else:   # RGB output: no matrix, but primaries and transfer still describe the pixels
            cc.color_primaries, cc.color_trc = self._colour[2], self._colour[3]
        if self._k:
            stream.set_display_rotation(int(info.rotation))
        self._stream = stream
        self.stats.video_codec, self.stats.pix_fmt = codec, pix
        for k, v in info.metadata.items():
            if k.lower() not in DROP_CONTAINER_META:
                out.metadata[k] = v
        if self._audio_from is not None and self.config.copy_audio:
            self._audio = self._audio_from(out, self._format, self.stats.warn)
        elif source is not None and self.config.copy_audio and not info.is_image:
            self._audio = AudioMuxer(Path(source), out, self._format, self.stats.warn)
            if self._audio.video_metadata:
                stream.metadata.update(self._audio.video_metadata)

    # -- writing ---------------------------------------------------------------------------------
    def _to_stored(self, img: np.ndarray) -> np.ndarray:
        return rot90(img, -self._k)

    def write(self, frame: Frame) -> None:
        if self._done:
            raise EncodeError("write after commit/abort", path=self.path)
        want = (self.info.height, self.info.width, 3)
        if frame.rgb.shape != want or frame.rgb.dtype != np.uint8:
            raise EncodeError(f"frame {frame.index} is {frame.rgb.shape} {frame.rgb.dtype}, "
                              f"expected {want} uint8", path=self.path)
        if self._container is None:
            self._write_image(frame)
            return
        hi = frame.rgb_hi if (self._high and frame.rgb_hi is not None
                              and frame.rgb_hi.dtype == np.uint16) else None
        rgb = self._to_stored(frame.rgb if hi is None else hi)
        if self._keep_alpha:
            alpha = (self._to_stored(frame.alpha) if frame.alpha is not None
                     else np.full(rgb.shape[:2], 255, np.uint8))
            if hi is None:
                vf = av.VideoFrame.from_ndarray(np.dstack([rgb, alpha]), format="rgba")
            else:
                vf = av.VideoFrame.from_ndarray(np.dstack([rgb, alpha.astype(np.uint16) * 257]),
                                                format="rgba64le")
        else:
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24" if hi is None else "rgb48le")
        pix = self._stream.pix_fmt
        space, rng, prim, trc = self._colour
        if self._rgb_out:
            vf = vf.reformat(format=pix)
            vf.color_primaries, vf.color_trc = prim, trc
        else:
            matrix = MATRIX_IDS[self.info.decode_matrix or "bt709"]
            vf = vf.reformat(format=pix, dst_colorspace=matrix, src_color_range=2, dst_color_range=rng)
            vf.colorspace, vf.color_range, vf.color_primaries, vf.color_trc = space, rng, prim, trc
        pts = frame.pts
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            step = max(1, round(1 / ((self.info.avg_rate or 25) * self.info.time_base)))
            pts = 0 if self._last_pts is None else self._last_pts + step
            if frame.pts is not None:
                self.stats.warn("non-increasing pts adjusted")
        self._last_pts = pts
        vf.pts = pts
        vf.time_base = self.info.time_base
        t = float(pts * self.info.time_base)
        try:
            if self._audio is not None and self._trim_audio:
                if self._audio_end is None:
                    self._audio.drop_until(t)            # the range's first frame: audio starts here
                rate = self.info.avg_rate
                self._audio_end = t + (1.0 / float(rate) if rate else 0.0)
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.mux_until(t)
        except (av.FFmpegError, OSError) as e:
            raise write_failure(e, self.path) or EncodeError(f"encoding frame {frame.index} failed ({' '.join(str(e).split())[:200]})",
                              path=self.path) from e
        self.stats.frames += 1
        if self._audio is not None:
            self.stats.audio_packets = self._audio.packets

    def copy_packet(self, packet: av.Packet, *, pts: int) -> None:
        """Mux an already encoded packet of an intra-only codec made with this writer's settings at
        ``pts`` (source time base), keeping audio interleaved: the stream-copy join of chunked runs."""
        packet.stream = self._stream
        packet.time_base = self.info.time_base
        packet.pts = packet.dts = pts
        try:
            self._container.mux(packet)
            if self._audio is not None:
                self._audio.mux_until(float(pts * self.info.time_base))
                self.stats.audio_packets = self._audio.packets
        except av.FFmpegError as e:
            raise EncodeError(f"muxing a copied packet failed ({' '.join(str(e).split())[:200]})",
                              path=self.path) from e
        self.stats.frames += 1

    def _write_image(self, frame: Frame) -> None:
        if self._image_bytes is not None:
            raise EncodeError("an image output takes exactly one frame", path=self.path)
        self._image_bytes = encode_image(self._ext, frame.rgb, frame.alpha if self._keep_alpha else None)
        self.stats.frames += 1

    # -- finishing -------------------------------------------------------------------------------
    def commit(self) -> None:
        """Flush the encoder, mux the remaining audio, close, and rename the temp file over the target."""
        if self._done:
            return
        if self.stats.frames == 0:
            self.abort()
            raise EncodeError("no frames were written; output not created", path=self.path)
        try:
            if self._container is None:
                self._tmp.write_bytes(self._image_bytes)
            else:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.finish(until=self._audio_end if self._trim_audio else None)
                    self.stats.audio_packets = self._audio.packets
                self._container.close()
                self._container = None
            if self._tmp is not None:
                self._rename()
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None
        except OutputError:
            self.abort()
            raise
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise write_failure(e, self.path) or EncodeError(f"finishing the output failed ({' '.join(str(e).split())[:200]})",
                              path=self.path) from e
        self._done = True

    def _rename(self) -> None:
        """Move the finished temp file onto the target. Without overwrite the target must still not
        exist (another run may have created it meanwhile): a hard link refuses to replace it."""
        opened, now = os.fstat(self._dir_fd), os.stat(self.path.parent)
        if (opened.st_dev, opened.st_ino) != (now.st_dev, now.st_ino):
            raise OutputError(f"cannot write the output: the output folder {self.path.parent} "
                              "disappeared (moved or replaced)", path=self.path)
        if self._overwrite:
            os.replace(self._tmp, self.path)
            return
        try:
            os.link(self._tmp, self.path)
        except OSError as e:
            no_links = e.errno in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)
            if not isinstance(e, FileExistsError) and not no_links:
                raise
            if isinstance(e, FileExistsError) or self.path.exists():  # no hard links (FAT): check, rename
                raise OutputError("output already exists (created by another run meanwhile); "
                                  "nothing replaced", path=self.path) from None
            os.replace(self._tmp, self.path)
            return
        self._tmp.unlink()

    def abort(self) -> None:
        """Close everything and delete the temporary file; the target is not touched."""
        self._done = True
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError, ValueError):
                pass
            self._container = None
        if self._tmp is None:
            pass                          # a pipe: nothing of ours on disk
        elif self._dir_fd is not None:
            try:
                os.unlink(self._tmp.name, dir_fd=self._dir_fd)
            except OSError:  # never created (read-only folder, ...) or already gone
                pass
            os.close(self._dir_fd)
            self._dir_fd = None
        else:
            self._tmp.unlink(missing_ok=True)
