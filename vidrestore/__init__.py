"""vidrestore: video face restoration with GFP-GAN.

Public API (imported lazily so that ``import vidrestore`` stays cheap):
``restore_video``, ``restore_videos``, ``Restorer``, ``RestoreConfig``, ``Report``, ``load_gfpgan``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["restore_video", "restore_videos", "Restorer", "RestoreConfig", "Report", "load_gfpgan", "__version__"]

_LAZY = {
    "restore_video": "vidrestore.pipeline",
    "restore_videos": "vidrestore.scale.runner",
    "Restorer": "vidrestore.restorer",
    "Report": "vidrestore.report",
    "RestoreConfig": "vidrestore.config",
    "load_gfpgan": "vidrestore.models",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import RestoreConfig
    from .models import load_gfpgan
    from .pipeline import restore_video
    from .restorer import Restorer
    from .scale.runner import restore_videos
    from .report import Report


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidrestore' has no attribute {name!r}")
