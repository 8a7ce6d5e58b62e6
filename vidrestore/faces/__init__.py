"""Face stages: detect -> track -> smooth -> align -> (restore) -> paste.

Import the stage modules directly (``vidrestore.faces.detect`` ...); this package only lists them.
"""
from __future__ import annotations

__all__ = ["align", "detect", "paste", "smooth", "track"]
