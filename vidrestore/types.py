"""Data that crosses stage boundaries. Small frozen dataclasses; shapes and units in the comments.

Frames carry their own presentation timestamp and time base: nothing downstream assumes a constant
frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int                 # stream index in the container
    codec: str                 # e.g. "aac", "opus"
    sample_rate: int | None
    channels: int | None
    language: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str             # FFmpeg format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str                 # video codec name, e.g. "h264"
    width: int                 # upright width in pixels (after rotation)
    height: int                # upright height in pixels (after rotation)
    stored_width: int          # width as coded
    stored_height: int
    rotation: int              # display-matrix degrees as PyAV reports (counter-clockwise), 0/±90/180
    time_base: Fraction        # of the video stream
    avg_rate: Fraction | None  # average frame rate, None if unknown
    start_time_s: float | None # first video pts in seconds, as stored (may be non-zero or negative)
    duration_s: float | None   # container or stream duration, None if unknown
    frame_count_estimate: int | None  # header count; an estimate, never trusted for correctness
    pix_fmt: str               # source pixel format, e.g. "yuv420p10le"
    bit_depth: int             # bits per component of the source
    color_range: str | None    # "tv"/"pc"/None
    color_space: str | None    # e.g. "bt709"
    color_primaries: str | None
    color_trc: str | None
    has_alpha: bool
    sample_aspect_ratio: Fraction | None
    audio: tuple[AudioStreamInfo, ...] = ()
    is_image: bool = False     # a still image (jpg/png/webp...), one frame
    metadata: dict[str, str] = field(default_factory=dict, compare=False)
    decode_matrix: str | None = None  # YUV->RGB matrix actually used ("bt709"/"bt601"/"bt2020"...), None for RGB/gray
    decode_range: str | None = None   # source range actually assumed for the conversion, "tv"/"pc"
    sequence_pattern: str | None = None  # image sequences: file-name template, e.g. "frame_%06d.png"
    sequence_start: int = 0    # image sequences: number of the first file (pts 0)


@dataclass(frozen=True)
class Frame:
    index: int                 # decode order number, 0-based, counting only frames delivered
    pts: int | None            # presentation timestamp in time_base units, as stored
    time_base: Fraction
    rgb: np.ndarray            # (H, W, 3) uint8, upright, RGB
    alpha: np.ndarray | None = None  # (H, W) uint8 upright, when the source has alpha
    # full-precision copy of ``rgb`` for sources above 8 bits: (H, W, 3) uint16 (video/images; 10/12-bit
    # values scaled to 0..65535) or float32 in [0, 1] (frames API). ``rgb`` is what the analysis sees;
    # paste and the encoder use this plane when present, so pixels outside faces keep their precision.
    rgb_hi: np.ndarray | None = None

    @property
    def time_s(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


@dataclass(frozen=True)
class Face:
    box: np.ndarray            # (4,) float32 x1, y1, x2, y2 in upright frame pixels
    landmarks: np.ndarray      # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    score: float

    @property
    def size(self) -> float:
        """Longer side of the box in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    frame_index: int
    face: Face                 # as detected (or propagated) in this frame
    landmarks: np.ndarray      # (5, 2) float32 landmarks used for alignment (smoothed when smoothing)
    detected: bool = True      # False when propagated through a detection gap


@dataclass(frozen=True)
class Alignment:
    track_id: int
    matrix: np.ndarray         # (2, 3) float32 affine: upright frame pixels -> crop pixels
    crop_size: int             # side of the square crop, 512 for GFP-GAN
    face_size: float           # face box long side in frame pixels


@dataclass(frozen=True)
class TrackSummary:
    track_id: int
    first_frame: int
    last_frame: int
    frames: int                # frames in which the track had a face (detected or propagated)
    raw_jitter_px: float | None       # RMS of second differences of raw landmarks
    smoothed_jitter_px: float | None  # same after smoothing


def as_float32(a: np.ndarray | list) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))
