"""Temporal landmark smoothing per track: a centred local polynomial fit with a fixed look-ahead.

For frame t of a track, the 5 landmarks (10 numbers) of the same track in frames t-B .. t+L are fitted with
a Gaussian-weighted polynomial in time (degree 1 by default: a local line) and the fit is evaluated at t.
A local line reproduces constant-velocity motion exactly, so there is no lag, and at the start or end of a
track (samples on one side only) it extrapolates the local trend instead of pulling towards the interior,
so there is no overshoot and no lag there either. Tracks with gaps simply have fewer samples in the window;
propagated faces (``detected=False``) are left out of the fit whenever enough detected samples exist, so they
are interpolated from real detections rather than from the tracker's prediction.

Parameters: L = ``SmoothConfig.lookahead`` frames (the output delay), B = max(L, 2) frames back,
sigma = ``strength`` * max(L, 2) / 2 frames. ``strength`` 0 turns smoothing off: frames pass through
unchanged with delay 0. With L = 0 the fit is causal (little smoothing, no lag).

Jitter: RMS over frames and landmarks of the second difference |p(t+1) - 2 p(t) + p(t-1)| (pixels), counted
where a track is present in three consecutive frames, for the raw and the smoothed landmarks.
"""
from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from vidrestore.config import SmoothConfig
from vidrestore.types import TrackedFace, TrackSummary

Emitted = tuple[int, list[TrackedFace]]


class _JitterMeter:
    """Running RMS of second differences of a (5, 2) point sequence over consecutive frames."""

    def __init__(self) -> None:
        self.prev: list[tuple[int, np.ndarray]] = []
        self.sum_sq = 0.0
        self.count = 0

    def add(self, frame: int, pts: np.ndarray) -> None:
        if self.prev and self.prev[-1][0] != frame - 1:
            self.prev = []
        self.prev.append((frame, np.asarray(pts, np.float64)))
        if len(self.prev) == 3:
            d2 = self.prev[2][1] - 2 * self.prev[1][1] + self.prev[0][1]
            self.sum_sq += float((d2 ** 2).sum(-1).sum())
            self.count += d2.shape[0]
            self.prev.pop(0)

    def value(self) -> float | None:
        return None if self.count == 0 else float(np.sqrt(self.sum_sq / self.count))


class LandmarkSmoother:
    """Streaming smoother; push frames in order, get back frames that are final (``delay`` frames later)."""

    def __init__(self, *, config: SmoothConfig = SmoothConfig()) -> None:
        self.config = config
        self.enabled = config.strength > 0
        span = max(config.lookahead, 2)
        self.delay: int = config.lookahead if self.enabled else 0
        self._back = span
        self._sigma = config.strength * span / 2.0
        self._degree = config.degree
        self._pending: deque[Emitted] = deque()
        self._hist: dict[int, dict[int, tuple[np.ndarray, bool]]] = {}   # track -> frame -> (lm (5,2), detected)
        self._raw: dict[int, _JitterMeter] = {}
        self._smooth: dict[int, _JitterMeter] = {}
        self._last_frame: int | None = None

    def push(self, frame_index: int, faces: list[TrackedFace]) -> list[Emitted]:
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frames must be pushed in increasing order ({frame_index} after {self._last_frame})")
        self._last_frame = frame_index
        for tf in faces:
            lm = np.asarray(tf.landmarks, np.float64)
            self._hist.setdefault(tf.track_id, {})[frame_index] = (lm, tf.detected)
            self._raw.setdefault(tf.track_id, _JitterMeter()).add(frame_index, lm)
        self._pending.append((frame_index, list(faces)))
        out = []
        while self._pending and self._pending[0][0] <= frame_index - self.delay:
            out.append(self._finish(*self._pending.popleft()))
        return out

    def flush(self) -> list[Emitted]:
        out = [self._finish(*item) for item in self._pending]
        self._pending.clear()
        return out

    def jitter(self) -> dict[int, tuple[float, float]]:
        """track_id -> (raw_jitter_px, smoothed_jitter_px) for tracks with three consecutive emitted frames."""
        out = {}
        for tid, meter in self._raw.items():
            raw = meter.value()
            sm = self._smooth.get(tid)
            smoothed = sm.value() if sm is not None else None
            if raw is not None and smoothed is not None:
                out[tid] = (raw, smoothed)
        return out

    def _finish(self, frame: int, faces: list[TrackedFace]) -> Emitted:
        result = []
        for tf in faces:
            lm = self._smoothed(tf.track_id, frame) if self.enabled else np.asarray(tf.landmarks, np.float64)
            self._smooth.setdefault(tf.track_id, _JitterMeter()).add(frame, lm)
            result.append(dataclasses.replace(tf, landmarks=lm.astype(np.float32)) if self.enabled else tf)
        self._prune(frame)
        return frame, result

    def _prune(self, emitted_frame: int) -> None:
        oldest = emitted_frame + 1 - self._back          # still needed by the next frame to emit
        for tid in list(self._hist):
            h = self._hist[tid]
            for f in [f for f in h if f < oldest]:
                del h[f]
            if not h:
                del self._hist[tid]

    def _smoothed(self, track_id: int, frame: int) -> np.ndarray:
        hist = self._hist[track_id]
        own = hist[frame][0]
        window = [(f, lm, det) for f, (lm, det) in hist.items()
                  if frame - self._back <= f <= frame + self.config.lookahead]
        degree = self._degree
        if not any(f < frame for f, _, _ in window) or not any(f > frame for f, _, _ in window):
            degree = min(degree, 1)              # one-sided (track start/end): a line, no curved overshoot
        detected = [w for w in window if w[2]]
        samples = detected if len(detected) >= 2 else window
        if len(samples) < 2:
            return own
        # a detected frame's fit needs more samples than coefficients (else it just interpolates the noise);
        # a propagated frame may be bridged by a line through the detections around it
        own_in = any(f == frame for f, _, _ in samples)
        degree = min(degree, len(samples) - (2 if own_in else 1))
        u = np.array([f - frame for f, _, _ in samples], np.float64)
        y = np.stack([lm.reshape(-1) for _, lm, _ in samples])                 # (K, 10)
        w = np.exp(-0.5 * (u / self._sigma) ** 2)
        x = np.vander(u, degree + 1, increasing=True)                          # (K, d+1): 1, u, u^2
        xtw = x.T * w
        try:
            coef = np.linalg.solve(xtw @ x, xtw @ y)                           # (d+1, 10)
        except np.linalg.LinAlgError:
            return own
        return coef[0].reshape(5, 2)


def with_jitter(summaries: list[TrackSummary], jitter: dict[int, tuple[float, float]]) -> list[TrackSummary]:
    """Summaries with the raw/smoothed jitter fields filled from :meth:`LandmarkSmoother.jitter`."""
    return [dataclasses.replace(s, raw_jitter_px=jitter[s.track_id][0], smoothed_jitter_px=jitter[s.track_id][1])
            if s.track_id in jitter else s for s in summaries]
