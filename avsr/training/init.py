"""Starting a model from trained weights: a whole model to fine-tune, or one stream (encoder and CTC
head) of an audio-only, video-only or AV model; and reading the training checkpoints they may come from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from avsr.errors import OptionError
from avsr.models.av_model import RETIRED_TRAINING_OPTIONS, AVSRModel, drop_retired, model_config
from avsr.models.bundle import load_bundle
from avsr.training.losses import LossOptions

STREAMS = {"audio": ("audio_encoder", "audio_head"), "video": ("video_encoder", "video_head")}


@dataclass(frozen=True)
class InitOptions:
    """Where a training run's weights start (``model.init`` in a training config); applied when
    training starts (a resumed run keeps its checkpoint's weights).

    Args:
        model: a bundle or checkpoint of a model with this model's settings (modalities, fusion,
            sizes, preprocessing) whose every weight starts this one: fine-tuning, e.g. with another
            loss or on another corpus. Applied before ``audio`` / ``video``; ``freeze_streams_steps``
            then holds both its streams.
        audio, video: bundles or checkpoints of trained stream models (e.g. an audio-only and a
            video-only model) whose encoder and CTC head start this model's streams, as strong AVSR
            recipes do.
        freeze_streams_steps: keep the initialised streams fixed for this many optimizer steps, so
            that the fusion learns to read them before they move.
        freeze_encoders: keep the initialised streams' encoders fixed for the whole run (no gradient, batch-norm
            statistics and dropout held): only the fusion, the layers after it and the CTC heads train. False:
            every weight is fine-tuned (after ``freeze_streams_steps``). For a model on imported encoders
            (``avsr import auto-avsr --audio --video``), whose 250 M-parameter encoders then cost no backward pass.
    """

    model: str | None = None
    audio: str | None = None
    video: str | None = None
    freeze_streams_steps: int = 0
    freeze_encoders: bool = False

    def __post_init__(self) -> None:
        if self.freeze_streams_steps < 0:
            raise OptionError(f"freeze_streams_steps={self.freeze_streams_steps} must be 0 or more")
        if self.freeze_encoders and not (self.model or self.audio or self.video):
            raise OptionError("init.freeze_encoders holds the encoders that init.model, init.audio or init.video "
                              "start; set one of them (frozen random encoders learn nothing)")
        if self.freeze_encoders and self.freeze_streams_steps:
            raise OptionError(f"init.freeze_encoders holds the encoders for the whole run; "
                              f"freeze_streams_steps={self.freeze_streams_steps} holds them for a while: set one")


def start_weights(model: AVSRModel, options: InitOptions) -> list[str]:
    """Copy into ``model`` the weights ``options`` name; returns the streams' encoders to hold for
    ``freeze_streams_steps`` or, with ``freeze_encoders``, for the whole run (none when neither is set).

    Raises:
        ValueError: a source that does not fit ``model`` (see :func:`init_whole`, :func:`init_stream`).
    """
    held = []
    if options.model:
        init_whole(model, options.model)
        held += [names[0] for stream, names in STREAMS.items() if stream in model.modes]
    for stream, path in (("audio", options.audio), ("video", options.video)):
        if path:
            if stream not in model.modes:
                raise ValueError(f"init.{stream}={path}: this {model.config.modalities} model has no {stream} stream")
            init_stream(model, stream, path)
            held += [STREAMS[stream][0]] if STREAMS[stream][0] not in held else []
    return held if options.freeze_streams_steps > 0 or options.freeze_encoders else []


# Where the training module's arguments of before 2026-12-07 (one flat list) now live.
_MOVED = {**{f.name: ("losses", f.name) for f in fields(LossOptions)},
          **{f"init_{name}": ("init", name) for name in ("model", "audio", "video")},
          "freeze_streams_steps": ("init", "freeze_streams_steps")}


def checkpoint_hparams(saved: dict, source: str) -> dict:
    """The arguments of :class:`~avsr.training.lightning_module.AVSRLightning` stored in a checkpoint
    (its ``hyper_parameters``) by any version: the retired options that are off left out, the flat
    arguments of older checkpoints moved into their groups, and the model's settings read by
    :func:`~avsr.models.av_model.model_config`.

    Raises:
        ModelConfigError: a retired option is on.
    """
    hparams = drop_retired(dict(saved), source, RETIRED_TRAINING_OPTIONS)
    hparams.pop("align_weight", None)  # align_teacher's loss weight, retired with it
    for key in ("_instantiator", "_class_path"):  # how LightningCLI made the module, not an argument of it
        hparams.pop(key, None)
    for old, (group, name) in _MOVED.items():
        if old in hparams:
            hparams[group] = {**hparams.get(group, {}), name: hparams.pop(old)}
    hparams["model"] = model_config(hparams.get("model") or {}, source)
    return hparams


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint of this project (``torch.load``; it may hold pickled objects of this
    package, so read only your own) with its ``hyper_parameters`` made current by
    :func:`checkpoint_hparams`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint | {"hyper_parameters": checkpoint_hparams(checkpoint.get("hyper_parameters", {}), str(path))}


def load_stream_model(path: str | Path) -> AVSRModel:
    """The network of a bundle (``avsr export``) or of a training checkpoint, read by the one model
    loader (:func:`avsr.models.bundle.load_bundle`)."""
    return load_bundle(path)[0]


def check_crops(source: AVSRModel, model: AVSRModel, path: str | Path, what: str) -> None:
    """A ValueError naming both when ``source`` (at ``path``) was trained on crops prepared otherwise
    than ``model`` is set to read them. How an utterance's crops are normalised (``video_norm``,
    ``motion_rms``) may differ: the weights then learn the new input (a fine-tune to another norm)."""
    renormalised = ("video_norm", "motion_rms")
    theirs, ours = source.preprocessing.to_dict(), model.preprocessing.to_dict()
    if any(theirs[key] != ours[key] for key in theirs if key not in renormalised):
        raise ValueError(f"{path}: {what} was trained on crops prepared as {source.preprocessing}, this model is set "
                         f"to {model.preprocessing}; set model.preprocessing to match")
    if theirs != ours:
        print(f"warning: {path}: {what} was trained with video_norm={theirs['video_norm']}, motion_rms="
              f"{theirs['motion_rms']}; this model normalises its crops with video_norm={ours['video_norm']}, "
              f"motion_rms={ours['motion_rms']}", file=sys.stderr)


def init_stream(model: AVSRModel, stream: str, path: str | Path) -> list[str]:
    """Copy ``stream``'s encoder and CTC head from the model at ``path`` into ``model``; returns the
    names of the copied tensors.

    Raises:
        ValueError: the source has no such stream, its sizes differ, or (video) it was trained on
            differently prepared crops. The message names both models.
    """
    source = load_stream_model(path)
    if stream not in source.modes:
        raise ValueError(f"{path}: a {source.config.modalities} model has no {stream} stream to initialise the "
                         f"{stream} encoder from; pass a {stream}-only or AV model")
    if stream == "video":
        check_crops(source, model, path, "its video stream")
    prefixes = tuple(f"{name}." for name in STREAMS[stream])
    wanted = {k: v for k, v in source.state_dict().items() if k.startswith(prefixes)}
    target = model.state_dict()
    mismatched = sorted(k for k, v in wanted.items() if k not in target or target[k].shape != v.shape)
    missing = sorted(k for k in target if k.startswith(prefixes) and k not in wanted)
    if mismatched or missing:
        example = (mismatched or missing)[0]
        here = tuple(target[example].shape) if example in target else "absent"
        shapes = f"{tuple(wanted[example].shape)} there, {here} here" if example in wanted else "absent there"
        raise ValueError(f"{path}: its {stream} stream does not fit this model ({len(mismatched) + len(missing)} "
                         f"tensor(s) differ, e.g. {example}: {shapes}); the stream model must have this model's sizes "
                         f"(dim, layers, heads, video_channels, video_pool)")
    model.load_state_dict(wanted, strict=False)
    return sorted(wanted)


def init_whole(model: AVSRModel, path: str | Path) -> None:
    """Copy every weight of the model at ``path`` into ``model`` (fine-tuning a trained model).

    Raises:
        ValueError: the source differs in its modalities, fusion, sizes or crop preparation. The
            message names both models.
    """
    source = load_stream_model(path)
    ours, theirs = model.config.to_dict(), source.config.to_dict()
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        named = ", ".join(f"{k}={theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differ[:3])
        raise ValueError(f"{path}: that model is not this one ({named}); init.model needs the same model settings "
                         "(init.audio / init.video copy one stream of another model)")
    check_crops(source, model, path, "it")
    model.load_state_dict(source.state_dict())
