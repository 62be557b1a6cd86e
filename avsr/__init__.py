"""avsr: audio-visual speech recognition with MediaPipe lip ROIs and a reliability-gated AV model."""

__version__ = "0.1.0"


def load_model(name_or_path, device: str = "cpu"):
    """Load a model bundle by name (``"synth-grid-tiny"``, trained on synthetic data only) or path.

    Returns ``(model, tokenizer, metadata)``.
    """
    from avsr.models.bundle import load_model as _load_model

    return _load_model(name_or_path, device)
