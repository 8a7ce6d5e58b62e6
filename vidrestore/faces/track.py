"""Face tracking: detections -> stable track IDs.

Each live track predicts its box and landmarks for the current frame with a constant velocity (estimated
from its last two matched detections, extrapolated for at most ``TrackConfig.max_extrapolate`` frames, then
held). Association is a min-cost assignment (scipy's ``linear_sum_assignment``) with cost
``(1 - IoU) + mean landmark distance / face size``; pairs with IoU below ``iou_threshold`` *and* landmark
distance above ``max_landmark_distance`` face sizes are gated out (either cue alone admits a pair, so a fast
face whose box overlap dropped is still matched by its landmarks). Unmatched detections start new tracks.

Misses: a detection frame without a match counts one miss; a track dies after more than ``max_misses``
consecutive misses (an ID is kept through shorter gaps). During its first ``coast`` misses a track is still
emitted (predicted, ``detected=False``) so a single missed detection does not flicker the restoration; after
that it stays alive but silent until it is matched again or dies.

Frames that were not run through the detector (``faces=None``, detect every k-th frame) neither count as
misses nor update velocities; every live, recently matched track is emitted at its predicted position.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidrestore.config import TrackConfig
from vidrestore.types import Face, TrackedFace, TrackSummary

_INVALID = 1e6


@dataclass
class _Track:
    track_id: int
    frame: int                       # frame of the last matched detection
    box: np.ndarray                  # (4,) float64 at `frame`
    landmarks: np.ndarray            # (5, 2) float64 at `frame`
    score: float
    box_velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))        # px / frame
    lm_velocity: np.ndarray = field(default_factory=lambda: np.zeros((5, 2)))
    misses: int = 0                  # consecutive detection frames without a match
    first_frame: int = 0
    last_emitted: int = -1
    emitted: int = 0

    def predict(self, frame_index: int, max_extrapolate: int) -> tuple[np.ndarray, np.ndarray]:
        dt = float(min(max(frame_index - self.frame, 0), max_extrapolate))
        return self.box + self.box_velocity * dt, self.landmarks + self.lm_velocity * dt

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1], 1.0))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) x1 y1 x2 y2 boxes -> (N, M) intersection over union."""
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


class Tracker:
    """Streaming tracker: call :meth:`update` once per frame, in frame order."""

    def __init__(self, *, config: TrackConfig = TrackConfig()) -> None:
        self.config = config
        self._coast = min(config.coast, config.max_misses)
        self._live: list[_Track] = []
        self._done: list[_Track] = []
        self._next_id = 0

    def _emit(self, t: _Track, frame_index: int, face: Face | None) -> TrackedFace:
        if face is None:
            box, lm = t.predict(frame_index, self.config.max_extrapolate)
            face = Face(box=box.astype(np.float32), landmarks=lm.astype(np.float32), score=t.score)
            detected = False
        else:
            detected = True
        t.last_emitted = frame_index
        t.emitted += 1
        return TrackedFace(track_id=t.track_id, frame_index=frame_index, face=face,
                           landmarks=face.landmarks, detected=detected)

    def update(self, frame_index: int, faces: list[Face] | None) -> list[TrackedFace]:
        """Faces of this frame (None: the detector did not run on it) -> tracked faces, sorted by track id."""
        cfg = self.config
        if faces is None:
            return [self._emit(t, frame_index, None) for t in self._live if t.misses <= self._coast]
        matches = self._associate(frame_index, faces)
        out: list[TrackedFace] = []
        matched_tracks = set()
        for ti, di in matches:
            t, f = self._live[ti], faces[di]
            box, lm = np.asarray(f.box, np.float64), np.asarray(f.landmarks, np.float64)
            dt = frame_index - t.frame
            if 0 < dt <= cfg.max_extrapolate + 1:
                a = cfg.velocity_smoothing
                t.box_velocity = a * t.box_velocity + (1 - a) * (box - t.box) / dt
                t.lm_velocity = a * t.lm_velocity + (1 - a) * (lm - t.landmarks) / dt
            else:                                            # after a gap the old velocity is stale
                t.box_velocity = np.zeros(4)
                t.lm_velocity = np.zeros((5, 2))
            t.box, t.landmarks, t.score, t.frame, t.misses = box, lm, f.score, frame_index, 0
            matched_tracks.add(ti)
            out.append(self._emit(t, frame_index, f))
        matched_dets = {di for _, di in matches}
        survivors: list[_Track] = []
        for ti, t in enumerate(self._live):
            if ti not in matched_tracks:
                t.misses += 1
                if t.misses > cfg.max_misses:
                    self._done.append(t)
                    continue
                if t.misses <= self._coast:
                    out.append(self._emit(t, frame_index, None))
            survivors.append(t)
        for di, f in enumerate(faces):
            if di not in matched_dets:
                t = _Track(track_id=self._next_id, frame=frame_index, box=np.asarray(f.box, np.float64),
                           landmarks=np.asarray(f.landmarks, np.float64), score=f.score, first_frame=frame_index)
                self._next_id += 1
                survivors.append(t)
                out.append(self._emit(t, frame_index, f))
        self._live = survivors
        out.sort(key=lambda tf: tf.track_id)
        return out

    def _associate(self, frame_index: int, faces: list[Face]) -> list[tuple[int, int]]:
        if not self._live or not faces:
            return []
        cfg = self.config
        preds = [t.predict(frame_index, cfg.max_extrapolate) for t in self._live]
        pred_boxes = np.stack([p[0] for p in preds])
        pred_lms = np.stack([p[1] for p in preds])                                   # (N, 5, 2)
        det_boxes = np.stack([np.asarray(f.box, np.float64) for f in faces])
        det_lms = np.stack([np.asarray(f.landmarks, np.float64) for f in faces])     # (M, 5, 2)
        iou = iou_matrix(pred_boxes, det_boxes)
        sizes = np.array([t.size for t in self._live])[:, None]
        dist = np.linalg.norm(pred_lms[:, None] - det_lms[None], axis=-1).mean(-1) / sizes
        ok = (iou >= cfg.iou_threshold) | (dist <= cfg.max_landmark_distance)
        cost = np.where(ok, (1.0 - iou) + dist, _INVALID)
        if cost.shape == (1, 1):      # one face, one track: no solver (and no 0.3 s scipy.optimize import)
            return [(0, 0)] if ok[0, 0] else []
        from scipy.optimize import linear_sum_assignment   # imported here: ~0.3 s a start otherwise
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if ok[r, c]]

    def summaries(self) -> list[TrackSummary]:
        """Every track seen so far (finished and live), by id; jitter fields are left None."""
        tracks = sorted(self._done + self._live, key=lambda t: t.track_id)
        return [TrackSummary(track_id=t.track_id, first_frame=t.first_frame, last_frame=t.last_emitted,
                             frames=t.emitted, raw_jitter_px=None, smoothed_jitter_px=None) for t in tracks]
