"""avsr: audio-visual speech recognition with MediaPipe lip ROIs and a reliability-gated AV model."""

__version__ = "0.1.0"
