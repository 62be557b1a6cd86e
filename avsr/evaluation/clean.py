"""Word and character error rates of a model on a prepared manifest, per modality mode, on clean
audio or with white noise mixed at a given SNR (measured on the speech, seeded per utterance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jiwer
import torch
from torch.utils.data import DataLoader

import numpy as np

from avsr.data.dataset import AVDataset, BucketBatchSampler, collate
from avsr.data.noise import mix_at_snr, white_noise
from avsr.decoding.greedy import greedy_decode
from avsr.models.av_model import AVSRModel


class NoisyDataset(AVDataset):
    """An :class:`AVDataset` whose audio gets white noise at ``snr_db`` (the same noise every run)."""

    def __init__(self, manifest: str, snr_db: float | None, seed: int = 0) -> None:
        super().__init__(manifest)
        self.snr_db, self.noise_seed = snr_db, seed

    def __getitem__(self, key):
        item = super().__getitem__(key)
        if self.snr_db is not None:
            index = key[0] if isinstance(key, tuple) else key
            rng = np.random.default_rng([self.noise_seed, index])
            item["audio"] = mix_at_snr(item["audio"], white_noise(len(item["audio"]), rng), self.snr_db)
        return item


@dataclass
class ModeResult:
    mode: str
    snr_db: float | None
    wer: float
    cer: float
    utterances: int
    mean_audio_weight: float | None


@torch.no_grad()
def evaluate_modes(model: AVSRModel, manifest: str, modes: tuple[str, ...] = ("av", "audio", "video"),
                   snr_db: float | None = None, max_frames: int = 2000, seed: int = 0,
                   decoder: Callable[[torch.Tensor, torch.Tensor], list[str]] = greedy_decode) -> list[ModeResult]:
    """Decode every utterance of ``manifest`` in each mode (greedy, or e.g. a
    :class:`~avsr.decoding.beam.BeamDecoder`) and score against its text; ``snr_db`` adds white noise
    at that SNR (``None``: clean)."""
    model.eval()
    dataset = NoisyDataset(manifest, snr_db, seed)
    loader = DataLoader(dataset, batch_sampler=BucketBatchSampler(dataset.lengths, max_frames, shuffle=False),
                        collate_fn=collate)
    results = []
    for mode in modes:
        hypotheses, references, weights = [], [], []
        for batch in loader:
            out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, mode)
            hypotheses += decoder(out.log_probs, out.lengths)
            references += batch.texts
            if out.audio_weight is not None:
                valid = torch.arange(out.audio_weight.shape[1])[None] < out.lengths[:, None]
                weights.append(out.audio_weight[valid])
        weight = float(torch.cat(weights).mean()) if weights else None
        results.append(ModeResult(mode, snr_db, jiwer.wer(references, hypotheses), jiwer.cer(references, hypotheses),
                                  len(references), weight))
    return results
