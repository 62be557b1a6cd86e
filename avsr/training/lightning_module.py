"""Training with Lightning: the network (:class:`~avsr.models.av_model.AVSRModel`), its losses
(:mod:`avsr.training.losses`), the weights it starts from (:mod:`avsr.training.init`), and the
optimizer and schedule; validation reports the corpus WER and CER."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torchmetrics import MeanMetric

from avsr.data.dataset import Batch
from avsr.data.tokenizers import named_tokenizer
from avsr.decoding.greedy import greedy_decode
from avsr.models.av_model import AVSRModel, ModelConfig, ModelConfigError, ModelOutput, model_config
from avsr.preprocessing import Preprocessing
from avsr.text import normalise
from avsr.training.init import InitOptions, read_checkpoint, start_weights
from avsr.training.losses import LossOptions, training_loss
from avsr.training.metrics import CorpusErrorRate


class AVSRLightning(L.LightningModule):
    """
    Args:
        model: sizes of the network (see :class:`~avsr.models.av_model.ModelConfig`): a ``preset``
            (``tiny``, ``base``) and the sizes that differ from it; None: ``tiny``. The checkpoint
            stores every size as a number.
        preprocessing: how crops and audio are prepared for the model (saved in its bundle).
        learning_rate: AdamW peak learning rate, reached after ``warmup_steps`` and decayed by cosine.
        weight_decay: AdamW weight decay.
        warmup_steps: optimizer steps of the linear warm-up.
        losses: the loss weights (:class:`~avsr.training.losses.LossOptions`).
        init: the weights training starts from (:class:`~avsr.training.init.InitOptions`).
        tokenizer: the units of the CTC heads (:data:`avsr.data.tokenizers.TOKENIZERS`): ``characters``, or
            ``auto-avsr`` (auto_avsr's SentencePiece unigram 5000, 5,049 ids, for a model on its imported encoders);
            ``model.vocab_size`` must be its size. A checkpoint stores the name, its bundle the tokenizer.

    Each argument that is a dataclass also takes a plain dict (as a checkpoint stores it).
    """

    def __init__(self, model: ModelConfig | None = None, preprocessing: Preprocessing = Preprocessing(),
                 learning_rate: float = 2e-3, weight_decay: float = 0.01, warmup_steps: int = 200,
                 losses: LossOptions = LossOptions(), init: InitOptions = InitOptions(),
                 tokenizer: str = "characters") -> None:
        super().__init__()
        self.save_hyperparameters()
        if not isinstance(model, ModelConfig):  # None, or a plain dict from a checkpoint's hyperparameters
            model = model_config(model or {}, "model")
        self.preprocessing = (Preprocessing.from_dict(preprocessing) if isinstance(preprocessing, dict)
                              else preprocessing)
        self.losses = LossOptions(**losses) if isinstance(losses, dict) else losses
        self.init = InitOptions(**init) if isinstance(init, dict) else init
        # What checkpoints keep: plain data (the resolved sizes, not a preset's name), readable without this package.
        self.hparams.update(model=model.to_dict(), preprocessing=self.preprocessing.to_dict(),
                            losses=asdict(self.losses), init=asdict(self.init))
        self.tokenizer = named_tokenizer(tokenizer, "model.tokenizer")
        if model.vocab_size != self.tokenizer.vocab_size:
            raise ModelConfigError(f"model.model.vocab_size={model.vocab_size} but model.tokenizer={tokenizer!r} has "
                                   f"{self.tokenizer.vocab_size} ids; set vocab_size {self.tokenizer.vocab_size}")
        self.model = AVSRModel(model, self.preprocessing)
        self._frozen: list[str] = []
        # Corpus error rates: errors and reference words are summed (across processes under DDP) before
        # dividing, so the validation WER is that of the whole validation set, not a mean of per-process rates.
        self.val_wer, self.val_cer = CorpusErrorRate("word"), CorpusErrorRate("char")
        self.val_audio_weight = MeanMetric()

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: str | torch.device | None = None,
                             strict: bool = True, **overrides) -> "AVSRLightning":
        """The module saved in a checkpoint of any version (:func:`~avsr.training.init.read_checkpoint`:
        the retired options that are off left out, older arguments moved into their groups), with
        ``overrides`` of its arguments, on ``map_location`` (default: the CPU).

        Raises:
            ModelConfigError: the checkpoint has a retired option on.
        """
        checkpoint = read_checkpoint(checkpoint_path)
        module = cls(**(checkpoint["hyper_parameters"] | overrides))
        module.load_state_dict(checkpoint["state_dict"], strict=strict)
        return module.to(map_location or "cpu")

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._frozen = start_weights(self.model, self.init)
            if self.init.freeze_encoders:  # set before DDP wraps the model, and kept for the whole run
                for name in self._frozen:
                    getattr(self.model, name).requires_grad_(False)

    def on_train_batch_start(self, batch: Batch, batch_index: int) -> None:
        # The held streams' learning rate is 0 (see configure_optimizers: gradients still flow, so DDP
        # sees the same parameters every step); here their batch-norm statistics are held too.
        if self._frozen and (self.init.freeze_encoders or self.global_step < self.init.freeze_streams_steps):
            for name in self._frozen:
                getattr(self.model, name).eval()

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, ModelOutput]:
        modalities = self.model.config.modalities  # av, or the one stream of an audio- or video-only model
        out = self.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found,
                         modalities)
        return training_loss(out, batch, self.losses, modalities, self.tokenizer.blank), out

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.ids))
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        loss, out = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch.ids), sync_dist=True)
        hypotheses = [normalise(text) for text in greedy_decode(out.log_probs, out.lengths, self.tokenizer)]
        self.val_wer.update(hypotheses, batch.texts)
        self.val_cer.update(hypotheses, batch.texts)
        if out.audio_weight is not None and self.model.config.modalities == "av":
            valid = torch.arange(out.audio_weight.shape[1], device=self.device)[None] < out.lengths[:, None]
            self.val_audio_weight.update(out.audio_weight[valid].detach().float())

    def on_validation_epoch_end(self) -> None:
        self.log("val/wer", self.val_wer.compute(), prog_bar=True)
        self.log("val/cer", self.val_cer.compute())
        self.val_wer.reset()
        self.val_cer.reset()
        if self.val_audio_weight.update_count:
            self.log("val/audio_weight", self.val_audio_weight.compute())
        self.val_audio_weight.reset()

    def configure_optimizers(self):
        held = {id(p) for name in self._frozen for p in getattr(self.model, name).parameters()}
        trained = [p for p in self.parameters() if id(p) not in held]
        if self.init.freeze_encoders:  # held for the whole run (no gradient): not in the optimizer at all
            held = set()
        groups = [{"params": trained}]
        if held:  # the initialised streams: their own group, at learning rate 0 for freeze_streams_steps
            groups.append({"params": [p for p in self.parameters() if id(p) in held]})
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total // 2)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * min(progress, 1.0)))).item()

        def held_schedule(step: int) -> float:
            return 0.0 if step < self.init.freeze_streams_steps else schedule(step)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [schedule, held_schedule] if held else schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
