"""Training the AV model with Lightning: CTC on the fused stream plus auxiliary per-stream CTC."""

from __future__ import annotations

import jiwer
import lightning as L
import torch

from avsr.data.dataset import Batch
from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.greedy import greedy_decode
from avsr.models.av_model import AVSRModel, ModelConfig


class AVSRLightning(L.LightningModule):
    """
    Args:
        model: sizes of the network (see :class:`~avsr.models.av_model.ModelConfig`).
        learning_rate: AdamW peak learning rate, reached after ``warmup_steps`` and decayed by cosine.
        aux_weight: weight of each auxiliary CTC loss (audio stream, video stream).
    """

    def __init__(self, model: ModelConfig = ModelConfig(), learning_rate: float = 2e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 200, aux_weight: float = 0.3) -> None:
        super().__init__()
        self.save_hyperparameters()
        if isinstance(model, dict):  # hyperparameters come back as plain dicts from a checkpoint
            model = ModelConfig(**(model | {"video_channels": tuple(model.get("video_channels", (16, 32, 64)))}))
        self.model = AVSRModel(model)
        self.tokenizer = CharTokenizer()
        self.ctc = torch.nn.CTCLoss(blank=self.tokenizer.blank, zero_infinity=True)
        self._hypotheses: list[str] = []
        self._references: list[str] = []
        self._weights: list[torch.Tensor] = []

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, object]:
        if self.model.config.modalities == "audio":  # the audio-only baseline: its one CTC head
            out = self.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found,
                             "audio")
            return self._ctc(out.log_probs, out, batch), out
        out = self.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        aux = self._ctc(out.audio_log_probs, out, batch) + self._ctc(out.video_log_probs, out, batch)
        return self._ctc(out.log_probs, out, batch) + self.hparams.aux_weight * aux, out

    def _ctc(self, log_probs: torch.Tensor, out, batch: Batch) -> torch.Tensor:
        return self.ctc(log_probs.transpose(0, 1), batch.targets, out.lengths, batch.target_lengths)

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.ids))
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        loss, out = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch.ids), sync_dist=True)
        self._hypotheses += greedy_decode(out.log_probs, out.lengths, self.tokenizer)
        self._references += batch.texts
        if out.audio_weight is not None and self.model.config.modalities == "av":
            valid = torch.arange(out.audio_weight.shape[1], device=self.device)[None] < out.lengths[:, None]
            self._weights.append(out.audio_weight[valid].detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        if self._references:
            self.log("val/wer", jiwer.wer(self._references, self._hypotheses), prog_bar=True, sync_dist=True)
            self.log("val/cer", jiwer.cer(self._references, self._hypotheses), sync_dist=True)
        if self._weights:
            self.log("val/audio_weight", torch.cat(self._weights).mean(), sync_dist=True)
        self._hypotheses, self._references, self._weights = [], [], []

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate,
                                      weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total // 2)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * min(progress, 1.0)))).item()

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
