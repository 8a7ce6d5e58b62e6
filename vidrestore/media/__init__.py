"""Media I/O: resilient PyAV decoding to upright RGB frames and encoding back with audio/metadata."""
from .decode import DecodeStats, VideoReader, probe
from .encode import EncodeStats, VideoWriter
from .output import check_output_path

__all__ = ["DecodeStats", "EncodeStats", "VideoReader", "VideoWriter", "check_output_path", "probe"]
