"""--mask parse: per-track temporal smoothing of parse masks, the parser's batching/resizing/softening,
and a missing parser checkpoint is the standard weights error (exit 4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrestore.config import PasteConfig
from vidrestore.errors import CheckpointError, WeightsUnavailable
from vidrestore.faces.masks import hard_face_mask, soften
from vidrestore.faces.parse import FaceParser, TemporalMaskSmoother


def _flicker(masks: list[np.ndarray]) -> float:
    """1 - mean soft IoU (sum of minima over sum of maxima) of consecutive masks."""
    ious = [np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-9) for a, b in zip(masks, masks[1:])]
    return 1.0 - float(np.mean(ious))


def _noisy_face_masks(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    """A face mask whose edge pixels flip at random every frame (a parse net's boundary noise)."""
    rng = np.random.default_rng(seed)
    base = hard_face_mask(size) > 0.5
    edge = base ^ (soften(base.astype(np.float32), blur=0.0, erode=0.06) > 0.5)    # a 8-px band inside
    out = []
    for _ in range(n):
        m = base.copy()
        m[edge & (rng.random(base.shape) < 0.5)] = False
        out.append(m.astype(np.float32))
    return torch.from_numpy(np.stack(out))


def test_temporal_smoothing_reduces_flicker() -> None:
    raw = _noisy_face_masks(12)
    sm = TemporalMaskSmoother()
    smoothed = [sm.update(raw[i:i + 1], [7], [i])[0].numpy() for i in range(len(raw))]
    before, after = _flicker(list(raw.numpy())), _flicker(smoothed)
    assert after < 0.5 * before, (before, after)
    # a still mask stays itself; another track is independent; a long gap starts afresh
    sm2 = TemporalMaskSmoother()
    still = raw[:1]
    for i in range(3):
        np.testing.assert_allclose(sm2.update(still, [1], [i])[0].numpy(), still[0].numpy(), atol=1e-6)
    other = sm2.update(torch.zeros_like(still), [2], [3])
    assert other.abs().max() == 0
    fresh = sm2.update(torch.zeros_like(still), [1], [20])
    assert fresh.abs().max() == 0


def test_smoothing_within_one_batch_follows_frame_order() -> None:
    """Several frames of one track in one restore batch: each frame is smoothed with the previous one."""
    ones, zeros = torch.ones(1, 8, 8), torch.zeros(1, 8, 8)
    sm = TemporalMaskSmoother(weight=0.5)
    out = sm.update(torch.cat([ones, zeros, zeros]), [3, 3, 3], [0, 1, 2])
    assert [float(o.mean()) for o in out] == [1.0, 0.5, 0.25]


def test_parser_batches_resizes_and_softens() -> None:
    calls = []

    def labels(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0         # clamped like the authors' uint8 input
        inside = torch.from_numpy(hard_face_mask(512) > 0.5)
        return torch.where(inside, 10, 0).expand(x.shape[0], -1, -1)   # mouth inside, background outside
    cfg = PasteConfig(mask="parse")
    p = FaceParser(config=cfg, labels=labels)
    restored = torch.rand(3, 3, 256, 256) * 4 - 2                       # unclamped network output
    m = p.masks(restored, [1, 2, 3], [0, 0, 0])
    assert calls == [(3, 3, 512, 512)]                                  # one call, at the parser's 512 px
    assert m.shape == (3, 256, 256) and m.dtype == torch.float32
    expect = soften(hard_face_mask(256), blur=cfg.mask_blur, erode=cfg.mask_erode)
    assert np.abs(m[0].numpy() - expect).max() < 0.05
    assert float(m[:, :5].max()) == 0.0 and float(m[:, 128, 128].min()) == 1.0


def test_missing_parse_weights_are_a_checkpoint_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        FaceParser(config=PasteConfig(mask="parse", parse_weights=str(tmp_path / "nope.pth")))


def test_parsenet_not_cached_offline_says_what_to_fetch(tmp_path, monkeypatch) -> None:
    import dataclasses

    import vidrestore.models.weights as weights
    monkeypatch.setenv("VIDRESTORE_HOME", str(tmp_path))
    spec = dataclasses.replace(weights.KNOWN_WEIGHTS["parsenet"], url="http://127.0.0.1:9/parsing_parsenet.pth")
    monkeypatch.setattr(weights, "KNOWN_WEIGHTS", {**weights.KNOWN_WEIGHTS, "parsenet": spec})
    with pytest.raises(WeightsUnavailable) as e:
        FaceParser(config=PasteConfig(mask="parse"))
    msg = str(e.value)
    assert e.value.exit_code == 4
    assert "parsing_parsenet.pth" in msg and "--parse-weights PATH" in msg
    assert not list((tmp_path / "weights").glob("*.part"))


def test_restore_video_with_parse_masks_batches_frames_and_reports_the_mode(testdata, tmp_path) -> None:
    """restore_video with --mask parse: the parser sees the restored faces of several frames per call, in
    frame order with their track ids, and the report records the mode."""
    from vidrestore.config import EncodeConfig, ModelConfig, RestoreConfig
    from vidrestore.pipeline import restore_video
    seen: list[tuple[int, ...]] = []

    def labels(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        inside = torch.from_numpy(hard_face_mask(512) > 0.5)
        return torch.where(inside, 1, 13).expand(x.shape[0], -1, -1)
    cfg = RestoreConfig(paste=PasteConfig(mask="parse", color_match="lab"), model=ModelConfig(batch=4),
                        encode=EncodeConfig(crf=23, preset="ultrafast"))
    parser = FaceParser(config=cfg.paste, labels=labels)
    calls = []
    orig = parser.smoother.update

    def update(masks, track_ids, frame_indices):
        calls.append(list(frame_indices))
        return orig(masks, track_ids, frame_indices)
    parser.smoother.update = update
    rep = restore_video(testdata / "edge/png_rgba_face.mov", tmp_path / "o.mp4", cfg,
                        restorer=lambda x: (x + 0.3).clamp(-1, 1), parser=parser)
    assert rep.paste_mask == "parse" and rep.color_match == "lab" and rep.to_dict()["paste_mask"] == "parse"
    assert rep.frames_written == 15 and sum(s[0] for s in seen) == rep.faces_restored
    assert max(s[0] for s in seen) > 1                                    # faces of several frames per call
    flat = [i for c in calls for i in c]
    assert flat == sorted(flat)                                            # in frame order
