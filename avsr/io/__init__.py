"""Media input: decoding files to 25 fps video and 16 kHz audio, and cutting mouth crops."""

from avsr.io.lip_roi import LipRoi, LipRoiOptions, extract_lip_roi
from avsr.io.media import Media, MediaChunk, MediaError, iter_media_chunks, load_media

__all__ = [
    "LipRoi", "LipRoiOptions", "Media", "MediaChunk", "MediaError",
    "extract_lip_roi", "iter_media_chunks", "load_media",
]
