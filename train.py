"""Train an AV model: ``python train.py fit --config configs/<name>.yaml``.

LightningCLI: every argument of ``AVSRLightning``, ``AVDataModule`` and the ``Trainer`` can be set
in the YAML or on the command line (``--trainer.max_epochs 5``); the resolved configuration is
saved beside the logs and inside every checkpoint. Resume with ``--ckpt_path``.
"""

from lightning.pytorch.cli import LightningCLI

from avsr.training.data_module import AVDataModule
from avsr.training.lightning_module import AVSRLightning


def main() -> None:
    LightningCLI(AVSRLightning, AVDataModule, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
