"""Scale-out: several inputs and several workers (Ray), chunked, resumable. See README "Scale out with Ray"."""
from __future__ import annotations

from .runner import restore_videos

__all__ = ["restore_videos"]
