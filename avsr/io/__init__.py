"""Media input: decoding files to 25 fps video and 16 kHz audio, and cutting mouth crops.

The names below are loaded on first use, so that importing a light module of this package
(``avsr.io.inputs``, ``avsr.io.results``) does not load PyAV, OpenCV or MediaPipe.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LipRoi": "avsr.io.lip_roi", "LipRoiOptions": "avsr.io.lip_roi", "extract_lip_roi": "avsr.io.lip_roi",
    "iter_lip_roi": "avsr.io.lip_roi",
    "Media": "avsr.io.media", "MediaChunk": "avsr.io.media", "MediaError": "avsr.io.media",
    "iter_media_chunks": "avsr.io.media", "load_media": "avsr.io.media",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
