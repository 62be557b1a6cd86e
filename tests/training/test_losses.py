"""The training losses: the gate taught each frame's SNR and the cross-attention taught where the lips are,
on the embedded model and the shared synthetic test corpus (tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import avsr
from avsr.data.augment import AugmentOptions
from avsr.data.dataset import AVDataset, collate
from avsr.models.av_model import AVSRModel
from avsr.models.bundle import load_bundle
from avsr.training.losses import LossOptions, ctc, gate_snr_loss, snr_target, sync_loss, sync_nll, training_loss

EMBEDDED = Path(avsr.__file__).parent / "assets" / "synth-grid-tiny.pt"


def gate_of(model: AVSRModel):
    """The reliability gate of a ``gate`` or ``xattn`` model (the latter's sits behind its attention)."""
    return getattr(model.fusion, "gate", model.fusion)


def test_the_loss_is_the_fused_ctc_plus_each_streams_weighted_ctc(prepared_corpus):
    """An AV model: CTC of the fused output, plus ``aux_weight`` x the audio head's CTC and
    ``video_aux_weight`` (``aux_weight`` when unset) x the video head's; a one-stream model: its CTC alone."""
    model, tokenizer, _ = load_bundle(EMBEDDED)
    dataset = AVDataset(prepared_corpus / "val.jsonl", preprocessing=model.preprocessing)
    batch = collate([dataset[i] for i in range(3)], model.preprocessing)
    with torch.no_grad():
        out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
    fused, audio, video = (ctc(lp, out, batch, tokenizer.blank) for lp in (out.log_probs, out.audio_log_probs,
                                                                            out.video_log_probs))
    assert min(fused, audio, video) > 0 and len({float(fused), float(audio), float(video)}) == 3
    loss = training_loss(out, batch, LossOptions(), "av", tokenizer.blank)
    torch.testing.assert_close(loss, fused + 0.3 * audio + 0.3 * video)
    loss = training_loss(out, batch, LossOptions(aux_weight=0.5, video_aux_weight=0.1), "av", tokenizer.blank)
    torch.testing.assert_close(loss, fused + 0.5 * audio + 0.1 * video)
    torch.testing.assert_close(training_loss(out, batch, LossOptions(), "audio", tokenizer.blank), fused)


def test_gate_snr_supervision_teaches_the_weight_to_follow_the_frames_snr(prepared_corpus):
    """``gate_snr_supervision``: the target falls with the frame's SNR through half the ceiling at the
    midpoint; frames without a face or a known SNR are left out; only the gate learns; and a few steps
    of this loss alone make the weight of noisy frames fall below that of the same frames clean."""
    target = snr_target(torch.tensor([-60.0, 0.0, 5.0, 10.0, 60.0]), 5.0, 3.0, 0.8)
    assert target[2] == pytest.approx(0.4) and target[0] < 1e-6 and target[-1] == pytest.approx(0.8)
    assert (target.diff() > 0).all()
    with pytest.raises(ValueError, match="gate_snr_width_db"):
        LossOptions(gate_snr_width_db=0.0)

    model, _, _ = load_bundle(EMBEDDED)
    spec = model.preprocessing
    options = LossOptions(gate_snr_supervision=1.0)
    quiet = dict(drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, time_mask_prob=0.0,
                 random_crop=False, flip_prob=0.0, noise_types=("white",))
    clean_set = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec, augment=AugmentOptions(noise_prob=0.0, **quiet))
    noisy_set = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec,
                          augment=AugmentOptions(noise_prob=1.0, snr_db_range=(-10.0, -10.0), **quiet))
    clean, noisy = (collate([dataset[i] for i in range(4)], spec) for dataset in (clean_set, noisy_set))
    inside = torch.arange(clean.frame_snr.shape[1])[None] < clean.video_lengths[:, None]
    assert (clean.frame_snr[inside] == 60).all() and noisy.frame_snr[inside].nanmedian() < 0

    def weights(batch):
        out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        return out, out.audio_weight[batch.face_found].mean()

    model.eval()  # batch norm held: the loss, not the statistics, moves the weight
    out, _ = weights(noisy)
    loss = gate_snr_loss(out, noisy, options)
    assert loss > 0
    loss.backward()
    assert gate_of(model).scorer[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None  # it trains the gate, not the recognisers
    faceless = dataclasses.replace(noisy, face_found=torch.zeros_like(noisy.face_found))
    assert gate_snr_loss(out, faceless, options) == 0
    unknown = dataclasses.replace(noisy, frame_snr=torch.full_like(noisy.frame_snr, float("nan")))
    assert gate_snr_loss(out, unknown, options) == 0
    assert gate_snr_loss(out, noisy, LossOptions()) == 0

    torch.manual_seed(0)  # a scorer that has learned nothing yet: the loss alone must teach it
    for layer in gate_of(model).scorer:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    with torch.no_grad():
        before = weights(clean)[1] - weights(noisy)[1]
    optimizer = torch.optim.Adam(gate_of(model).scorer.parameters(), lr=1e-2)
    for _ in range(15):
        for batch in (clean, noisy):
            optimizer.zero_grad()
            gate_snr_loss(weights(batch)[0], batch, options).backward()
            optimizer.step()
    with torch.no_grad():
        (_, clean_weight), (_, noisy_weight) = weights(clean), weights(noisy)
    assert clean_weight - noisy_weight > max(0.3, before + 0.2), (before, clean_weight, noisy_weight)


def test_sync_supervision_raises_the_attention_on_the_lip_frame_of_each_audio_frame(prepared_corpus):
    """``xattn_sync_supervision``: the batch carries the shift the offset augmentation made; the loss
    is 0 for attention all on the frame that shows the audio and log(2W + 1) for attention spread
    evenly; frames with nothing to find are left out; only the audio-to-video attention and the
    streams learn; and a few steps of it raise that attention."""
    model, _, _ = load_bundle(EMBEDDED)
    spec = model.preprocessing
    quiet = dict(drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, time_mask_prob=0.0, noise_prob=0.0,
                 random_crop=False, flip_prob=0.0, pad_prob=0.0, offset_prob=1.0, max_offset_frames=3)
    dataset = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec, augment=AugmentOptions(**quiet))
    batch = collate([dataset[(i, epoch)] for i in range(2) for epoch in range(3)], spec)
    assert len(set(batch.av_offset.tolist())) > 1 and (batch.av_offset.abs() <= 3).all()
    for found, frames, offset in zip(batch.face_found, batch.video_lengths, batch.av_offset.tolist()):
        missing = found[:offset] if offset > 0 else found[frames + offset:frames]  # shifted in from outside
        assert not missing.any() and found[:frames].sum() >= frames - abs(offset) - 2

    window, frames = 4, 12
    lengths, face = torch.tensor([frames, 9]), torch.ones(2, frames, dtype=torch.bool)
    offsets = torch.tensor([2, -1])
    exact = torch.zeros(2, frames, 2 * window + 1)
    exact[0, :, window + 2] = exact[1, :, window - 1] = 1
    assert sync_nll(exact, lengths, face, offsets) == pytest.approx(0.0, abs=1e-6)
    even = torch.full((2, frames, 2 * window + 1), 1 / (2 * window + 1))
    assert sync_nll(even, lengths, face, offsets) == pytest.approx(np.log(2 * window + 1), rel=1e-5)
    wrong = exact.roll(1, dims=2)
    assert sync_nll(wrong, lengths, face, offsets) > 10  # no weight on the right frame: a large loss
    assert sync_nll(wrong, lengths, torch.zeros_like(face), offsets) == 0  # no face to find anywhere
    assert sync_nll(wrong, lengths, face, torch.tensor([window + 1, -window - 1])) == 0  # outside the window
    first_only = torch.zeros_like(face)
    first_only[0, 2:4] = True  # faces in video frames 2 and 3 only: they show audio frames 0 and 1 of the first
    assert sync_nll(wrong, lengths, first_only, offsets) > 10
    half = exact * 0.5 + even * 0.5
    half[0, 2:] = half[1] = 0  # the frames with nothing to find do not count, whatever their attention
    assert sync_nll(half, lengths, first_only, offsets) == pytest.approx(
        -np.log(0.5 + 0.5 / (2 * window + 1)), rel=1e-5)

    options = LossOptions(xattn_sync_supervision=1.0)
    model.eval()
    forward = lambda: model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
    out = forward()
    loss = sync_loss(out, batch, options)
    assert loss > 0
    loss.backward()
    assert model.fusion.audio_to_video.query.weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None and model.fusion.gate.scorer[0].weight.grad is None
    assert sync_loss(out, batch, LossOptions()) == 0
    assert sync_loss(out, dataclasses.replace(batch, av_offset=None), options) == 0

    optimizer = torch.optim.Adam(model.fusion.audio_to_video.parameters(), lr=1e-2)
    for _ in range(10):
        optimizer.zero_grad()
        sync_loss(forward(), batch, options).backward()
        optimizer.step()
    with torch.no_grad():
        after = sync_loss(forward(), batch, options)
    assert after < loss.detach() - 0.2, (float(loss), float(after))
