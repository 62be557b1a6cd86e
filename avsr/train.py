"""Train a model: ``python train.py fit --config configs/<name>.yaml`` (or ``python -m avsr.train ...``).

LightningCLI: every argument of ``AVSRLightning``, ``AVDataModule`` and the ``Trainer`` can be set
in the YAML or on the command line (``--trainer.max_epochs 5``); the resolved configuration is
saved beside the logs and inside every checkpoint. Resume with ``--ckpt_path``.

The model's sizes come from its preset (``model.model.preset: base``) except those the
configuration sets; they are resolved into numbers before anything is built, so the saved
configuration and the checkpoints name every size (``--print_config`` shows the unresolved ones
as null).

A manifest or feature file that cannot be read ends the run with one line naming it (exit 1),
not a traceback from a data-loading process; so does a manifest line whose text is empty or holds characters
the tokenizer cannot encode (checked when the data are set up, before the first step).

Resuming (``--ckpt_path``) with a model or data configuration other than the checkpoint's is refused, naming
the keys that differ, unless ``--force_config`` is given: the checkpoint's optimizer state and the new model
would otherwise disagree without a word (a new learning rate is overwritten by the restored one). The
trainer's settings (``--trainer.max_epochs`` to train on) may change freely.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, is_dataclass

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from avsr.data.dataset import FeatureFileError
from avsr.data.manifest import ManifestError
from avsr.errors import AvsrError, OptionError
from avsr.models.av_model import ModelConfig
from avsr.training.data_module import AVDataModule
from avsr.training.lightning_module import AVSRLightning


class AVSRCLI(LightningCLI):
    """LightningCLI of :class:`AVSRLightning` and :class:`AVDataModule`; ``args`` and ``run`` as
    LightningCLI's (``run=False``: parse and build, without a subcommand)."""

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(AVSRLightning, AVDataModule, args=args, run=run, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--force_config", action="store_true",
                            help="resume from --ckpt_path even where the model or data configuration differs from the "
                            "checkpoint's (the new one is used)")

    def _parse_ckpt_path(self) -> None:
        """LightningCLI replaces the model's configuration by the checkpoint's when resuming, without a word:
        keep the one given (resolved as :meth:`before_instantiate_classes` does) to compare in :meth:`before_fit`,
        and with ``--force_config`` keep it for the run."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is None or not config.get("ckpt_path"):
            return
        if config.get("force_config"):
            return  # the new configuration is used, not the checkpoint's
        given = config.model.as_dict()
        given["model"] = ModelConfig(**(given.get("model") or {})).to_dict()
        self._given_model = given
        super()._parse_ckpt_path()

    def before_fit(self) -> None:
        """Refuse to resume from a checkpoint whose model or data configuration differs from this run's."""
        config = self.config[self.subcommand]
        if config.get("ckpt_path") and not config.get("force_config"):
            check_resume(config.ckpt_path, getattr(self, "_given_model", self.model.hparams), self.datamodule)

    def before_instantiate_classes(self) -> None:
        """Replace the model's preset and overrides by every size it resolves to (the preset's name kept)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        given = config.model.model
        given = given.as_dict() if given is not None else {}
        config.model.model = Namespace(ModelConfig(**given).to_dict() | {"preset": given.get("preset")})
        check_numbers({"model": config.model.as_dict(), "data": config.data.as_dict()})


# The valid range of the numbers a run is most often given; every other number of the model's and the data's
# configuration must be finite (a NaN learning rate, or a size of 10^9, is refused before anything is built).
TRAIN_RANGES = {
    "model.learning_rate": (1e-8, 1.0), "model.weight_decay": (0.0, 1.0), "model.warmup_steps": (0, 10_000_000),
    "model.model.dim": (8, 4096), "model.model.num_heads": (1, 64), "model.model.ffn_dim": (8, 32768),
    "model.model.audio_layers": (0, 64), "model.model.video_layers": (0, 64), "model.model.fusion_layers": (0, 64),
    "model.model.kernel_size": (1, 255), "model.model.xattn_window": (0, 250), "model.model.dropout": (0.0, 0.9),
    "data.max_frames": (1, 100_000), "data.num_workers": (0, 256), "data.seed": (0, 2**32 - 1),
}


def check_numbers(config: dict) -> None:
    """Refuse a number of the model's or the data's configuration that is not finite, or outside its range in
    :data:`TRAIN_RANGES`, naming its key (``model.learning_rate``) and the range.

    Raises:
        OptionError: the first such number.
    """
    for key, value in _flat(config, "").items():
        key = key.lstrip(".")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high = TRAIN_RANGES.get(key, (-math.inf, math.inf))
        if not (math.isfinite(value) and low <= value <= high):
            ends = [f"{end}" if isinstance(end, int) else f"{end:g}" for end in (low, high)]
            where = f"a number from {ends[0]} to {ends[1]}" if key in TRAIN_RANGES else "a finite number"
            raise OptionError(f"--{key} {value}: use {where}")


class ResumeError(AvsrError):
    """A checkpoint to resume from whose configuration is not this run's."""


def _flat(value, prefix: str) -> dict[str, object]:
    """Nested hyperparameters (dicts, dataclasses) as ``{"model.model.dim": 144, ...}`` (Lightning's own
    ``_instantiator`` and the like left out)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {key: leaf for name, inner in value.items() if not str(name).startswith("_")
                for key, leaf in _flat(inner, f"{prefix}.{name}").items()}
    return {prefix: list(value) if isinstance(value, tuple) else value}


def config_differences(saved: dict, current: dict, prefix: str) -> list[str]:
    """``key: saved -> current`` for each key whose value differs (or is on one side only)."""
    old, new = _flat(dict(saved), prefix), _flat(dict(current), prefix)
    return [f"{key}: {old.get(key, '(none)')!r} -> {new.get(key, '(none)')!r}"
            for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]


def check_resume(ckpt_path: str, model: dict, datamodule) -> None:
    """Raise :class:`ResumeError` naming the keys whose values in this run's model configuration (``model``, as
    given) and data configuration (``datamodule``'s) differ from those saved in ``ckpt_path``."""
    import torch

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # Lightning's own checkpoint
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise ResumeError(f"--ckpt_path {ckpt_path}: cannot be read ({error}); check the path") from None
    differences = config_differences(checkpoint.get("hyper_parameters", {}), model, "model")
    if datamodule is not None and "datamodule_hyper_parameters" in checkpoint:
        differences += config_differences(checkpoint["datamodule_hyper_parameters"], datamodule.hparams, "data")
    if differences:
        shown = "; ".join(differences[:6]) + (f" (and {len(differences) - 6} more)" if len(differences) > 6 else "")
        raise ResumeError(f"--ckpt_path {ckpt_path}: this run's configuration differs from the checkpoint's: {shown}; "
                          "resume with the checkpoint's configuration (its config.yaml), or pass --force_config to "
                          "use the new one")


def _last_line(error: Exception) -> str:
    """An error re-raised from a data-loading worker carries the worker's traceback: keep its last
    line, without the exception's class name."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else error.__class__.__name__
    name = f"{error.__class__.__module__}.{error.__class__.__name__}: "
    return last[len(name):] if last.startswith(name) else last


def main(argv: list[str] | None = None) -> int:
    from avsr.tmp import run_folder

    try:
        with run_folder():  # the run's temporary files in one folder, removed at the end (train.py opens it earlier)
            AVSRCLI(argv)
    except (FeatureFileError, ManifestError, OptionError, ResumeError) as error:
        print(f"train: error: {_last_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
