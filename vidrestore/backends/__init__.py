"""Restore backends: one protocol (:class:`RestoreBackend`), one module per implementation."""
