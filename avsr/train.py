"""Train a model: ``python train.py fit --config configs/<name>.yaml`` (or ``python -m avsr.train ...``).

LightningCLI: every argument of ``AVSRLightning``, ``AVDataModule`` and the ``Trainer`` can be set
in the YAML or on the command line (``--trainer.max_epochs 5``); the resolved configuration is
saved beside the logs and inside every checkpoint. Resume with ``--ckpt_path``.

The model's sizes come from its preset (``model.model.preset: base``) except those the
configuration sets; they are resolved into numbers before anything is built, so the saved
configuration and the checkpoints name every size (``--print_config`` shows the unresolved ones
as null).

A manifest or feature file that cannot be read ends the run with one line naming it (exit 1),
not a traceback from a data-loading process.
"""

from __future__ import annotations

import sys

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from avsr.data.dataset import FeatureFileError
from avsr.data.manifest import ManifestError
from avsr.models.av_model import ModelConfig
from avsr.training.data_module import AVDataModule
from avsr.training.lightning_module import AVSRLightning


class AVSRCLI(LightningCLI):
    """LightningCLI of :class:`AVSRLightning` and :class:`AVDataModule`; ``args`` and ``run`` as
    LightningCLI's (``run=False``: parse and build, without a subcommand)."""

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(AVSRLightning, AVDataModule, args=args, run=run, **kwargs)

    def before_instantiate_classes(self) -> None:
        """Replace the model's preset and overrides by every size it resolves to (the preset's name kept)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        given = config.model.model
        given = given.as_dict() if given is not None else {}
        config.model.model = Namespace(ModelConfig(**given).to_dict() | {"preset": given.get("preset")})


def _last_line(error: Exception) -> str:
    """An error re-raised from a data-loading worker carries the worker's traceback: keep its last
    line, without the exception's class name."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else error.__class__.__name__
    name = f"{error.__class__.__module__}.{error.__class__.__name__}: "
    return last[len(name):] if last.startswith(name) else last


def main(argv: list[str] | None = None) -> int:
    try:
        AVSRCLI(argv)
    except (FeatureFileError, ManifestError) as error:
        print(f"train: error: {_last_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
