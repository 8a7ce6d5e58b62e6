"""``--mask parse``: paste masks from a face-parsing network run on the restored crops.

:class:`FaceParser` runs ParseNet-512 (:mod:`vidrestore.models.parsenet`) on a batch of restored crops
(all the faces of several frames at once, in the restore stage, on the network's device), keeps the
face classes (:data:`vidrestore.faces.masks.PASTE_CLASSES`: skin, brows, eyes, glasses, ears, nose, mouth,
lips in; hair, hat, jewellery, neck, cloth and background out), smooths the class map over time per track and softens it
(:func:`vidrestore.faces.masks.soften_torch`: border, erosion, Gaussian edge).

Temporal smoothing: the hard class map of each track is an exponential moving average in crop
coordinates (``m_t = a * new + (1 - a) * m_{t-1}``, ``a`` = :data:`EMA_WEIGHT`), keyed by track id. The
crops of a track are aligned to the same template every frame, so crop coordinates follow the face; a
pixel that one frame calls skin and the next calls hair no longer switches the paste on and off. A track
not seen for more than :data:`MAX_GAP` frames starts afresh. Crops must arrive in frame order per track
(the restore stage guarantees it).

The parser is where the network runs; masks are returned as (K, S, S) float32 tensors on that device.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..config import PasteConfig
from .masks import select_classes_torch, soften, soften_torch

EMA_WEIGHT = 0.4        # weight of the newest parse; 0.4 halves a one-frame flip and damps it in ~3 frames
MAX_GAP = 2             # frames a track may be missing before its history is dropped
PARSE_SIZE = 512        # the released ParseNet works on 512x512 faces (crops of other sizes are resized)

LabelFn = Callable[[torch.Tensor], torch.Tensor]   # (N,3,512,512) in [-1,1] -> (N,512,512) int labels


class TemporalMaskSmoother:
    """EMA of per-track masks in crop coordinates (state: one (S, S) tensor per live track)."""

    def __init__(self, *, weight: float = EMA_WEIGHT, max_gap: int = MAX_GAP) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"EMA weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.max_gap = max_gap
        self._state: dict[int, tuple[int, torch.Tensor]] = {}   # track id -> (last frame index, mask)

    def update(self, masks: torch.Tensor, track_ids: Sequence[int], frame_indices: Sequence[int]) -> torch.Tensor:
        """(K, S, S) new masks of the given tracks at the given frames (in frame order) -> smoothed masks."""
        out = torch.empty_like(masks)
        for i, (tid, idx) in enumerate(zip(track_ids, frame_indices)):
            prev = self._state.get(int(tid))
            m = masks[i]
            if prev is not None and 0 < idx - prev[0] <= self.max_gap + 1 and prev[1].shape == m.shape:
                m = self.weight * m + (1.0 - self.weight) * prev[1]
            self._state[int(tid)] = (int(idx), m)
            out[i] = m
        if frame_indices:
            newest = max(frame_indices)
            self._state = {t: v for t, v in self._state.items() if newest - v[0] <= self.max_gap + 1}
        return out


class FaceParser:
    """Parse masks for batches of restored crops. ``labels``: a callable giving parsing labels
    (default: the ParseNet-512 checkpoint named by ``config.parse_weights``, loaded on ``device``)."""

    def __init__(self, *, config: PasteConfig, device: str | torch.device = "cpu",
                 labels: LabelFn | None = None) -> None:
        self.config = config
        self.device = torch.device(device)
        if labels is None:
            from ..models.parsenet import load_parsenet
            from ..models.weights import resolve_weights
            net = load_parsenet(resolve_weights(config.parse_weights)).to(self.device)
            labels = _argmax_labels(net)
        self._labels = labels
        self.smoother = TemporalMaskSmoother()

    def reset(self) -> None:
        """Forget every track's history (a new video or frame stream)."""
        self.smoother = TemporalMaskSmoother(weight=self.smoother.weight, max_gap=self.smoother.max_gap)

    def masks(self, restored: torch.Tensor, track_ids: Sequence[int],
              frame_indices: Sequence[int]) -> torch.Tensor:
        """(K, 3, S, S) restored crops in [-1, 1] -> (K, S, S) float32 soft masks on the crops' device."""
        k, s = restored.shape[0], restored.shape[-1]
        if k == 0:
            return torch.empty(0, s, s, dtype=torch.float32, device=restored.device)
        x = restored.to(self.device, torch.float32).clamp(-1.0, 1.0)
        if s != PARSE_SIZE:
            x = F.interpolate(x, size=(PARSE_SIZE, PARSE_SIZE), mode="bilinear", align_corners=False)
        hard = select_classes_torch(self._labels(x))
        if s != PARSE_SIZE:
            hard = F.interpolate(hard[:, None], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        hard = self.smoother.update(hard, track_ids, frame_indices)
        blur, erode = self.config.mask_blur, self.config.mask_erode
        if hard.device.type == "cpu":            # OpenCV's filters: same numbers, several times faster
            soft = torch.from_numpy(soften(hard.numpy(), blur=blur, erode=erode))
        else:
            soft = soften_torch(hard, blur=blur, erode=erode)
        return soft.to(restored.device)


def _argmax_labels(net: torch.nn.Module) -> LabelFn:
    def labels(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x)[0].argmax(dim=1)
    return labels
