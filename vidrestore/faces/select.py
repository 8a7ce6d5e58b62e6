"""Which faces to restore: all of them, one per frame (the largest or the most central), or given track IDs.

Selection is by track, not by face, so the choice does not flicker from frame to frame:

- ``track_ids`` (``--track-ids 1,4``): only faces of these tracks (the IDs the report lists under
  ``tracks``; the same for the same input and options, since tracking is deterministic). Combined with
  ``faces``, the choice is made among those tracks.
- ``faces="largest"``: the track with the largest *median* face size (box long side) over the frames seen so
  far, which include the smoother's look-ahead: the selector observes every frame as it is tracked and selects
  when the frame leaves the smoother ``lookahead`` frames later.
- ``faces="center"`` (the authors' ``--only_center_face``): the track whose face centre has the smallest median
  distance to the frame centre, in units of the frame diagonal.

Hysteresis: the chosen track is kept as long as it is in the frame, unless another track present in the frame
is better by a clear margin (median size 25 % larger; median distance smaller by 0.05 frame diagonals). When
it leaves, the best present track takes over. Statistics cover each track's last ``_HISTORY`` observations;
tracks unseen for ``_HISTORY`` frames are forgotten.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from vidrestore.config import SelectConfig
from vidrestore.types import TrackedFace

_HISTORY = 300           # observations per track kept for the medians (about 10 s)
_SIZE_MARGIN = 1.25      # "largest": a challenger must be this much larger (median size)
_CENTER_MARGIN = 0.05    # "center": a challenger must be this much closer (frame diagonals)


class FaceSelector:
    """Observe every tracked frame (``observe``), then filter frames as they are emitted (``select``)."""

    def __init__(self, *, config: SelectConfig = SelectConfig()) -> None:
        self.config = config
        self._ids = frozenset(config.track_ids)
        self._sizes: dict[int, deque[float]] = {}
        self._dists: dict[int, deque[float]] = {}
        self._seen: dict[int, int] = {}
        self._chosen: int | None = None

    @property
    def active(self) -> bool:
        return self.config.faces != "all" or bool(self._ids)

    def observe(self, frame_index: int, faces: list[TrackedFace], width: int, height: int) -> None:
        if self.config.faces == "all":
            return
        diag = float(np.hypot(width, height)) or 1.0
        for tf in faces:
            box = np.asarray(tf.face.box, np.float64)
            centre = (box[:2] + box[2:]) / 2
            dist = float(np.hypot(centre[0] - width / 2, centre[1] - height / 2)) / diag
            self._sizes.setdefault(tf.track_id, deque(maxlen=_HISTORY)).append(tf.face.size)
            self._dists.setdefault(tf.track_id, deque(maxlen=_HISTORY)).append(dist)
            self._seen[tf.track_id] = frame_index
        for tid in [t for t, f in self._seen.items() if frame_index - f > _HISTORY]:
            del self._seen[tid], self._sizes[tid], self._dists[tid]

    def select(self, faces: list[TrackedFace]) -> list[TrackedFace]:
        if self._ids:
            faces = [tf for tf in faces if tf.track_id in self._ids]
        if self.config.faces == "all" or not faces:
            return faces
        present = {tf.track_id for tf in faces}
        best = max(present, key=self._score)
        if self._chosen not in present or self._better(best, self._chosen):
            self._chosen = best
        return [tf for tf in faces if tf.track_id == self._chosen]

    def _score(self, tid: int) -> float:
        """Higher is better: median size for "largest", minus median distance for "center"."""
        if self.config.faces == "largest":
            return float(np.median(self._sizes[tid])) if tid in self._sizes else 0.0
        return -float(np.median(self._dists[tid])) if tid in self._dists else -np.inf

    def _better(self, challenger: int, current: int) -> bool:
        if challenger == current:
            return False
        if self.config.faces == "largest":
            return self._score(challenger) > _SIZE_MARGIN * self._score(current)
        return self._score(challenger) > self._score(current) + _CENTER_MARGIN
