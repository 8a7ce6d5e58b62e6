"""RetinaFace on torch tensors (the GPU twin of :class:`vidrestore.faces.detect.RetinaFaceDetector`).

Same steps and numbers as the onnxruntime detector, done where the frames already are: frames of
equal size are grouped and batched (``DetectConfig.batch``), resized so the long side is at most
``max_side`` with OpenCV's INTER_AREA weights (built exactly as separable matrices and applied as two
matmuls, then rounded half up to uint8 like ``cv2.resize``), converted to BGR minus the means, padded to a
multiple of 32 with the mean colour, and run through :func:`retinaface_module`. Priors are
thresholded on the device; only the surviving rows go to the host for decoding and NMS
(:mod:`vidrestore.models.retinaface`), then boxes and landmarks are scaled back to frame pixels.

Frames may be numpy arrays or (H, W, 3) uint8 tensors on any device.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from vidrestore.config import DetectConfig
from vidrestore.models import retinaface as rf
from vidrestore.models.numerics import use_product_numerics
from vidrestore.types import Face

from .detect import detection_size


def area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) float64 matrix of cv2.INTER_AREA downscaling along one axis (rows sum to 1).

    Each output cell averages the input interval [d * scale, (d + 1) * scale) with fractional
    weights at both ends (OpenCV's computeResizeAreaTab); dst == src is the identity."""
    if dst > src:
        raise ValueError(f"area weights only downscale ({src} -> {dst})")
    w = np.zeros((dst, src), dtype=np.float64)
    scale = src / dst
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        s1 = math.ceil(f1)
        s2 = min(math.floor(f2), src - 1)
        s1 = min(s1, s2)
        cell = min(scale, src - f1)
        if s1 - f1 > 1e-3:
            w[d, s1 - 1] += (s1 - f1) / cell
        for s in range(s1, s2):
            w[d, s] += 1.0 / cell
        if f2 - s2 > 1e-3:
            w[d, s2] += min(min(f2 - s2, 1.0), cell) / cell
    return w


class TorchRetinaFaceDetector:
    """RetinaFace-mobilenet0.25 in torch on ``device``; FaceDetector protocol."""

    name = "retinaface-mnet025-torch"

    def __init__(self, *, config: DetectConfig = DetectConfig(), device: str | torch.device = "cuda",
                 dtype: torch.dtype = torch.float32) -> None:
        from vidrestore.models.retinaface_torch import retinaface_module

        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        use_product_numerics(self.device)
        self.net = retinaface_module().to(device=self.device, dtype=dtype)
        self._mean = torch.tensor(rf.MEAN_BGR, dtype=torch.float32, device=self.device)
        self._weights: dict[tuple[int, int], Tensor] = {}

    # -- preprocessing -------------------------------------------------------------------------------
    def _area(self, src: int, dst: int) -> Tensor:
        key = (src, dst)
        if key not in self._weights:
            self._weights[key] = torch.from_numpy(area_weights(src, dst)).to(self.device, torch.float32)
        return self._weights[key]

    def _as_tensor(self, frame: Any) -> Tensor:
        if isinstance(frame, Tensor):
            t = frame
        else:
            a = np.asarray(frame)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise ValueError(f"detector expects (H, W, 3) uint8 RGB frames, got {a.shape} {a.dtype}")
            a = np.ascontiguousarray(a)
            # read-only frames (decoded planes, np.broadcast_to ...) are copied: torch.from_numpy
            # warns about them, and the tensor is only read on its way to the device anyway
            t = torch.from_numpy(a if a.flags.writeable else a.copy())
        if t.dim() != 3 or t.shape[2] != 3 or t.dtype != torch.uint8:
            raise ValueError(f"detector expects (H, W, 3) uint8 RGB frames, got {tuple(t.shape)} {t.dtype}")
        return t.to(self.device, non_blocking=True)

    def resize(self, frame: Tensor, width: int, height: int) -> Tensor:
        """(H, W, 3) uint8 -> (height, width, 3) float32 holding INTER_AREA values rounded to integers."""
        h, w = frame.shape[:2]
        x = frame.float()
        if (width, height) == (w, h):
            return x
        x = torch.einsum("yh,hwc->ywc", self._area(h, height), x)
        x = torch.einsum("xw,ywc->yxc", self._area(w, width), x)
        if h % height == 0 and w % width == 0:                # cv2's integer-factor path rounds half up,
            return torch.floor(x + 0.5).clamp_(0.0, 255.0)
        return torch.round(x).clamp_(0.0, 255.0)             # the general one half to even

    def make_input(self, frames: Sequence[Tensor], width: int, height: int, pad_w: int, pad_h: int) -> Tensor:
        """(N, 3, pad_h, pad_w) network input: resized, BGR minus the means, zero (= mean) padding."""
        x = torch.zeros(len(frames), 3, pad_h, pad_w, dtype=torch.float32, device=self.device)
        for i, f in enumerate(frames):
            img = self.resize(f, width, height)                       # (h, w, 3) RGB
            x[i, :, :height, :width] = (img.flip(-1) - self._mean).permute(2, 0, 1)
        return x.to(self.dtype)

    # -- detection -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, frames: Sequence[Any]) -> list[list[Face]]:
        tensors = [self._as_tensor(f) for f in frames]
        results: list[list[Face] | None] = [None] * len(tensors)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault((int(t.shape[0]), int(t.shape[1])), []).append(i)
        cfg = self.config
        for (h, w), idxs in groups.items():
            rw, rh = detection_size(w, h, cfg.max_side)
            sx, sy = w / rw, h / rh
            pw, ph = rf.padded_size(rw, rh)
            anchors = rf.priors(pw, ph)
            for start in range(0, len(idxs), cfg.batch):
                chunk = idxs[start:start + cfg.batch]
                loc, conf, lms = self.net(self.make_input([tensors[i] for i in chunk], rw, rh, pw, ph))
                scores = conf[..., 1].float()
                for b, i in enumerate(chunk):
                    keep_dev = torch.nonzero(scores[b] > cfg.score_threshold).flatten()
                    idx = keep_dev.cpu().numpy()
                    s = scores[b, keep_dev].cpu().numpy()
                    boxes, pts = rf.decode(loc[b, keep_dev].float().cpu().numpy(),
                                           lms[b, keep_dev].float().cpu().numpy(), anchors[idx])
                    keep = rf.nms(boxes, s, cfg.nms_threshold)
                    boxes = boxes[keep] * np.array([sx, sy, sx, sy], dtype=np.float32)
                    pts = pts[keep] * np.array([sx, sy], dtype=np.float32)
                    results[i] = [Face(box=np.ascontiguousarray(bx, dtype=np.float32),
                                       landmarks=np.ascontiguousarray(p, dtype=np.float32), score=float(sc))
                                  for bx, sc, p in zip(boxes, s[keep].astype(np.float32), pts)]
        return [r if r is not None else [] for r in results]
