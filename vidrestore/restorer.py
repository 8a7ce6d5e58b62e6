"""The frames API: restore faces in frames handed over one by one by a script or an editing host.

    r = Restorer(RestoreConfig(), on_faces=print)      # on_faces: per-frame faces and track IDs
    for out in r.restore_frames(frames): ...           # a generator over one shot
    outs = r.push(frame) ... outs += r.flush()         # or push-style, for hosts with callbacks
    r.reset()                                          # between shots: forget tracks and smoothing

Frames are (H, W, 3) RGB or (H, W, 4) RGBA, ``uint8`` (0..255), ``uint16`` (0..65535) or float
(0..1, float32 out), numpy arrays or torch tensors on any device (HWC). Each output has the input's
type, dtype, channel count and device. The network sees the frame rounded to 8-bit RGB; the faces are
blended into the frame at its own precision, so every pixel outside the pasted faces is returned
exactly as given (float values above 1 included), and alpha is never touched. With ``config.upscale``
the frames come back enlarged (as ``restore_video`` does: Lanczos or a Real-ESRGAN network, the
full-precision plane at its precision, alpha resized with Lanczos) with the faces pasted into them.

Frames come out in order, ``config.smooth.lookahead`` frames after they went in (the smoother's
look-ahead): ``push`` returns zero or more finished frames, ``flush`` the rest of the shot.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .backends.base import RestoreBackend
from .config import RestoreConfig
from .faces.detect import FaceDetector
from .faces.parse import FaceParser
from .pipeline import (_Analyser, _detector_for, _flush_due, _image_ops_for, _parser_for, _paste,
                       _restore_batch, _Work)
from .stages import StageClock
from .types import Frame


@dataclass(frozen=True)
class FaceInfo:
    track_id: int              # stable across frames of a shot (until reset())
    box: np.ndarray            # (4,) float32 x1, y1, x2, y2 in frame pixels (as detected or tracked)
    landmarks: np.ndarray      # (5, 2) float32 landmarks used for alignment (smoothed)
    restored: bool             # False when left alone (smaller than config.align.min_face)


@dataclass(frozen=True)
class FrameFaces:
    index: int                 # frame number since the last reset(), 0-based
    faces: tuple[FaceInfo, ...]


@dataclass(frozen=True)
class _Kind:
    """How a caller's frame looked, to give the result back the same way."""
    torch_device: Any | None   # torch.device for tensors, None for numpy
    torch_dtype: Any | None
    dtype: np.dtype            # numpy dtype of the result (float inputs -> float32)
    alpha: Any | None          # the caller's alpha channel, untouched (numpy, input dtype)


def _split(frame: Any, i: int) -> tuple[np.ndarray, np.ndarray | None, _Kind]:
    """Caller's frame -> (rgb uint8 for the analysis, full-precision rgb or None, kind)."""
    dev = tdt = None
    if isinstance(frame, torch.Tensor):
        dev, tdt = frame.device, frame.dtype
        frame = frame.detach().cpu().numpy()         # CUDA tensors: one download per frame
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"frame {i}: expected (H,W,3) RGB or (H,W,4) RGBA, got shape {a.shape}")
    alpha = a[..., 3].copy() if a.shape[2] == 4 else None
    rgb = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(rgb), None, _Kind(dev, tdt, np.dtype(np.uint8), alpha)
    if a.dtype == np.uint16:
        hi = np.ascontiguousarray(rgb)
        rgb8 = np.rint(hi.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
        return rgb8, hi, _Kind(dev, tdt, np.dtype(np.uint16), alpha)
    if np.issubdtype(a.dtype, np.floating):
        hi = np.ascontiguousarray(rgb, dtype=np.float32)
        rgb8 = np.rint(np.clip(hi, 0.0, 1.0) * 255.0).astype(np.uint8)
        return rgb8, hi, _Kind(dev, tdt, np.dtype(np.float32), alpha)
    raise ValueError(f"frame {i}: dtype {a.dtype} not supported (uint8, uint16 or float)")


def _join(rgb8: np.ndarray, hi: np.ndarray | None, kind: _Kind) -> Any:
    out = rgb8 if hi is None else hi
    if kind.alpha is not None:
        alpha = kind.alpha
        if alpha.shape[:2] != out.shape[:2]:     # --upscale: alpha resized like the colour (Lanczos)
            from .upscale.resize import resize_rgb
            alpha = resize_rgb(alpha, (out.shape[1], out.shape[0]))
        out = np.concatenate([out, alpha[..., None].astype(out.dtype, copy=False)], axis=2)
    if kind.torch_device is None:
        return out
    t = torch.from_numpy(np.ascontiguousarray(out))
    if kind.torch_dtype is not None and kind.torch_dtype.is_floating_point:
        t = t.to(kind.torch_dtype)
    return t.to(kind.torch_device)


class Restorer:
    """Restores faces in a stream of frames, for video-editing tools and notebooks (see the module)."""

    def __init__(self, config: RestoreConfig = RestoreConfig(), *,
                 restorer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 detector: FaceDetector | None = None,
                 backend: RestoreBackend | None = None,
                 parser: FaceParser | None = None,
                 on_faces: Callable[[FrameFaces], None] | None = None) -> None:
        from .backends.factory import create_backend
        self.config = config
        if backend is None:
            backend, self.backend_reason = create_backend(config.model, restorer=restorer)
        else:
            self.backend_reason = "backend passed by the caller"
        self.backend = backend
        self.ops = _image_ops_for(backend.device, config)
        self.detector = detector or (None if config.aligned else _detector_for(self.ops, config))
        self.parser = _parser_for(backend.device, config, parser)
        self.clock = StageClock()
        self.on_faces = on_faces
        self._upscaler = None            # --upscale: one FrameUpscaler per frame size (network loaded once)
        self.reset()

    def reset(self) -> None:
        """Start a new shot: tracks, track IDs and smoothing start over; frames pushed and not yet
        returned are dropped (call :meth:`flush` first to get them)."""
        self._analyser = _Analyser(self.config, self.detector, self.ops, self.clock)
        if self.parser is not None:
            self.parser.reset()
        self._pending: list[_Work] = []
        self._kinds: dict[int, _Kind] = {}
        self._next = 0
        self._shape: tuple[int, int] | None = None

    def push(self, frame: Any) -> list[Any]:
        """Add one frame; returns the frames finished so far (often none: look-ahead)."""
        i = self._next
        rgb8, hi, kind = _split(frame, i)
        if self._shape is not None and rgb8.shape[:2] != self._shape:
            raise ValueError(f"frame {i}: size {rgb8.shape[1]}x{rgb8.shape[0]} differs from the "
                             f"shot's {self._shape[1]}x{self._shape[0]} (call reset() between shots)")
        self._shape = rgb8.shape[:2]
        if self.config.upscale.active and (self._upscaler is None
                                           or self._upscaler.plan.input_size != (rgb8.shape[1], rgb8.shape[0])):
            from .upscale.stage import FrameUpscaler
            self._upscaler = FrameUpscaler(self.config.upscale, width=rgb8.shape[1], height=rgb8.shape[0],
                                           device=self.ops.device, model=self.config.model)
        self._next += 1
        self._kinds[i] = kind
        f = Frame(index=i, pts=i, time_base=_UNIT, rgb=self.ops.upload(rgb8), rgb_hi=hi)
        return self._drain(self._analyser.push(f), final=False)

    def flush(self) -> list[Any]:
        """End the shot: returns the frames still held back, then :meth:`reset`."""
        out = self._drain(self._analyser.flush(), final=True)
        self.reset()
        return out

    def restore_frames(self, frames: Iterable[Any], *,
                       on_faces: Callable[[FrameFaces], None] | None = None) -> Iterator[Any]:
        """One shot: every frame of ``frames``, restored, in order (starts with :meth:`reset`)."""
        if on_faces is not None:
            self.on_faces = on_faces
        self.reset()
        for frame in frames:
            yield from self.push(frame)
        yield from self.flush()

    __call__ = restore_frames

    def _drain(self, items: list[_Work], *, final: bool) -> list[Any]:
        self._pending.extend(items)
        if not _flush_due(self._pending, batch=self.backend.max_batch, idle=final):
            return []
        done = _restore_batch(self._pending, self.backend, self.ops, self.clock, self.parser)
        self._pending = []
        if self._upscaler is not None and done:   # enlarge, then paste the faces straight into it
            with self.clock.timed("upscale"):
                big = self._upscaler.upscale([w.frame for w in done])
            done = [replace(w, frame=f, source_size=(w.frame.rgb.shape[1], w.frame.rgb.shape[0]))
                    for w, f in zip(done, big)]
        out = []
        for w in done:
            pasted = _paste(w, self.config, self.ops, self.clock)
            if self.on_faces is not None:
                self.on_faces(_faces_of(w))
            out.append(_join(self.ops.to_host(pasted.rgb), pasted.rgb_hi,
                             self._kinds.pop(w.frame.index)))
        return out


def _faces_of(w: _Work) -> FrameFaces:
    restored = {a.track_id for a in w.alignments}
    return FrameFaces(index=w.frame.index, faces=tuple(
        FaceInfo(track_id=t.track_id, box=np.asarray(t.face.box, np.float32),
                 landmarks=np.asarray(t.landmarks, np.float32), restored=t.track_id in restored)
        for t in w.faces))


_UNIT = Fraction(1, 1)
