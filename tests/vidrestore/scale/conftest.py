"""One real local Ray cluster (2 CPUs) per test session, and short cuts of the edge-case clips."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CI
from vidrestore.config import (DetectConfig, EncodeConfig, ModelConfig, RestoreConfig, SmoothConfig,
                               TrackConfig)

# identity restorer, lossless output, a small detector input and a short warm-up (20 frames with the
# polynomial smoother; the default RTS smoother needs 60 frames of history, which these short clips
# cannot spare per chunk - ranges with it are checked in tests/vidrestore/test_ranges.py)
CONFIG = RestoreConfig(model=ModelConfig(restorer="identity"), smooth=SmoothConfig(method="poly"),
                       encode=EncodeConfig(codec="ffv1", crf=None, preset=None),
                       detect=DetectConfig(max_side=320),
                       track=TrackConfig(max_misses=3, velocity_smoothing=0.2), overwrite=True)
CHUNK_S = 0.6
CLIPS = {"vfr": ("edge/vfr_gap_face.mp4", 56), "offset": ("edge/start_offset_v1.0_a0.5_face.mp4", 36),
         "rotate": ("edge/rotate90_portrait_face.mp4", 30), "faces": ("edge/multi_face_group_zoompan.mp4", 40)}


def _need(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} not installed")


@pytest.fixture(scope="session")
def ray_cluster():
    try:
        import ray
    except ImportError:
        _need("ray (pip install 'vidrestore[scale]')")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def clips(testdata, tmp_path_factory) -> dict[str, Path]:
    """The first frames of each clip, stream-copied (timestamps, rotation, audio offset kept)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        _need("imageio-ffmpeg")
    out = tmp_path_factory.mktemp("clips")
    res = {}
    for key, (rel, frames) in CLIPS.items():
        dst = out / f"{key}.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-copyts", "-i",
                        str(testdata / rel), "-map", "0", "-frames:v", str(frames), "-c", "copy", str(dst)],
                       check=True)
        res[key] = dst
    return res
