"""avsr: audio-visual speech recognition with MediaPipe lip ROIs and a reliability-gated AV model."""

__version__ = "0.1.0"


def load_model(name_or_path, device: str = "cpu", backend=None):
    """Load a model by name (``"synth-grid-tiny"``, trained on synthetic data only) or path: a bundle, a
    training checkpoint (``.ckpt``), or the ONNX graphs of ``avsr export MODEL model.onnx``
    (``backend="onnx"``, the default for ``.onnx`` paths; needs ``pip install 'avsr[onnx]'``).

    Returns an :class:`avsr.models.loader.LoadedModel` (``.network``, ``.tokenizer``, ``.metadata``, ``.id``).
    """
    from avsr.models.loader import load_model as _load_model

    return _load_model(name_or_path, device, backend)


def transcribe(model, path, options=None, device: str = "cpu"):
    """Transcribe one media file with a model from :func:`load_model` (or a bundle name/path).

    Returns an :class:`avsr.inference.transcribe.Transcript`: text, segments, words with start/end
    times and confidences, the mode used and the gate's audio weight per frame.
    """
    from avsr.inference.transcribe import TranscribeOptions, transcribe as _transcribe

    return _transcribe(model, path, options or TranscribeOptions(), device)
