"""Training with Lightning: CTC on the fused stream plus auxiliary per-stream CTC (AV models), or
CTC on the one stream of an audio-only (ASR) or video-only (VSR) model."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torchmetrics import MeanMetric

from avsr.data.dataset import Batch
from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.align import can_align
from avsr.decoding.greedy import greedy_decode
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.preprocessing import Preprocessing
from avsr.training.metrics import CorpusErrorRate

STREAMS = {"audio": ("audio_encoder", "audio_head"), "video": ("video_encoder", "video_head")}


def load_stream_model(path: str | Path) -> AVSRModel:
    """The network of a bundle (``avsr export``) or of a Lightning checkpoint of this project."""
    from avsr.models.bundle import BundleError, load_bundle

    try:
        return load_bundle(path)[0]
    except BundleError as error:
        if not str(path).endswith(".ckpt"):
            raise
        if not Path(path).is_file():
            raise BundleError(f"{path}: checkpoint not found; check the path") from error
    return AVSRLightning.load_from_checkpoint(path, map_location="cpu").model


def check_crops(source: AVSRModel, model: AVSRModel, path: str | Path, what: str) -> None:
    """A ValueError naming both when ``source`` (at ``path``) was trained on crops prepared otherwise
    than ``model`` is set to read them."""
    if source.preprocessing != model.preprocessing:
        raise ValueError(f"{path}: {what} was trained on crops prepared as {source.preprocessing}, this model is set "
                         f"to {model.preprocessing}; set model.preprocessing to match")


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
        raise ValueError(f"{path}: that model is not this one ({named}); init_model needs the same model settings "
                         "(init_audio / init_video copy one stream of another model)")
    check_crops(source, model, path, "it")
    model.load_state_dict(source.state_dict())


def reliability_target(audio_loss: torch.Tensor, video_loss: torch.Tensor) -> torch.Tensor:
    """Per utterance, the audio weight the gate is taught (``gate_supervision``): the video stream's
    share of the two streams' CTC losses, ``L_v / (L_a + L_v)``. Each stream is weighted by the
    inverse of its loss, as independent estimates are combined by their inverse errors: equal
    losses give 0.5, an audio stream drowned in noise (large ``L_a``) gives near 0."""
    audio_loss, video_loss = audio_loss.float().clamp(min=1e-3), video_loss.float().clamp(min=1e-3)
    return video_loss / (audio_loss + video_loss)


def snr_target(snr_db: torch.Tensor, midpoint_db: float, width_db: float, ceiling: float) -> torch.Tensor:
    """The audio weight the gate is taught for a frame of SNR ``snr_db`` (``gate_snr_supervision``):
    ``ceiling * sigmoid((snr_db - midpoint_db) / width_db)``. It falls from ``ceiling`` (clean
    audio; below 1, so that clean frames still read the lips) through ``ceiling / 2`` at
    ``midpoint_db`` (choose where the two streams read equally well) towards 0 (no speech left in
    the audio)."""
    return ceiling * torch.sigmoid((snr_db.float() - midpoint_db) / width_db)


def gate_bce(out, batch: Batch, target: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of the gate's audio weight against ``target`` ``(B, T)`` over the
    frames inside each utterance that have a face (a frame without one has its weight fixed at 1)
    and, if given, ``known``."""
    frames = out.audio_weight.shape[1]
    valid = torch.arange(frames, device=out.audio_weight.device)[None] < out.lengths[:, None]
    valid = valid & batch.face_found[:, :frames].bool().to(valid.device)
    if known is not None:
        valid = valid & known
    weight = out.audio_weight.float().clamp(1e-6, 1 - 1e-6)
    bce = torch.nn.functional.binary_cross_entropy(weight, target, reduction="none")
    return (bce * valid).sum() / valid.sum().clamp(min=1)


def sync_nll(attention: torch.Tensor, lengths: torch.Tensor, face_found: torch.Tensor,
             av_offset: torch.Tensor) -> torch.Tensor:
    """Mean negative log of the attention each audio frame pays to the video frame that shows it.

    Args:
        attention: ``(B, T, 2W + 1)`` from ``xattn`` (index ``j``: video frame ``t + j - W``).
        lengths: ``(B,)`` frames in each utterance; face_found ``(B, T)``.
        av_offset: ``(B,)`` frames each video was moved later (:class:`~avsr.data.augment.Augmenter`),
            so audio frame ``t`` is shown by video frame ``t + av_offset``.

    Only frames inside the utterance whose target video frame is inside it, within the window and
    has a face count (the others have nothing to find)."""
    batch, frames, span = attention.shape
    window = (span - 1) // 2
    offset = av_offset.to(attention.device)[:, None]  # (B, 1)
    time = torch.arange(frames, device=attention.device)[None]  # (1, T)
    shown = time + offset  # the video frame that shows audio frame t
    inside = (time < lengths[:, None]) & (shown >= 0) & (shown < lengths[:, None]) & (offset.abs() <= window)
    found = torch.gather(face_found.bool().to(attention.device), 1, shown.clamp(0, frames - 1))
    known = inside & found
    index = (offset + window).clamp(0, span - 1).expand(batch, frames)[..., None]
    picked = torch.gather(attention.float(), 2, index)[..., 0]
    return -(picked.clamp(min=1e-6).log() * known).sum() / known.sum().clamp(min=1)


class AVSRLightning(L.LightningModule):
    """
    Args:
        model: sizes of the network (see :class:`~avsr.models.av_model.ModelConfig`): a ``preset``
            (``tiny``, ``base``) and the sizes that differ from it; None: ``tiny``. The checkpoint
            stores every size as a number.
        learning_rate: AdamW peak learning rate, reached after ``warmup_steps`` and decayed by cosine.
        aux_weight: weight of each auxiliary CTC loss (audio stream, video stream).
        video_aux_weight: weight of the video stream's auxiliary loss, if other than ``aux_weight``.
        preprocessing: how crops and audio are prepared for the model (saved in its bundle).
        init_audio, init_video: bundles or checkpoints of trained stream models (e.g. an audio-only and a
            video-only model) whose encoder and CTC head start this model's streams, as strong AVSR
            recipes do. Applied when training starts (a resumed run keeps its checkpoint's weights).
        init_model: a bundle or checkpoint of a model with this model's settings (modalities, fusion,
            sizes, preprocessing) whose every weight starts this one: fine-tuning, e.g. with another
            loss or on another corpus. Applied before ``init_audio`` / ``init_video``, when training
            starts; ``freeze_streams_steps`` then holds both its streams.
        freeze_streams_steps: keep the initialised streams fixed for this many optimizer steps, so
            that the fusion learns to read them before they move.
        align_teacher: cross-modal distillation: a bundle or checkpoint of a model with an audio
            stream (e.g. the audio-only model). Each training utterance's transcript is forced onto
            that model's CTC posteriors of the utterance's audio, and the video stream is also
            trained frame by frame (cross-entropy) on the resulting path: it learns *when* each
            character is spoken from the audio, which its own CTC loss must otherwise discover
            from the pixels. Needs only audio and transcripts, as every AV dataset has. The
            teacher reads the batch's audio, so train with audio augmentation off (the video
            stage is). Not saved with the model.
        align_weight: weight of that frame-wise loss.
        gate_supervision: weight of a loss that teaches the gate (``gate``, ``xattn``) which stream
            to trust: each utterance's target audio weight is the video head's share of the two
            stream heads' CTC losses (:func:`reliability_target`, inverse-loss weighting: the stream
            that reads the utterance better gets the larger weight), and every frame with a face
            is pulled towards it (binary cross-entropy). Needs only the model's own stream heads,
            so it works on any AV dataset. 0: the gate learns from the fused CTC loss alone.
            Measured (RESULTS.md, 2026-12-01): it widens the weight's span but the model fails in noise.
        gate_snr_supervision: weight of a loss that teaches the gate (``gate``, ``xattn``) from the
            condition of each frame, which the recipe knows because it mixed the noise in: every
            frame with a face and a known SNR (``Batch.frame_snr``) is pulled towards
            :func:`snr_target` of its SNR (binary cross-entropy). Real datasets allow it wherever
            noise is added in training. 0: off.
        gate_snr_midpoint_db, gate_snr_width_db, gate_snr_ceiling: the shape of :func:`snr_target`.
        xattn_sync_supervision: weight of a loss that teaches ``xattn``'s audio-to-video attention
            where each audio frame's lip frame is: the offset augmentation moved the video by a
            known number of frames (``Batch.av_offset``), and the attention's weight on that frame
            is raised (:func:`sync_nll`). Without it nothing tells the attention to find the right
            frame (its peak offset did not follow a shift: docs/history/2026-12-01.md, beb0de2…4134df0).
            Real datasets allow it wherever their clips are in sync (LRS2/LRS3 were filtered with
            SyncNet) and offsets are added in training. 0: off.
    """

    def __init__(self, model: ModelConfig | None = None, learning_rate: float = 2e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 200, aux_weight: float = 0.3, video_aux_weight: float | None = None,
                 preprocessing: Preprocessing = Preprocessing(), init_audio: str | None = None,
                 init_video: str | None = None, freeze_streams_steps: int = 0, align_teacher: str | None = None,
                 align_weight: float = 0.5, gate_supervision: float = 0.0, gate_snr_supervision: float = 0.0,
                 gate_snr_midpoint_db: float = 5.0, gate_snr_width_db: float = 3.0, gate_snr_ceiling: float = 0.8,
                 xattn_sync_supervision: float = 0.0, init_model: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        if gate_snr_width_db <= 0 or not 0 < gate_snr_ceiling <= 1:
            raise ValueError(f"gate_snr_width_db={gate_snr_width_db} must be > 0 and "
                             f"gate_snr_ceiling={gate_snr_ceiling} in (0, 1]")
        if not isinstance(model, ModelConfig):  # None, or a plain dict from a checkpoint's hyperparameters
            model = ModelConfig(**(model or {}))
        self.hparams["model"] = model.to_dict()  # the resolved sizes, not a preset's name: what checkpoints keep
        if isinstance(preprocessing, dict):
            preprocessing = Preprocessing.from_dict(preprocessing)
        self.preprocessing = preprocessing
        self.model = AVSRModel(model, preprocessing)
        self._frozen: list[str] = []
        self._teacher: AVSRModel | None = None  # align_teacher's network: a plain attribute, kept out of checkpoints
        self.tokenizer = CharTokenizer()
        self.ctc = torch.nn.CTCLoss(blank=self.tokenizer.blank, zero_infinity=True)
        # Corpus error rates: errors and reference words are summed (across processes under DDP) before
        # dividing, so the validation WER is that of the whole validation set, not a mean of per-process rates.
        self.val_wer, self.val_cer = CorpusErrorRate("word"), CorpusErrorRate("char")
        self.val_audio_weight = MeanMetric()

    def setup(self, stage: str) -> None:
        h = self.hparams
        if stage != "fit":
            return
        if h.align_teacher:
            if "video" not in self.model.modes:
                raise ValueError(f"align_teacher={h.align_teacher}: it trains the video stream, and this "
                                 f"{self.model.config.modalities} model has none")
            teacher = load_stream_model(h.align_teacher)
            if "audio" not in teacher.modes:
                raise ValueError(f"align_teacher={h.align_teacher}: a {teacher.config.modalities} model has no "
                                 "audio stream to align the transcripts with; pass an audio-only or AV model")
            # Set past nn.Module's registration: a submodule would be trained, moved and checkpointed with the model.
            object.__setattr__(self, "_teacher", teacher.eval().requires_grad_(False))
        if h.init_model:
            init_whole(self.model, h.init_model)
            if h.freeze_streams_steps > 0:
                self._frozen += [names[0] for stream, names in STREAMS.items() if stream in self.model.modes]
        for stream, path in (("audio", h.init_audio), ("video", h.init_video)):
            if path:
                if stream not in self.model.modes:
                    raise ValueError(f"init_{stream}={path}: this {self.model.config.modalities} model has no "
                                     f"{stream} stream")
                init_stream(self.model, stream, path)
                if h.freeze_streams_steps > 0 and STREAMS[stream][0] not in self._frozen:
                    self._frozen.append(STREAMS[stream][0])

    def on_train_batch_start(self, batch: Batch, batch_index: int) -> None:
        # The held streams' learning rate is 0 (see configure_optimizers: gradients still flow, so DDP
        # sees the same parameters every step); here their batch-norm statistics are held too.
        if self._frozen and self.global_step < self.hparams.freeze_streams_steps:
            for name in self._frozen:
                getattr(self.model, name).eval()

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, object]:
        modalities = self.model.config.modalities
        if modalities != "av":  # an audio-only or video-only model: its one CTC head
            out = self.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found,
                             modalities)
            return self._ctc(out.log_probs, out, batch) + self._align_loss(out, batch), out
        out = self.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        video_weight = (self.hparams.aux_weight if self.hparams.video_aux_weight is None
                        else self.hparams.video_aux_weight)
        aux = (self.hparams.aux_weight * self._ctc(out.audio_log_probs, out, batch)
               + video_weight * self._ctc(out.video_log_probs, out, batch))
        return (self._ctc(out.log_probs, out, batch) + aux + self._align_loss(out, batch) + self._gate_loss(out, batch)
                + self._gate_snr_loss(out, batch) + self._sync_loss(out, batch)), out

    def _gate_loss(self, out, batch: Batch) -> torch.Tensor:
        """``gate_supervision`` x the binary cross-entropy of the gate's audio weight, on frames with a
        face, against :func:`reliability_target` of the utterance; 0 when off or without a gate."""
        if not self.hparams.gate_supervision or out.audio_weight is None:
            return out.log_probs.new_zeros(())
        with torch.no_grad():  # each utterance's loss under each stream head (summed over its path)
            losses = [torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), batch.targets, out.lengths,
                                                   batch.target_lengths, blank=self.tokenizer.blank, reduction="none",
                                                   zero_infinity=True)
                      for log_probs in (out.audio_log_probs, out.video_log_probs)]
            target = reliability_target(*losses)  # (B,)
        return self.hparams.gate_supervision * gate_bce(out, batch, target[:, None].expand_as(out.audio_weight))

    def _gate_snr_loss(self, out, batch: Batch) -> torch.Tensor:
        """``gate_snr_supervision`` x the binary cross-entropy of the gate's audio weight against
        :func:`snr_target` of each frame's SNR, on frames with a face and a known SNR; 0 when off,
        without a gate, or for a batch without SNRs."""
        h = self.hparams
        if not h.gate_snr_supervision or out.audio_weight is None or batch.frame_snr is None:
            return out.log_probs.new_zeros(())
        snr = batch.frame_snr[:, :out.audio_weight.shape[1]].to(out.audio_weight.device)
        target = snr_target(torch.nan_to_num(snr), h.gate_snr_midpoint_db, h.gate_snr_width_db, h.gate_snr_ceiling)
        return h.gate_snr_supervision * gate_bce(out, batch, target, torch.isfinite(snr))

    def _sync_loss(self, out, batch: Batch) -> torch.Tensor:
        """``xattn_sync_supervision`` x :func:`sync_nll` of the audio-to-video attention; 0 when off,
        without cross-attention, or for a batch without offsets."""
        weight = self.hparams.xattn_sync_supervision
        if not weight or out.attention is None or batch.av_offset is None:
            return out.log_probs.new_zeros(())
        return weight * sync_nll(out.attention, out.lengths, batch.face_found, batch.av_offset)

    def _align_loss(self, out, batch: Batch) -> torch.Tensor:
        """``align_weight`` x the frame-wise cross-entropy of the video stream against the teacher's
        forced alignment (see ``align_teacher``); 0 without a teacher or outside training."""
        if self._teacher is None or not self.training:
            return out.log_probs.new_zeros(())
        targets = self.alignment_targets(batch)
        frames = min(targets.shape[1], out.video_log_probs.shape[1])
        return self.hparams.align_weight * torch.nn.functional.nll_loss(
            out.video_log_probs[:, :frames].transpose(1, 2), targets[:, :frames], ignore_index=-100)

    @torch.no_grad()
    def alignment_targets(self, batch: Batch) -> torch.Tensor:
        """``(B, T)`` the CTC label of each frame on the best path that spells each transcript on the
        teacher's audio posteriors; -100 past an utterance's end and for a transcript too long to
        align."""
        import torchaudio.functional as F

        teacher = self._teacher.to(self.device)
        out = teacher(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "audio")
        posteriors = out.log_probs.float().cpu()
        targets = torch.full(posteriors.shape[:2], -100, dtype=torch.long)
        for i, (frames, length) in enumerate(zip(out.lengths.tolist(), batch.target_lengths.tolist())):
            ids = batch.targets[i, :length].cpu()
            if length == 0 or not can_align(ids.tolist(), frames):
                continue
            path, _ = F.forced_align(posteriors[i : i + 1, :frames], ids[None].int(), blank=self.tokenizer.blank)
            targets[i, :frames] = path[0]
        return targets.to(self.device)

    def _ctc(self, log_probs: torch.Tensor, out, batch: Batch) -> torch.Tensor:
        return self.ctc(log_probs.transpose(0, 1), batch.targets, out.lengths, batch.target_lengths)

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.ids))
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        loss, out = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch.ids), sync_dist=True)
        hypotheses = greedy_decode(out.log_probs, out.lengths, self.tokenizer)
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
        groups = [{"params": [p for p in self.parameters() if id(p) not in held]}]
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
            return 0.0 if step < self.hparams.freeze_streams_steps else schedule(step)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [schedule, held_schedule] if held else schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
