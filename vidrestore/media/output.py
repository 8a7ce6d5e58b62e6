"""What an output is, where it goes and how it appears: the file extensions we write (video containers
by name, images); the codec, pixel format and colour tags an output gets (defaults and alpha-capable
codecs per container, intermediate codecs by name, the formats that keep a >8-bit source's depth); the
checks made on an output path before any work; the file system's refusals turned into one-line errors;
and the commit-or-abort contract every writer follows (the output appears whole, by one rename, or not
at all).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import av

from ..config import EncodeConfig
from ..errors import OutputError
from ..types import VideoInfo
from .image import IMAGE_EXTS

VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                 ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts"}

DEFAULT_CODEC = EncodeConfig().codec
ALPHA_CODEC = {"mov": "prores_ks", "matroska": "ffv1", "avi": "ffv1", "webm": "libvpx-vp9"}
ALPHA_PIX = {"prores_ks": "yuva444p10le", "ffv1": "bgra", "libvpx-vp9": "yuva420p", "png": "rgba",
              "libvpx": "yuva420p"}
CHROMA_420 = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libsvtav1", "mpeg4", "mpeg2video"}
MATRIX_IDS = {"bt709": 1, "bt601": 5, "bt2020": 9, "smpte240m": 7, "fcc": 4}
COLORSPACE_IDS = {"gbr": 0, "bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7,
                   "bt2020nc": 9, "bt2020c": 10}
PRIMARIES_IDS = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "film": 8,
                  "bt2020": 9}
TRC_IDS = {"bt709": 1, "gamma22": 4, "gamma28": 5, "smpte170m": 6, "smpte240m": 7, "linear": 8,
            "iec61966-2-1": 13, "bt2020-10": 14, "bt2020-12": 15, "smpte2084": 16, "arib-std-b67": 18}
DROP_CONTAINER_META = {"major_brand", "minor_version", "compatible_brands", "encoder"}
# intermediate codecs by name: (FFmpeg encoder, pix_fmt, encoder options)
CODEC_ALIASES = {"prores_hq": ("prores_ks", "yuv422p10le", {"profile": "hq"}),
                 "prores_4444": ("prores_ks", "yuv444p10le", {"profile": "4444"}),
                 "dnxhr_hqx": ("dnxhd", "yuv422p10le", {"profile": "dnxhr_hqx"}),
                 "dnxhr_hq": ("dnxhd", "yuv422p", {"profile": "dnxhr_hq"}),
                 "dnxhr_444": ("dnxhd", "yuv444p10le", {"profile": "dnxhr_444"})}
# >8-bit sources keep their depth with these codecs when --pix-fmt is not given
HIGH_PIX = {"libx264": "yuv420p10le", "libx265": "yuv420p{d}le", "libvpx-vp9": "yuv420p10le",
             "ffv1": "gbrp{d}le", "prores_ks": "yuv422p10le", "dnxhd": "yuv422p10le",
             "wrapped_avframe": "yuv444p{d}le", "rawvideo": "yuv444p{d}le"}

HIGH_ALPHA_PIX = {"ffv1": "gbrap{d}le", "prores_ks": "yuva444p10le"}


def pix_bits(pix: str) -> int:
    """Bits per component of a pixel format (8 for 'yuv420p', 10 for 'yuv420p10le')."""
    return max(c.bits for c in av.VideoFormat(pix).components)


def colour_tags(info: VideoInfo) -> tuple[int, int, int, int]:
    """(colorspace, range, primaries, transfer) FFmpeg enum values for an output of ``info``'s source:
    the matrix the frames were decoded with (the source's own tag only when the source was YUV - an RGB
    source reports "gbr"), full range only when decoded so, primaries and transfer copied (2 =
    unspecified)."""
    matrix = info.decode_matrix or "bt709"
    derived = {"bt601": 6}.get(matrix, MATRIX_IDS[matrix])
    space = COLORSPACE_IDS.get(info.color_space or "", derived) if info.decode_matrix else derived
    rng = 2 if (info.decode_matrix and info.decode_range == "pc") else 1
    return space, rng, PRIMARIES_IDS.get(info.color_primaries or "", 2), TRC_IDS.get(info.color_trc or "", 2)


def check_output_path(output: str | Path, *, source: Path | None, overwrite: bool) -> Path:
    """Validate an output path before any work; returns it absolute. Raises :class:`OutputError`."""
    out = Path(os.path.abspath(Path(output).expanduser()))
    ext = out.suffix.lower()
    if ext not in VIDEO_FORMATS and ext not in IMAGE_EXTS:
        known = " ".join(sorted(VIDEO_FORMATS) + list(IMAGE_EXTS))
        raise OutputError(f"unknown output extension '{ext or '(none)'}' (use one of: {known})", path=out)
    if not out.parent.is_dir():
        raise OutputError(f"output folder does not exist: {out.parent}", path=out)
    if not os.access(out.parent, os.W_OK | os.X_OK):   # fail before any work
        ro = os.statvfs(out.parent).f_flag & os.ST_RDONLY
        raise OutputError("cannot write the output: " + _WRITE_CAUSES[errno.EROFS if ro else errno.EACCES]
                          .format(folder=out.parent), path=out)
    if source is not None:
        src = Path(source)
        same = os.path.realpath(out) == os.path.realpath(src)
        if not same and out.exists() and src.exists():
            same = os.path.samefile(out, src)
        if same:
            raise OutputError("output is the input file; choose another output name", path=out)
    if out.is_dir():
        raise OutputError("output is a folder", path=out)
    if out.exists() and not overwrite:
        raise OutputError("output already exists (use overwrite / -y to replace it)", path=out)
    return out


_GONE, _DENIED = "the output folder {folder} disappeared", "no permission to write in {folder}"
_WRITE_CAUSES = {errno.ENOSPC: "no space left on {folder}", errno.EDQUOT: "no space left on {folder} (quota)",
                 errno.EFBIG: "file too large for {folder} (file size limit reached)",
                 errno.EROFS: "{folder} is read-only", errno.EACCES: _DENIED, errno.EPERM: _DENIED,
                 errno.ENOENT: _GONE, errno.ENOTDIR: _GONE, errno.ESTALE: _GONE,
                 errno.EIO: "I/O error writing to {folder}"}


def write_failure(e: BaseException, out: Path) -> OutputError | None:
    """An OutputError naming the cause when ``e`` is the file system refusing a write (full,
    read-only, gone); None for anything else (an encoder problem)."""
    code = getattr(e, "errno", None)
    if code not in _WRITE_CAUSES:
        return None
    return OutputError("cannot write the output: " + _WRITE_CAUSES[code].format(folder=out.parent),
                       path=out)


class CommitOnSuccess:
    """``with writer:`` commits when the block ends normally and aborts (nothing left behind) when it
    raises - the output-writer contract of :class:`VideoWriter` and the image-sequence writer."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
