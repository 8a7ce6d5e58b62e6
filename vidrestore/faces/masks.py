"""Paste masks in aligned-crop coordinates: what part of a restored crop goes back into the frame.

Three modes (``PasteConfig.mask``), all (S, S) float32 maps in [0, 1] over the S x S crop:

- ``box``: :func:`feather_mask`, the whole square with a smooth ramp at its edge (the behaviour
  before masks existed, kept bit-identical). Replaces hair, ears, background and anything else
  standing in the crop's corners.
- ``face``: :func:`face_mask`, the face outline of the FFHQ 512 template (:data:`FACE_OUTLINE_512`:
  brows to chin, cheek to cheek; not hair, ears, neck or background), eroded and feathered. It moves
  with the face because the crop does.
- ``parse``: a face-parsing network's classes on each restored crop (:func:`select_classes` with
  :data:`PASTE_CLASSES`: the face parts of the authors' table, without hair), eroded and feathered the same way (:func:`soften`); smoothed
  over time per track by :class:`vidrestore.faces.parse.FaceParser`.

Softening (``face`` and ``parse``): zero a thin border (10/512 of the side, as the authors' helper),
erode by ``erode * S`` pixels (square min filter), blur with a Gaussian of sigma ``blur * S``
(constant-0 border), zero the border again (the authors zero it after their blur), then snap values below 1/512 to 0 and above 1 - 1/512 to 1, so that pixels
outside the mask are kept bit-exactly and pixels inside get the restored value exactly.
:func:`soften_torch` is the same arithmetic on torch tensors (the GPU path).

Static masks are pure functions of their arguments, cached with lru_cache and returned read-only.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

    from vidrestore.config import PasteConfig

# Face outline of the FFHQ 512 template (the template of vidrestore.faces.align: eyes at y~240,
# mouth corners at y~371), clockwise from the left temple; x, y in crop pixels. Covers the brows and
# the lower forehead, cheek to cheek, down to the chin; leaves hair, ears, neck and corners out.
FACE_OUTLINE_512 = np.array([
    [126, 222], [146, 196], [176, 178], [214, 168], [256, 165], [298, 168], [336, 178], [366, 196],
    [386, 222], [394, 262], [394, 304], [388, 346], [376, 386], [356, 422], [328, 452], [294, 472],
    [256, 479], [218, 472], [184, 452], [156, 422], [136, 386], [124, 346], [118, 304], [118, 262],
], dtype=np.float64)
FACE_OUTLINE_512.setflags(write=False)

# Classes pasted for ParseNet's 19 CelebAMask-HQ labels, in the label order of facexlib's/PSFRGAN's
# parsers: 0 background, 1 skin, 2 nose, 3 eye_g(lasses), 4 l_eye, 5 r_eye, 6 l_brow, 7 r_brow, 8 l_ear,
# 9 r_ear, 10 mouth, 11 u_lip, 12 l_lip, 13 hair, 14 hat, 15 ear_r(ing), 16 neck_l(ace), 17 neck, 18 cloth.
# In: 1-12, the face parts. Out: background, hair, hat, earring, necklace, neck, cloth. facexlib 0.3.0's
# paste helper (MASK_COLORMAP) also pastes 13 (hair) and 15 (earring); the issue asks for hair to stay.
PASTE_CLASSES = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=np.float32)
PASTE_CLASSES.setflags(write=False)

BORDER_512 = 10                     # zeroed border of the authors' parse mask, in 512-crop pixels
_SNAP = 1.0 / 512.0                 # |alpha * (restored - frame)| < 0.5 level below this


@lru_cache(maxsize=8)
def feather_mask(crop_size: int, feather: float) -> np.ndarray:
    """``box``: (S, S) float32 in [0, 1], read-only: 0 at the crop border rising smoothly to 1 at
    2*feather*S (a separable smoothstep ramp — the erode + blur of GFP-GAN's square paste in closed form)."""
    width = 2.0 * feather * crop_size
    d = np.minimum(np.arange(crop_size) + 0.5, crop_size - 0.5 - np.arange(crop_size))   # distance to edge
    if width <= 0:
        r = np.ones(crop_size)
    else:
        t = np.clip(d / width, 0.0, 1.0)
        r = t * t * (3.0 - 2.0 * t)
    m = np.ascontiguousarray(np.outer(r, r), dtype=np.float32)
    m.setflags(write=False)
    return m


def face_outline(crop_size: int) -> np.ndarray:
    """(N, 2) float64 outline of the template face for an S x S crop."""
    return FACE_OUTLINE_512 * (crop_size / 512.0)


def hard_face_mask(crop_size: int) -> np.ndarray:
    """(S, S) float32: the template face outline filled (anti-aliased edge, 1/16-pixel vertices)."""
    img = np.zeros((crop_size, crop_size), np.uint8)
    pts = np.round((face_outline(crop_size) - 0.5) * 16).astype(np.int32)   # pixel centres at +0.5
    cv2.fillPoly(img, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return img.astype(np.float32) / np.float32(255.0)


def _erode_radius(crop_size: int, erode: float) -> int:
    return int(round(erode * crop_size))


def _gaussian_taps(crop_size: int, blur: float) -> np.ndarray | None:
    """1-D Gaussian (float64, sums to 1) of sigma blur*S and radius ceil(3 sigma); None for no blur."""
    sigma = blur * crop_size
    if sigma < 0.3:
        return None
    radius = max(int(np.ceil(3.0 * sigma)), 1)
    return cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_64F).ravel()


def _border(crop_size: int) -> int:
    return int(round(BORDER_512 * crop_size / 512.0))


def soften(hard: np.ndarray, *, blur: float, erode: float) -> np.ndarray:
    """Border-zero, erode, blur and snap an (S, S) or (K, S, S) hard mask in [0, 1]; float32 copy."""
    m = np.array(hard, dtype=np.float32, copy=True)
    if m.ndim == 3:
        return np.stack([soften(x, blur=blur, erode=erode) for x in m]) if len(m) else m
    s = m.shape[-1]
    b = _border(s)
    if b:
        m[:b], m[-b:], m[:, :b], m[:, -b:] = 0, 0, 0, 0
    r = _erode_radius(s, erode)
    if r > 0:
        m = cv2.erode(m, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=1.0)
    taps = _gaussian_taps(s, blur)
    if taps is not None:
        k = taps.astype(np.float32)
        m = cv2.sepFilter2D(m, cv2.CV_32F, k, k, borderType=cv2.BORDER_CONSTANT)
        if b:                                   # and again after the blur, as the authors do
            m[:b], m[-b:], m[:, :b], m[:, -b:] = 0, 0, 0, 0
    return _snap(m)


def _snap(m):
    m[m < _SNAP] = 0.0
    m[m > 1.0 - _SNAP] = 1.0
    return m


def soften_torch(hard: "torch.Tensor", *, blur: float, erode: float) -> "torch.Tensor":
    """:func:`soften` on a (K, S, S) float tensor (any device): the same border, erosion, Gaussian and snap."""
    import torch
    import torch.nn.functional as F

    m = hard.float().clone()
    if m.numel() == 0:
        return m
    s = m.shape[-1]
    b = _border(s)
    if b:
        m[:, :b], m[:, -b:], m[:, :, :b], m[:, :, -b:] = 0, 0, 0, 0
    x = m[:, None]
    r = _erode_radius(s, erode)
    if r > 0:                                   # min filter; the padding (-inf after negation) never wins
        x = -F.max_pool2d(-x, 2 * r + 1, stride=1, padding=r)
    taps = _gaussian_taps(s, blur)
    if taps is not None:
        k = torch.as_tensor(taps, dtype=torch.float32, device=x.device)
        pad = len(taps) // 2
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0)), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, pad, pad)), k.view(1, 1, -1, 1))
        if b:
            x[..., :b, :], x[..., -b:, :], x[..., :b], x[..., -b:] = 0, 0, 0, 0
    return _snap(x[:, 0].contiguous())


@lru_cache(maxsize=8)
def face_mask(crop_size: int, blur: float, erode: float) -> np.ndarray:
    """``face``: (S, S) float32 in [0, 1], read-only: the template face outline, eroded and feathered."""
    m = soften(hard_face_mask(crop_size), blur=blur, erode=erode)
    m.setflags(write=False)
    return m


def select_classes(labels: np.ndarray) -> np.ndarray:
    """Parsing labels (..., H, W) int in [0, 19) -> float32 hard mask of the authors' pasted classes."""
    return PASTE_CLASSES[np.asarray(labels)]


def select_classes_torch(labels: "torch.Tensor") -> "torch.Tensor":
    """:func:`select_classes` for a label tensor (any device) -> float32 tensor."""
    import torch
    table = torch.tensor(PASTE_CLASSES.tolist(), dtype=torch.float32, device=labels.device)
    return table[labels.long()]


def static_mask(crop_size: int, config: "PasteConfig") -> np.ndarray:
    """The per-crop-size mask of a ``box`` or ``face`` configuration (cached, read-only)."""
    if config.mask == "box":
        return feather_mask(crop_size, float(config.feather))
    if config.mask == "face":
        return face_mask(crop_size, float(config.mask_blur), float(config.mask_erode))
    raise ValueError(f"mask {config.mask!r} is built per crop (from a face parser), not statically")
