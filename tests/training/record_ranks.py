"""A callback for the DDP tests: each training process writes what its own trainer and
torch.distributed say about the run, so that a test reads the run's state instead of its log text."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch.distributed as dist


class RecordRanks(L.Callback):
    """At the end of fitting, ``<folder>/rank<global rank>.json`` holds the strategy's class name, the
    trainer's global rank and world size, torch.distributed's world size (0 when not initialised),
    and the ids of every training batch with its epoch."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.batches: list[dict] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.batches.append({"epoch": trainer.current_epoch, "ids": list(batch.ids)})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"strategy": type(trainer.strategy).__name__, "global_rank": trainer.global_rank,
                  "world_size": trainer.world_size,
                  "process_group_size": dist.get_world_size() if dist.is_initialized() else 0,
                  "batches": self.batches}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
