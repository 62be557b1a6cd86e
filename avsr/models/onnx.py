"""ONNX export of a model, and a network that runs the exported graphs with ONNX Runtime.

``export_onnx`` writes one graph per mode the model runs (torch's exporter, ``dynamo=True``), each
with dynamic batch and time axes::

    model.onnx          the model's first mode (av for an AV model)
    model.audio.onnx    an AV model's other modes, beside it
    model.video.onnx

Every graph takes the network's five inputs (``audio``, ``audio_lengths``, ``video`` (normalised
crops), ``video_lengths``, ``face_found``) and returns ``log_probs``, ``lengths`` and
``audio_weight`` (the gate's per-frame audio weight; 1 or 0 in a one-stream mode), plus
``attention`` for an ``xattn`` model in av mode. The file's metadata holds what a bundle holds
(model sizes, preprocessing, tokenizer), so :func:`avsr.models.loader.load_model` needs nothing else.

ONNX Runtime is the optional extra ``pip install 'avsr[onnx]'``; the rest of the package runs without it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import torch
from torch import nn

from avsr.data.tokenizer import CharTokenizer
from avsr.errors import AvsrError
from avsr.files import atomic_path
from avsr.models.audio_encoder import ConvLogMel
from avsr.models.av_model import AVSRModel, ModelOutput, model_config
from avsr.preprocessing import Preprocessing

ONNX_FORMAT = "avsr-onnx-1"
INPUTS = ("audio", "audio_lengths", "video", "video_lengths", "face_found")
OPSET = 18


class OnnxError(AvsrError, ValueError):
    """An ONNX file this package cannot run, or ONNX support that is not installed."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxError(f"{module} is not installed; ONNX export and the onnx backend need the extra: "
                        "pip install 'avsr[onnx]'") from None


def graph_paths(path: str | Path, modes: tuple[str, ...]) -> dict[str, Path]:
    """Where each mode's graph goes: the first mode at ``path``, the others beside it (``stem.<mode>.onnx``)."""
    path = Path(path)
    return {mode: path if i == 0 else path.with_name(f"{path.stem}.{mode}.onnx") for i, mode in enumerate(modes)}


class _Graph(nn.Module):
    """One mode of the network, with plain tensor outputs."""

    def __init__(self, model: AVSRModel, mode: str) -> None:
        super().__init__()
        self.model, self.mode = model, mode

    def forward(self, audio, audio_lengths, video, video_lengths, face_found):
        out = self.model(audio, audio_lengths, video, video_lengths, face_found, self.mode)
        outputs = (out.log_probs, out.lengths, out.audio_weight)
        return outputs + (out.attention,) if out.attention is not None else outputs


def export_onnx(model: AVSRModel, path: str | Path, tokenizer: CharTokenizer = CharTokenizer(),
                metadata: dict | None = None) -> dict[str, Path]:
    """Write ``model``'s graphs (see the module's docstring); returns ``{mode: path}``. Float32 weights.

    Raises:
        OnnxError: onnx / onnxscript are not installed, or the model's tokenizer is not characters (the graphs'
            metadata stores characters only: a model of SentencePiece units runs from its bundle).
    """
    if not isinstance(tokenizer, CharTokenizer):
        raise OnnxError(f"the ONNX export stores a character tokenizer, and this model's is a "
                        f"{type(tokenizer).__name__} of {tokenizer.vocab_size} ids; run its bundle with the torch "
                        "backend")
    _require("onnx")
    _require("onnxscript")
    import onnx

    model = _float_copy(model)
    paths = graph_paths(path, model.modes)
    spec = model.preprocessing
    # Example input: two windows of different lengths, so that padding is traced as padding.
    frames, step = 50, spec.samples_per_frame
    example = (torch.randn(2, frames * step), torch.tensor([frames * step, 30 * step]),
               torch.randn(2, frames, spec.crop_size, spec.crop_size), torch.tensor([frames, 30]),
               torch.ones(2, frames, dtype=torch.bool))
    batch, time = torch.export.Dim("batch"), torch.export.Dim("frames", min=2)
    dynamic = {"audio": {0: batch, 1: time * step}, "audio_lengths": {0: batch}, "video": {0: batch, 1: time},
               "video_lengths": {0: batch}, "face_found": {0: batch, 1: time}}
    info = {"format": ONNX_FORMAT, "config": model.config.to_dict(), "preprocessing": spec.to_dict(),
            "tokenizer": tokenizer.characters, "graphs": {m: p.name for m, p in paths.items()},
            "metadata": {k: str(v) for k, v in (metadata or {}).items()}}
    for mode, target in paths.items():
        graph = _Graph(model, mode).eval()
        names = ["log_probs", "lengths", "audio_weight"]
        if mode == "av" and model.config.fusion == "xattn":
            names.append("attention")
        with warnings.catch_warnings(), open(os.devnull, "w") as quiet, redirect_stdout(quiet), _quiet_loggers():
            warnings.simplefilter("ignore")  # the exporter's progress lines and notes on unused axis names
            program = torch.onnx.export(graph, example, dynamo=True, input_names=list(INPUTS), output_names=names,
                                        dynamic_shapes=dynamic, opset_version=OPSET, verbose=False)
        proto = program.model_proto
        for key, value in (info | {"mode": mode}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        with atomic_path(target) as tmp:
            onnx.save(proto, tmp)
    return paths


@contextmanager
def _quiet_loggers():
    """The exporter logs a warning per torchvision operator it cannot register (torchvision is not a dependency)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _float_copy(model: AVSRModel) -> AVSRModel:
    """A float32 copy of ``model`` with the log-mel front end that exports exactly (:class:`ConvLogMel`)."""
    copy = AVSRModel(model.config, model.preprocessing)
    copy.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    if hasattr(copy, "audio_encoder"):
        copy.audio_encoder.logmel = ConvLogMel.like(copy.audio_encoder.logmel)
    return copy.eval()


class OnnxNetwork:
    """The exported graphs behind the network's call signature: ``network(audio, audio_lengths, video,
    video_lengths, face_found, mode)`` returns a :class:`~avsr.models.av_model.ModelOutput` of torch
    tensors (no auxiliary stream log-probs). ``config``, ``preprocessing`` and ``modes`` are those of
    the exported model. CPU only."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.info = read_info(self.path)
        self.config = model_config(self.info["config"], str(self.path))
        self.preprocessing = Preprocessing.from_dict(self.info["preprocessing"])
        self.modes = tuple(self.info["graphs"])
        self.threads = threads
        self._sessions: dict = {}

    def to(self, device) -> "OnnxNetwork":
        if str(device) != "cpu":
            raise OnnxError(f"{self.path}: the onnx backend runs on the CPU here; use --device cpu, or the torch "
                            "backend (a bundle) for a GPU")
        return self

    def eval(self) -> "OnnxNetwork":
        return self

    def session(self, mode: str):
        if mode not in self._sessions:
            ort = _require("onnxruntime")
            graph = self.path.with_name(self.info["graphs"][mode])
            if not graph.is_file():
                raise OnnxError(f"{graph}: the {mode} graph of {self.path} is missing; export again with avsr export")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
            options.log_severity_level = 3
            self._sessions[mode] = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        return self._sessions[mode]

    def __call__(self, audio, audio_lengths, video, video_lengths, face_found, mode: str = "av") -> ModelOutput:
        if mode not in self.modes:
            raise ValueError(f"mode={mode!r}; this model runs {', '.join(self.modes)}")
        session = self.session(mode)
        feeds = dict(zip(INPUTS, (audio.float(), audio_lengths.long(), video.float(), video_lengths.long(),
                                  face_found.bool())))
        wanted = {i.name for i in session.get_inputs()}  # the exporter drops inputs a mode does not read
        outputs = session.run(None, {k: v.cpu().numpy() for k, v in feeds.items() if k in wanted})
        log_probs, lengths, weight = (torch.from_numpy(o) for o in outputs[:3])
        attention = torch.from_numpy(outputs[3]) if len(outputs) > 3 else None
        return ModelOutput(log_probs, lengths, weight, log_probs if mode == "audio" else None,
                           log_probs if mode == "video" else None, attention)


def read_info(path: str | Path) -> dict:
    """The avsr metadata of an exported graph; :class:`OnnxError` for a file that is not one."""
    onnx = _require("onnx")
    path = Path(path)
    if not path.is_file():
        raise OnnxError(f"{path}: ONNX model not found; check the path")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise OnnxError(f"{path}: not an ONNX file ({error.__class__.__name__}); export one with "
                        "avsr export MODEL model.onnx") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if json.loads(props.get("format", "null")) != ONNX_FORMAT:
        raise OnnxError(f"{path}: an ONNX file not exported by avsr (no {ONNX_FORMAT} metadata); export one with "
                        "avsr export MODEL model.onnx")
    return {k: json.loads(v) for k, v in props.items()}
