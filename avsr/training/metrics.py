"""The validation set's error rates during training, summed across processes under DDP."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from avsr.text import error_counts


class CorpusErrorRate(Metric):
    """WER (``unit="word"``) or CER (``"char"``) of everything updated since the last reset: edits and
    reference words (characters) are summed, across processes under DDP, before dividing, so the rate is
    the whole split's as :func:`avsr.text.word_error_rate` defines it, not a mean of per-process rates."""

    full_state_update = False

    def __init__(self, unit: str = "word") -> None:
        super().__init__()
        error_counts([], [], unit)  # refuses an unknown unit here, not at the first update
        self.unit = unit
        self.add_state("edits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("length", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hypotheses: list[str], references: list[str]) -> None:
        edits, length = error_counts(references, hypotheses, self.unit)
        self.edits += edits
        self.length += length

    def compute(self) -> torch.Tensor:
        return self.edits.float() / self.length.clamp(min=1)
