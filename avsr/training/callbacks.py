"""Training callbacks."""

from __future__ import annotations

import lightning as L


class StopAfterEpochs(L.Callback):
    """Stop after ``epochs`` training epochs while the learning-rate schedule still spans the
    trainer's ``max_epochs``: a budget counted in optimizer steps, which (unlike ``max_time``) does
    not shrink when the machine is busy. The fusion ablation gives every model 10 epochs (750
    steps), where the embedded gate model's checkpoint was taken.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True
