"""Temporal landmark smoothing per track with a fixed look-ahead: a fixed-lag Kalman (RTS) smoother (default)
or a centred local polynomial fit.

``method="rts"`` (default). Each of a track's 10 landmark coordinates follows a polynomial motion model of
``degree`` (2: constant acceleration, state = position, velocity, acceleration; 1: constant velocity; 0: random
walk) driven by white noise of variance q per frame, observed with unit noise. The 10 coordinates share one
model, so one 3x3 covariance and one gain serve all of them. A forward Kalman filter runs as frames arrive;
frame t is emitted when frame t+L has been pushed, as the Rauch-Tung-Striebel backward pass from the track's
latest step down to t, i.e. the optimal estimate given everything up to t+L. The estimate only depends on q
(relative to the unit observation noise), and a face twice as large moving twice as fast with twice the noise
gives exactly twice the numbers, so one q serves every face size: q = Q[degree] / strength**6 (strength scales
the smoother's time constant; Q[2] = 0.01 was chosen with benchmarks/smooth_quality.py). A noise-free
polynomial path of that degree comes out unchanged, track starts (diffuse prior) and ends (no future samples:
the forward estimate) included. Gaps in a track are predicted across; propagated faces (``detected=False``) are
treated as gaps, so they are interpolated from the detections around them; after more than ``_RESET_GAP``
missing frames the filter starts afresh.

``method="poly"`` (the earlier smoother, kept for comparison). For frame t, the samples of the same track in
frames t-B .. t+L are fitted with a Gaussian-weighted polynomial of ``degree`` and the fit is evaluated at t
(B = max(L, 2), sigma = strength * max(L, 2) / 2); one-sided windows at track ends use a line; propagated faces
are left out of the fit whenever enough detected samples exist.

Both: L = ``SmoothConfig.lookahead`` frames is the output delay; ``strength`` 0 turns smoothing off (frames
pass through unchanged with delay 0).

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

_Q = {0: 1.0, 1: 0.1, 2: 0.01}      # process noise per degree at strength 1 (observation noise = 1)
_RESET_GAP = 30                     # a track missing this many frames restarts its filter
# Chunked runs: the RTS filter has a decaying memory (the steady-state error dynamics shrink a difference in
# the starting state by about 0.79x per frame at Q[2]), so after this many frames of warm-up its output is
# within 1e-3 px of a run that saw the whole history - not bit-exact, as the polynomial window was.
RTS_WARMUP = 60


def _motion_model(degree: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, Q): state transition and process noise of a polynomial motion model, one frame per step."""
    if degree == 0:
        f, g = np.ones((1, 1)), np.ones((1, 1))
    elif degree == 1:
        f, g = np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[0.5], [1.0]])
    else:
        f, g = np.array([[1.0, 1.0, 0.5], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]), np.array([[1 / 6], [0.5], [1.0]])
    return f, q * (g @ g.T)


class _TrackFilter:
    """Forward Kalman filter of one track; steps[i] = (frame, x_pred, P_pred, x_filt, P_filt), one per frame."""

    def __init__(self, frame: int, y: np.ndarray, f: np.ndarray, q: np.ndarray) -> None:
        self.f, self.q = f, q
        d = f.shape[0]
        x = np.zeros((d, y.size))
        x[0] = y
        p = np.diag([1.0] + [1e6] * (d - 1))           # diffuse prior on the derivatives
        self.steps: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [(frame, x, p, x, p)]

    @property
    def last(self) -> int:
        return self.steps[-1][0]

    def add(self, frame: int, y: np.ndarray | None) -> None:
        """Predict up to ``frame`` (predict-only across missing frames), update with ``y`` when given."""
        f, q = self.f, self.q
        _, _, _, x, p = self.steps[-1]
        for g in range(self.last + 1, frame + 1):
            xp, pp = f @ x, f @ p @ f.T + q
            x, p = xp, pp
            if g == frame and y is not None:
                k = pp[:, :1] / (pp[0, 0] + 1.0)
                x = xp + k @ (y[None] - xp[:1])
                p = pp - k @ pp[:1]
            self.steps.append((g, xp, pp, x, p))

    def smoothed(self, frame: int) -> np.ndarray:
        """RTS estimate of the position at ``frame`` given every step so far."""
        i = next(j for j in range(len(self.steps) - 1, -1, -1) if self.steps[j][0] == frame)
        xs = self.steps[-1][3]
        for j in range(len(self.steps) - 2, i - 1, -1):
            _, _, _, xf, pf = self.steps[j]
            _, xp, pp, _, _ = self.steps[j + 1]
            c = pf @ self.f.T @ np.linalg.inv(pp)
            xs = xf + c @ (xs - xp)
        return xs[0]

    def prune(self, oldest: int) -> None:
        """Drop steps before ``oldest`` (keeping the latest one, which the next prediction starts from)."""
        keep = next((j for j, st in enumerate(self.steps) if st[0] >= oldest), len(self.steps) - 1)
        del self.steps[:keep]


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
        self._rts = config.method == "rts"
        self._model = _motion_model(config.degree, _Q[config.degree] / max(config.strength, 1e-3) ** 6)
        self._filters: dict[int, _TrackFilter] = {}
        # frames of history a chunk must be given before its first emitted frame to match a whole run
        self.warmup: int = 0 if not self.enabled else (RTS_WARMUP if self._rts else self._back)
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
            if self._rts and self.enabled:
                self._filter(tf.track_id, frame_index, lm.reshape(-1) if tf.detected else None)
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
            lm = self._estimate(tf.track_id, frame) if self.enabled else np.asarray(tf.landmarks, np.float64)
            self._smooth.setdefault(tf.track_id, _JitterMeter()).add(frame, lm)
            result.append(dataclasses.replace(tf, landmarks=lm.astype(np.float32)) if self.enabled else tf)
        self._prune(frame)
        return frame, result

    def _filter(self, track_id: int, frame: int, y: np.ndarray | None) -> None:
        flt = self._filters.get(track_id)
        if flt is not None and frame - flt.last > _RESET_GAP:
            flt = None
        if flt is None:
            # a track starting with a propagated face still needs a first position: take it
            pos = y if y is not None else np.asarray(self._hist[track_id][frame][0]).reshape(-1)
            self._filters[track_id] = _TrackFilter(frame, pos, *self._model)
        else:
            flt.add(frame, y)

    def _estimate(self, track_id: int, frame: int) -> np.ndarray:
        if not self._rts:
            return self._smoothed(track_id, frame)
        return self._filters[track_id].smoothed(frame).reshape(5, 2)

    def _prune(self, emitted_frame: int) -> None:
        for tid in list(self._filters):
            flt = self._filters[tid]
            if emitted_frame - flt.last > _RESET_GAP:
                del self._filters[tid]
            else:
                flt.prune(emitted_frame + 1)
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
