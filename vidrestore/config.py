"""Frozen, keyword-only option dataclasses: one per stage, and RestoreConfig holding them all.

Validation lives in ``__post_init__`` and raises :class:`ConfigError` with the option's CLI name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
BackendName = Literal["auto", "torch", "onnxruntime", "tensorrt", "torch-tensorrt"]
RestorerName = Literal["gfpgan", "identity"]
BgUpsampler = Literal["lanczos", "realesrgan-x2", "realesrgan-x4", "realesr-general-x4v3", "none"]
MaskMode = Literal["face", "parse", "box"]
ColorMatch = Literal["none", "lab"]


Kernels = Literal["auto", "cupy", "torch"]
KERNEL_CHOICES: tuple[str, ...] = ("auto", "cupy", "torch")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def check_kernels(kernels: str) -> str:
    """``--kernels``' one check (ModelConfig, and the model/warp/NV12 entry points that take the choice
    directly): ConfigError naming the option unless it is auto, cupy or torch."""
    _check(kernels in KERNEL_CHOICES, f"--kernels {kernels!r} is not one of {', '.join(KERNEL_CHOICES)}")
    return kernels


@dataclass(frozen=True, kw_only=True)
class DecodeConfig:
    max_corrupt_packets: int = 1000  # give up (InputError) after this many undecodable packets
    threads: int = 0                 # FFmpeg decoder threads, 0 = FFmpeg's choice
    # Frame threading is ~2x faster on H.264 without slices, but FFmpeg's frame-threaded decoder silently
    # drops frames around a damaged packet (truncated_60pct_faststart.mp4: 65 instead of 67 frames, no
    # error raised), so the default is slice threading, which reports and skips exactly the bad packet.
    frame_threads: bool = False
    full_depth: bool = True          # >8-bit sources also keep a uint16 plane (Frame.rgb_hi)
    fps: float = 25.0                # frame rate given to image sequences (--fps)
    strict: bool = False             # --strict: any lost frame (corrupt packet, truncation) is an InputError
    max_pixels: int = 8192 * 8192    # larger frames (e.g. a damaged 30000x30000 header) are an InputError

    def __post_init__(self) -> None:
        _check(self.fps > 0, "--fps must be > 0")
        _check(self.max_corrupt_packets >= 0, "max_corrupt_packets must be >= 0")
        _check(self.max_pixels >= 1, "max_pixels must be >= 1")


@dataclass(frozen=True, kw_only=True)
class DetectConfig:
    score_threshold: float = 0.8     # keep detections with at least this confidence
    nms_threshold: float = 0.4
    max_side: int = 960              # frames are resized so the long side is at most this
    batch: int = 4                   # frames per detector call
    every: int = 1                   # detect on every k-th frame, propagate in between
    threads: int = 0                 # onnxruntime intra-op threads, 0 = default
    max_faces: int = 50              # --max-faces: per frame, the largest faces are kept (bounded work)

    def __post_init__(self) -> None:
        _check(self.max_faces >= 1, "--max-faces must be >= 1")
        _check(0.0 < self.score_threshold < 1.0, "--det-threshold must be in (0, 1)")
        _check(self.max_side >= 64, "detector max_side must be >= 64")
        _check(self.every >= 1, "--detect-every must be >= 1")
        _check(self.batch >= 1, "detector batch must be >= 1")


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    max_misses: int = 10             # frames a track survives without a matching detection
    iou_threshold: float = 0.3       # minimum IoU for an association
    max_landmark_distance: float = 0.5  # max mean landmark distance, in units of face size
    coast: int = 2                   # missed detections a track is still emitted (predicted); <= max_misses
    max_extrapolate: int = 5         # frames of constant-velocity prediction; held beyond (>= detect every - 1)
    velocity_smoothing: float = 0.5  # EMA factor of the track velocity (0 = last displacement only)

    def __post_init__(self) -> None:
        _check(self.max_misses >= 0, "--max-misses must be >= 0")
        _check(self.coast >= 0, "track coast must be >= 0")
        _check(self.max_extrapolate >= 0, "track max_extrapolate must be >= 0")
        _check(0.0 <= self.velocity_smoothing < 1.0, "track velocity_smoothing must be in [0, 1)")


@dataclass(frozen=True, kw_only=True)
class SmoothConfig:
    strength: float = 1.0            # 0 = off; 1 = default; larger smooths more (scales the time constant)
    lookahead: int = 4               # frames of look-ahead (output delay) for the smoother
    degree: int = 2                  # motion model / local polynomial degree (2 = constant acceleration)
    method: Literal["rts", "poly"] = "rts"   # fixed-lag Kalman (RTS) smoother, or the local polynomial fit

    def __post_init__(self) -> None:
        _check(self.strength >= 0.0, "--smoothing must be >= 0")
        _check(self.lookahead >= 0, "smoothing lookahead must be >= 0")
        _check(self.degree in (0, 1, 2), "smoothing degree must be 0, 1 or 2")
        _check(self.method in ("rts", "poly"), "--smoothing-method must be 'rts' or 'poly'")


@dataclass(frozen=True, kw_only=True)
class AlignConfig:
    crop_size: int = 512
    min_face: int = 32               # faces whose box long side is smaller are left alone (pixels)
    # resampling of the warp out (crops) and back (paste): Lanczos-4 keeps a round trip of large faces sharp
    interpolation: Literal["linear", "cubic", "lanczos"] = "lanczos"

    def __post_init__(self) -> None:
        _check(self.crop_size in (128, 256, 512, 1024), "crop_size must be 128/256/512/1024")
        _check(self.min_face >= 0, "--min-face must be >= 0")
        _check(self.interpolation in ("linear", "cubic", "lanczos"),
               "--interpolation must be 'linear', 'cubic' or 'lanczos'")


@dataclass(frozen=True, kw_only=True)
class SelectConfig:
    faces: Literal["all", "largest", "center"] = "all"   # restore every face, or one track per frame
    track_ids: tuple[int, ...] = ()  # only these tracks (IDs as the report lists them); () = every track

    def __post_init__(self) -> None:
        _check(self.faces in ("all", "largest", "center"), "--faces must be 'all', 'largest' or 'center'")
        _check(isinstance(self.track_ids, tuple) and all(isinstance(t, int) and t >= 0 for t in self.track_ids),
               "--track-ids must be a tuple of track IDs >= 0")


@dataclass(frozen=True, kw_only=True)
class PasteConfig:
    strength: float = 1.0            # blend of restored (1) and original (0) crop
    feather: float = 0.05            # box mask: feather width as a fraction of the crop side
    mask: MaskMode = "face"          # what of the crop is pasted (see vidrestore.faces.masks)
    mask_blur: float = 0.03          # face/parse: Gaussian sigma of the edge, fraction of the crop side
    mask_erode: float = 0.02         # face/parse: erosion before the blur, fraction of the crop side
    color_match: ColorMatch = "none"  # lab: match the restored face's Lab mean/std to the original's
    parse_weights: str = "parsenet"  # parse: a known name (downloaded on first use) or a .pth path

    def __post_init__(self) -> None:
        _check(0.0 <= self.strength <= 1.0, "--strength must be in [0, 1]")
        _check(0.0 <= self.feather <= 0.5, "feather must be in [0, 0.5]")
        _check(self.mask in ("face", "parse", "box"), f"--mask must be face, parse or box, got {self.mask!r}")
        _check(0.0 <= self.mask_blur <= 0.25, "--mask-blur must be in [0, 0.25] (a fraction of the face size)")
        _check(0.0 <= self.mask_erode <= 0.25, "--mask-erode must be in [0, 0.25] (a fraction of the face size)")
        _check(self.color_match in ("none", "lab"), f"--color-match must be none or lab, got {self.color_match!r}")


@dataclass(frozen=True, kw_only=True)
class EncodeConfig:
    codec: str = "libx264"
    crf: float | None = 18.0
    preset: str | None = "medium"
    pix_fmt: str | None = None       # None = chosen from codec and source
    threads: int = 0
    copy_audio: bool = True
    format: str | None = None        # container for "-o -" (y4m, nut, matroska, mpegts); -f

    def __post_init__(self) -> None:
        _check(self.crf is None or 0 <= self.crf <= 63, "--crf must be in [0, 63]")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    weights: str = "GFPGANv1.4"      # a known release name or a path to a .pth
    backend: BackendName = "auto"
    device: Device = "auto"
    precision: Precision = "fp32"
    batch: int = 0                   # faces per network call; 0 = auto (default_batch)
    restorer: RestorerName = "gfpgan"
    threads: int = 0                 # torch/onnxruntime intra-op threads, 0 = default
    kernels: Kernels = "auto"
    cache_dir: Path | None = None    # engines, ONNX files; default under $VIDRESTORE_HOME

    def __post_init__(self) -> None:
        _check(self.batch >= 0, "--batch must be >= 1 (or 0 for the device's default)")
        check_kernels(self.kernels)


@dataclass(frozen=True, kw_only=True)
class UpscaleConfig:
    scale: float = 1.0               # output = scale x input (>= 1; see vidrestore.upscale.resize.output_size)
    upsampler: BgUpsampler | None = None  # None = "lanczos" when scale > 1, else "none"
    weights: str | None = None       # a .pth for the network instead of its release
    tile: int = 0                    # input pixels per tile side; 0 = auto (384), -1 = whole frames
    tile_pad: int | None = None      # overlap each side; None = the network's receptive radius, at most 40
    batch: int = 0                   # frames per upsampler call; 0 = 1 on the CPU, 4 on a GPU

    def __post_init__(self) -> None:
        _check(1.0 <= self.scale <= 16.0, "--upscale must be in [1, 16]")
        _check(self.upsampler in (None, "lanczos", "realesrgan-x2", "realesrgan-x4", "realesr-general-x4v3",
                                  "none"), f"--bg-upsampler {self.upsampler!r} is not a known upsampler")
        _check(self.tile >= -1, "--tile must be >= 0 (0 = auto) or -1 (no tiling)")
        _check(self.tile_pad is None or self.tile_pad >= 0, "--tile-pad must be >= 0")
        _check(self.batch >= 0, "--bg-batch must be >= 1 (or 0 for the default)")

    @property
    def method(self) -> str:
        """What enlarges the background: "lanczos", "none" (bilinear) or a network name."""
        return self.upsampler or ("lanczos" if self.scale > 1 else "none")

    @property
    def active(self) -> bool:
        return self.scale > 1 or self.method not in ("lanczos", "none")


@dataclass(frozen=True, kw_only=True)
class RestoreConfig:
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    paste: PasteConfig = field(default_factory=PasteConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    # input frames are already aligned face crops (the authors' --aligned): restore each whole frame (resized
    # to the crop size and back when it is not that size), no detection, tracking or paste mask
    aligned: bool = False
    overwrite: bool = False
    queue_size: int = 8              # frames buffered between pipeline threads

    def __post_init__(self) -> None:
        _check(self.queue_size >= 1, "queue_size must be >= 1")
