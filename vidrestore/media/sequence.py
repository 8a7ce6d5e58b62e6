"""Image sequences as video: ``frames/%06d.png``, a folder of images, or a glob, in and out.

Same interface as :class:`~vidrestore.media.decode.VideoReader` / :class:`~vidrestore.media.encode.VideoWriter`,
so a sequence is tracked and smoothed like any video.

* **Input**: a printf pattern (``shot_%04d.tif``: the files that match, any start number, gaps allowed),
  a folder (every ``.png .tif .tiff .jpg .jpeg .webp .bmp`` in it) or a glob (``'shot/*.png'``, quoted).
  Files are ordered by the last number in their name (then by name). Frame ``k`` numbered ``n`` gets
  ``pts = n - first`` in a time base of ``1/fps`` (``--fps``, default 25), so gaps in the numbering stay
  gaps in time. 16-bit PNG/TIFF keep a uint16 plane (``Frame.rgb_hi``); grey images become RGB;
  4-channel images deliver alpha (8-bit). Every image must have the size of the first; one that
  cannot be read stops the run with an :class:`InputError` naming it (a skipped frame would shift
  the numbering).
* **Output**: a pattern (``out/%06d.png``) or a folder (``out/``: the input's own file names, or
  ``%06d.png`` for a video input). PNG and TIFF are written at 16 bits when the frame has a 16-bit
  plane (10/12/16-bit sources), else 8; JPEG is 8-bit. Alpha is kept in PNG/TIFF/WebP. Files are
  numbered like the input (a sequence's own numbers; a video's frames from 1).
* **Atomic**: images go to a hidden folder beside the target (``.NAME.vidrestore-XXXX``) that is
  renamed to the target folder when complete (the target must not exist or be empty). With ``-y`` and
  a non-empty target, the finished images are moved into it one by one at the end (not atomic; other
  files in it are left alone). On error the hidden folder is deleted.
"""
from __future__ import annotations

import glob as globmod
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..config import DecodeConfig, EncodeConfig
from ..errors import EncodeError, InputError, OutputError
from ..types import Frame, VideoInfo
from .decode import DecodeStats
from .pixels import to_8bit
from .encode import EncodeStats
from .output import CommitOnSuccess

SEQUENCE_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp", ".bmp")
_DEEP_EXTS = (".png", ".tif", ".tiff")
_ALPHA_EXTS = (".png", ".tif", ".tiff", ".webp")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def is_sequence_input(path: str | Path) -> bool:
    s = str(path)
    return "%" in Path(s).name or Path(s).is_dir() or (any(c in s for c in "*?[") and not Path(s).exists())


def is_sequence_output(path: str | Path) -> bool:
    s = str(path)
    return "%" in Path(s).name or s.endswith(("/", os.sep)) or Path(s).is_dir()


def _number(p: Path) -> int | None:
    m = _LAST_NUMBER.search(p.stem)
    return int(m.group(1)) if m else None


def list_images(spec: str | Path) -> list[Path]:
    """The files a pattern, folder or glob names, in frame order."""
    s = str(spec)
    if "%" in Path(s).name:
        folder, name = Path(s).parent, Path(s).name
        m = _PRINTF.search(name)
        if m is None:
            raise InputError("pattern must contain %d or %0Nd", path=s)
        width = int(m.group(2) or 0)
        digits = rf"\d{{{width}}}" if m.group(1) and width else (rf"\d{{{width},}}" if width else r"\d+")
        rx = re.compile(re.escape(name[:m.start()]) + f"({digits})" + re.escape(name[m.end():]) + "$")
        files = [folder / f for f in os.listdir(folder) if rx.match(f)] if folder.is_dir() else []
    elif Path(s).is_dir():
        files = [p for p in Path(s).iterdir() if p.suffix.lower() in SEQUENCE_EXTS and p.is_file()]
    else:
        files = [Path(f) for f in globmod.glob(s) if Path(f).is_file()]
    return sorted(files, key=lambda p: (_number(p) is None, _number(p) or 0, p.name))


def name_pattern(p: Path) -> str:
    """'frame_000123.png' -> 'frame_%06d.png'; a name without a number -> '%06d' + suffix."""
    m = _LAST_NUMBER.search(p.stem)
    if not m:
        return "%06d" + p.suffix
    d = m.group(1)
    spec = f"%0{len(d)}d" if len(d) > 1 and d.startswith("0") or len(d) >= 4 else "%d"
    return p.stem[:m.start()].replace("%", "%%") + spec + p.stem[m.end():].replace("%", "%%") + p.suffix


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(rgb uint8, rgb_hi uint16 | None, alpha uint8 | None) of one image file."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError("cannot be read as an image", path=path)
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported sample type {img.dtype} (8- or 16-bit images only)", path=path)
    if img.ndim == 2:
        img = img[..., None]
    alpha = img[..., 3] if img.shape[2] == 4 else None
    rgb = img[..., 2::-1] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    rgb = np.ascontiguousarray(rgb)
    if img.dtype == np.uint16:
        alpha = None if alpha is None else to_8bit(np.ascontiguousarray(alpha))
        return to_8bit(rgb), rgb, alpha
    return rgb, None, None if alpha is None else np.ascontiguousarray(alpha)


class SequenceReader:
    """Streaming reader over an image sequence; see the module docstring."""

    def __init__(self, spec: str | Path, *, config: DecodeConfig = DecodeConfig()) -> None:
        self.path = Path(spec)
        self.config = config
        self.stats = DecodeStats()
        self.files = list_images(spec)
        if not self.files:
            raise InputError("no images found (pattern, folder or glob matches no image file)", path=spec)
        numbers = [_number(p) for p in self.files]
        self.numbers = numbers if None not in numbers and len(set(numbers)) == len(numbers) \
            else list(range(len(self.files)))
        rgb, hi, alpha = read_image(self.files[0])
        self._first = (rgb, hi, alpha)
        rate = Fraction(config.fps).limit_denominator(1001)
        h, w = rgb.shape[:2]
        self.info = VideoInfo(
            path=self.path, container="image_sequence", codec=self.files[0].suffix.lstrip(".").lower(),
            width=w, height=h, stored_width=w, stored_height=h, rotation=0, time_base=1 / rate,
            avg_rate=rate, start_time_s=0.0, duration_s=float((self.numbers[-1] - self.numbers[0] + 1) / rate),
            frame_count_estimate=len(self.files), pix_fmt="rgb48le" if hi is not None else "rgb24",
            bit_depth=16 if hi is not None else 8, color_range="pc", color_space=None,
            color_primaries=None, color_trc=None, has_alpha=alpha is not None, sample_aspect_ratio=None,
            sequence_pattern=name_pattern(self.files[0]), sequence_start=self.numbers[0])
        self.stats.warn(f"image sequence timed at {float(rate):g} fps (--fps)")
        self._iterated = False

    def __enter__(self) -> SequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._first = None

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("SequenceReader can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        first, want = self.numbers[0], (self.info.height, self.info.width)
        for k, (path, n) in enumerate(zip(self.files, self.numbers)):
            rgb, hi, alpha = self._first if k == 0 and self._first else read_image(path)
            if rgb.shape[:2] != want:
                raise InputError(f"is {rgb.shape[1]}x{rgb.shape[0]}, the sequence is "
                                 f"{want[1]}x{want[0]}", path=path)
            if self.info.has_alpha and alpha is None:
                alpha = np.full(want, 255, np.uint8)
            yield Frame(index=k, pts=n - first, time_base=self.info.time_base, rgb=rgb,
                        alpha=alpha if self.info.has_alpha else None, rgb_hi=hi)
            self.stats.frames += 1
        self._first = None


@dataclass
class _Target:
    folder: Path
    pattern: str
    ext: str = field(init=False)

    def __post_init__(self) -> None:
        self.ext = Path(self.pattern).suffix.lower()


def sequence_target(output: str | Path, info: VideoInfo | None) -> _Target:
    s = str(output)
    if "%" in Path(s).name:
        return _Target(Path(os.path.abspath(Path(s).parent)), Path(s).name)
    pattern = (info.sequence_pattern if info is not None and info.sequence_pattern else None) or "%06d.png"
    return _Target(Path(os.path.abspath(s)), pattern)


def check_sequence_output(output: str | Path, *, source: str | Path | None, overwrite: bool) -> Path:
    t = sequence_target(output, None)
    if "%" in Path(str(output)).name:
        if t.ext not in SEQUENCE_EXTS:
            raise OutputError(f"unknown image extension '{t.ext or '(none)'}' (use one of: "
                              f"{' '.join(SEQUENCE_EXTS)})", path=output)
        if not _PRINTF.search(t.pattern):
            raise OutputError("pattern must contain %d or %0Nd", path=output)
    if not t.folder.parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {t.folder.parent}", path=output)
    if t.folder.exists() and not t.folder.is_dir():
        raise OutputError("output folder is a file", path=output)
    if source is not None and is_sequence_input(source):
        files = list_images(source)
        if files and any(os.path.realpath(f.parent) == os.path.realpath(t.folder) for f in files[:1]):
            raise OutputError("output folder is the input folder; choose another folder", path=output)
    if t.folder.is_dir() and any(t.folder.iterdir()) and not overwrite:
        raise OutputError("output folder exists and is not empty (use -y to write into it)", path=output)
    return t.folder


class SequenceWriter(CommitOnSuccess):
    """Write frames as numbered images into a folder, atomically; see the module docstring."""

    def __init__(self, output: str | Path, *, info: VideoInfo, source: str | Path | None = None,
                 config: EncodeConfig = EncodeConfig(), overwrite: bool = False) -> None:
        check_sequence_output(output, source=source, overwrite=overwrite)
        self.info, self.config, self.overwrite = info, config, overwrite
        self.target = sequence_target(output, info)
        self.path = self.target.folder
        if self.target.ext not in SEQUENCE_EXTS:
            raise OutputError(f"unknown image extension '{self.target.ext}'", path=output)
        self.stats = EncodeStats(video_codec=self.target.ext.lstrip("."))
        self._keep_alpha = info.has_alpha and self.target.ext in _ALPHA_EXTS
        if info.has_alpha and not self._keep_alpha:
            self.stats.warn("alpha dropped")
        self._tmp = self.path.with_name(f".{self.path.name}.vidrestore-{secrets.token_hex(4)}")
        try:
            self._tmp.mkdir()
        except OSError as e:
            raise OutputError(f"cannot create a folder beside the output ({e.strerror})", path=output) from e
        self._done = False
        self._names: list[str] = []

    def _number(self, frame: Frame) -> int:
        if self.info.sequence_pattern is not None and frame.pts is not None:
            return self.info.sequence_start + round(frame.pts * frame.time_base / self.info.time_base)
        return frame.index + 1

    def write(self, frame: Frame) -> None:
        import cv2

        if self._done:
            raise EncodeError("write after commit/abort", path=self.path)
        ext = self.target.ext
        deep = frame.rgb_hi is not None and frame.rgb_hi.dtype == np.uint16 and ext in _DEEP_EXTS
        img = frame.rgb_hi if deep else frame.rgb
        bgr = img[..., ::-1]
        if self._keep_alpha:
            a = frame.alpha if frame.alpha is not None else np.full(img.shape[:2], 255, np.uint8)
            bgr = np.dstack([bgr, a.astype(np.uint16) * 257 if deep else a])
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
        name = self.target.pattern % self._number(frame)
        ok = cv2.imwrite(str(self._tmp / name), np.ascontiguousarray(bgr), params)
        if not ok:
            raise EncodeError(f"could not write image {name}", path=self.path)
        self._names.append(name)
        self.stats.frames += 1
        self.stats.pix_fmt = ("rgba" if self._keep_alpha else "rgb") + ("48" if deep else "24")

    def commit(self) -> None:
        if self._done:
            return
        if self.stats.frames == 0:
            self.abort()
            raise EncodeError("no frames were written; output not created", path=self.path)
        try:
            if self.path.is_dir() and any(self.path.iterdir()):      # -y into a non-empty folder
                for name in self._names:
                    os.replace(self._tmp / name, self.path / name)
                self._tmp.rmdir()
            else:
                os.rename(self._tmp, self.path)                     # replaces an empty folder
        except OSError as e:
            self.abort()
            raise EncodeError(f"finishing the output failed ({e})", path=self.path) from e
        self._done = True

    def abort(self) -> None:
        self._done = True
        shutil.rmtree(self._tmp, ignore_errors=True)
