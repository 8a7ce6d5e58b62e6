"""Training data: aligned face folders (FFHQ layout) and face videos, degraded on the fly.

A sample is drawn by a *draw id* ``d`` (an int): image ``d % len(dataset)``, with every random choice
(flip, degradation) from ``numpy.random.default_rng([seed, d])``. ``DrawSampler`` yields the ids of
a seeded per-epoch permutation from any start position, so the data order after a resume is exactly
the one an uninterrupted run would have seen, whatever the number of workers.

Facial component boxes (left eye, right eye, mouth), JSON file keyed by image file stem:

    {"00000": {"left_eye": [cx, cy, half], "right_eye": [cx, cy, half], "mouth": [cx, cy, half]}, ...}

in pixels of the stored image ("left eye" = the eye on the image's left, as the authors'). This is the
authors' FFHQ_eye_mouth_landmarks_512.pth (a torch dict keyed by 8-digit dataset index with those
three arrays) turned into JSON: see :func:`convert_authors_components`. Alternatively a JSON file of
5-point landmarks per stem (``{"00000": [[x, y] x 5]}``, order left eye, right eye, nose, left mouth
corner, right mouth corner) gives boxes through :func:`components_from_landmarks`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidrestore.errors import ConfigError, InputError

from .config import DataConfig, DegradationConfig
from .degradations import degrade

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm")
PARTS = ("left_eye", "right_eye", "mouth")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("image folder does not exist", path=folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_EXTS)}) in the folder", path=folder)
    return paths


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], resized (area/bilinear) to size x size when given."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError("cannot read image", path=path)
    img = img[..., ::-1]
    if size is not None and img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img).astype(np.float32) / 255.0


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) [0, 1] -> (3, H, W) [-1, 1] (the authors' mean = std = 0.5 normalisation)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))) * 2.0 - 1.0


# ---------------------------------------------------------------------------------------------
# facial components

def components_from_landmarks(lm: np.ndarray) -> dict[str, list[float]]:
    """5 landmarks -> {part: [cx, cy, half]}. Heuristic sizes (the authors derived theirs from 68
    landmarks): eye half-size 0.15 x inter-ocular distance, mouth half-size 0.35 x mouth width + 5 %
    of the inter-ocular distance (on the 512 FFHQ template: 19 px and 45 px)."""
    lm = np.asarray(lm, dtype=np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    mouth = (lm[3] + lm[4]) / 2
    mw = float(np.linalg.norm(lm[4] - lm[3]))
    return {"left_eye": [*lm[0], 0.15 * iod], "right_eye": [*lm[1], 0.15 * iod],
            "mouth": [*mouth, 0.35 * mw + 0.05 * iod]}


def component_boxes(comp: dict[str, Any], *, scale: float, width: float, hflip: bool,
                    eye_enlarge_ratio: float) -> dict[str, torch.Tensor]:
    """{part: [cx, cy, half]} in stored-image pixels -> {part: (4,) x1, y1, x2, y2} at the training
    size, following the authors: flipping swaps the eyes and mirrors x (x -> width - x); a box is
    [c - half + 1, c + half]."""
    parts = {k: np.asarray(comp[k], dtype=np.float64) * scale for k in PARTS}
    if hflip:
        parts["left_eye"], parts["right_eye"] = parts["right_eye"], parts["left_eye"]
        for v in parts.values():
            v[0] = width - v[0]
    out = {}
    for k, (cx, cy, half) in parts.items():
        if "eye" in k:
            half = half * eye_enlarge_ratio
        out[f"loc_{k}"] = torch.tensor([cx - half + 1, cy - half + 1, cx + half, cy + half],
                                       dtype=torch.float32)
    return out


def load_components(data: DataConfig) -> dict[str, dict[str, list[float]]] | None:
    if data.component_file:
        raw = _read_json(data.component_file)
        return {str(k): {p: list(map(float, v[p])) for p in PARTS} for k, v in raw.items()}
    if data.landmarks_file:
        raw = _read_json(data.landmarks_file)
        return {str(k): components_from_landmarks(np.asarray(v)) for k, v in raw.items()}
    return None


FFHQ_TEMPLATE_512 = np.array([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02],
                              [201.26, 371.41], [313.09, 371.15]], np.float32)


def _read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", path=path) from None


def convert_authors_components(pth: str | Path, out_json: str | Path, image_folder: str | Path) -> int:
    """Turn the authors' FFHQ_eye_mouth_landmarks_512.pth (keys = 8-digit index into the sorted image
    list) into our JSON keyed by file stem. Returns the number of entries written. A weights-only load
    that admits numpy arrays and nothing else."""
    from .pretrained import load_torch
    raw = load_torch(pth, what="facial component file", numpy=True)   # numpy arrays, nothing that runs code
    names = [p.stem for p in list_images(image_folder)]
    out = {}
    for key, parts in raw.items():
        i = int(key)
        if i < len(names):
            out[names[i]] = {p: [float(x) for x in np.asarray(parts[p]).reshape(-1)[:3]] for p in PARTS}
    Path(out_json).write_text(json.dumps(out))
    return len(out)


# ---------------------------------------------------------------------------------------------
# datasets

class FaceDataset(Dataset):
    """Aligned faces (and optionally aligned frames of face videos) -> {lq, gt, loc_*} samples."""

    def __init__(self, data: DataConfig, degradation: DegradationConfig, *, out_size: int, seed: int,
                 need_components: bool = False) -> None:
        self.data, self.deg, self.out_size, self.seed = data, degradation, out_size, seed
        self.paths: list[Path] = list_images(data.train_dir) if data.train_dir else []
        self.components = load_components(data)
        self.videos = VideoFrames(data.video_dir, data.video_landmarks_dir) if data.video_dir else None
        if not self.paths and self.videos is None:
            raise ConfigError("data.train_dir or data.video_dir must be set")
        if need_components:
            if (self.components is None and not data.template_components
                    and not (self.videos and self.videos.has_landmarks)):
                raise ConfigError("component discriminators need data.component_file or data.landmarks_file "
                                  "(or set model.component_discriminators = false)")
            missing = [p.name for p in self.paths if p.stem not in (self.components or {})
                       and not data.template_components]
            if missing:
                raise InputError(f"{len(missing)} images have no component boxes (e.g. {missing[0]})",
                                 path=data.component_file or data.landmarks_file)
        self.need_components = need_components

    def __len__(self) -> int:
        return len(self.paths) + (len(self.videos) if self.videos else 0)

    def __getitem__(self, draw: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, int(draw)])
        index = int(draw) % len(self)
        if index < len(self.paths):
            img = read_image(self.paths[index])
            comp = (self.components or {}).get(self.paths[index].stem)
        else:
            img, comp = self.videos.frame(index - len(self.paths))
        if comp is None and self.data.template_components:
            comp = components_from_landmarks(FFHQ_TEMPLATE_512 * (img.shape[1] / 512))
        stored = img.shape[1]
        if img.shape[:2] != (self.out_size, self.out_size):
            interp = cv2.INTER_AREA if stored > self.out_size else cv2.INTER_LINEAR
            img = cv2.resize(img, (self.out_size, self.out_size), interpolation=interp)
        hflip = bool(self.data.use_hflip and rng.uniform() < 0.5)
        if hflip:
            img = np.ascontiguousarray(img[:, ::-1])
        lq, gt = degrade(img, self.deg, rng)
        sample: dict[str, Any] = {"lq": to_tensor(lq), "gt": to_tensor(gt), "index": index}
        if self.need_components:
            sample.update(component_boxes(comp, scale=self.out_size / stored, width=self.out_size,
                                          hflip=hflip, eye_enlarge_ratio=self.data.eye_enlarge_ratio))
        return sample


class VideoFrames:
    """Random access to the frames of every video in a folder via decord (opened lazily per worker).

    With a landmark folder, ``<stem>.json`` = {"frame index": [[x, y] x 5]} lists the usable frames;
    each is aligned to the FFHQ 512 template. Without it every frame is taken as an aligned face.
    """

    def __init__(self, folder: str, landmarks_dir: str | None) -> None:
        try:
            import decord  # noqa: F401
        except ImportError:
            from vidrestore.errors import BackendUnavailable
            raise BackendUnavailable("video training data needs decord: pip install decord") from None
        self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTS)
        if not self.files:
            raise InputError("no videos in the folder", path=folder)
        self.has_landmarks = landmarks_dir is not None
        self.items: list[tuple[int, int, np.ndarray | None]] = []    # (file, frame, landmarks)
        for f, path in enumerate(self.files):
            if landmarks_dir is not None:
                lms = _read_json(Path(landmarks_dir) / f"{path.stem}.json")
                for k in sorted(lms, key=int):
                    self.items.append((f, int(k), np.asarray(lms[k], dtype=np.float32).reshape(5, 2)))
            else:
                self.items.extend((f, i, None) for i in range(len(self._reader(f))))
        self._readers: dict[int, Any] = {}

    def _reader(self, f: int) -> Any:
        import decord
        readers = self.__dict__.setdefault("_readers", {})
        if f not in readers:
            readers[f] = decord.VideoReader(str(self.files[f]), ctx=decord.cpu(0), num_threads=1)
        return readers[f]

    def __getstate__(self) -> dict[str, Any]:          # readers are not picklable: reopen in workers
        return {**self.__dict__, "_readers": {}}

    def __len__(self) -> int:
        return len(self.items)

    def frame(self, i: int) -> tuple[np.ndarray, dict[str, list[float]] | None]:
        f, k, lm = self.items[i]
        frame = self._reader(f)[k].asnumpy()                     # (H, W, 3) uint8 RGB
        if lm is None:
            return frame.astype(np.float32) / 255.0, None
        m = align_matrix(lm)
        crop = warp(frame, m)
        lm_crop = lm @ m[:, :2].T + m[:, 2]
        return crop.astype(np.float32) / 255.0, components_from_landmarks(lm_crop)


def align_matrix(landmarks: np.ndarray, crop_size: int = 512) -> np.ndarray:
    """(5, 2) -> (2, 3) frame->crop similarity (vidrestore.faces.align when present, else OpenCV)."""
    try:
        from vidrestore.faces.align import similarity_from_landmarks
    except ImportError:
        template = FFHQ_TEMPLATE_512 * (crop_size / 512)
        m, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), template, method=cv2.LMEDS)
        return m.astype(np.float32)
    return similarity_from_landmarks(landmarks, crop_size=crop_size)


def warp(frame_rgb: np.ndarray, m: np.ndarray, crop_size: int = 512) -> np.ndarray:
    try:
        from vidrestore.faces.align import warp_crops
    except ImportError:
        return cv2.warpAffine(frame_rgb, m, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
    return warp_crops(frame_rgb, m[None], crop_size=crop_size)[0]


class DrawSampler(Sampler[int]):
    """Endless draw ids: epoch e visits ``default_rng([seed, e]).permutation(n)`` (offset by e * n).
    ``start`` = number of draws already consumed (all ranks together) for an exact resume.

    Distributed (``world_size`` > 1): of each global batch of ``per_rank x world_size`` consecutive
    draws, rank ``r`` gets block ``r`` (``per_rank`` = batch size x accumulation steps), so the ranks'
    micro-batches are the consecutive chunks one process with the same global batch would use."""

    def __init__(self, n: int, *, seed: int, start: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, per_rank: int = 1) -> None:
        self.n, self.seed, self.start, self.shuffle = n, seed, start, shuffle
        self.rank, self.world_size, self.per_rank = rank, world_size, per_rank

    def _all(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            order = (np.random.default_rng([self.seed, 0x5EED, epoch]).permutation(self.n)
                     if self.shuffle else np.arange(self.n))
            for i in order[offset:]:
                yield int(epoch * self.n + i)
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[int]:
        draws = self._all()
        if self.world_size == 1:
            yield from draws
            return
        lo = self.rank * self.per_rank
        while True:
            block = [next(draws) for _ in range(self.per_rank * self.world_size)]
            yield from block[lo: lo + self.per_rank]


class ValidationSet(Dataset):
    """Held-out GT faces; LQ from ``val_lq_dir`` (same names) or degraded with a fixed seed per image."""

    def __init__(self, data: DataConfig, degradation: DegradationConfig, *, out_size: int) -> None:
        self.paths = list_images(data.val_dir)[: data.val_max_images]
        self.lq_dir = Path(data.val_lq_dir) if data.val_lq_dir else None
        self.deg, self.out_size = degradation, out_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        gt = read_image(self.paths[i], self.out_size)
        if self.lq_dir is not None:
            lq = read_image(self.lq_dir / self.paths[i].name, self.out_size)
        else:
            lq, _ = degrade(gt, self.deg, np.random.default_rng([12345, i]))
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "name": self.paths[i].stem}
