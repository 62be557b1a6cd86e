"""How ``avsr evaluate`` reads each utterance with a model: its decoder, from the model's own tokenizer (characters,
or an imported model's SentencePiece pieces), and the stretches of the clip it reads, found by the same
segmentation as ``avsr transcribe`` (:mod:`avsr.inference.regions`) where a clip is longer than the model reads or
was given a lead-in or trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.beam import make_decoder
from avsr.decoding.joint import JointOptions, joint_beam_search
from avsr.errors import OptionError
from avsr.inference.regions import find_regions, speech_probability
from avsr.inference.sync import mouth_signal
from avsr.io.vad import VadOptions
from avsr.preprocessing import SAMPLES_PER_FRAME, VIDEO_FPS

SEGMENTATIONS = ("whole", "vad", "split")  # clips read whole; through their speech regions; cut at the longest input


class JointDecoder:
    """Joint CTC/attention beam search over each row of a batch (:func:`~avsr.decoding.joint.joint_beam_search`),
    called as a CTC decoder is, with the encoder output besides: ``(log_probs, lengths, encoder_out) -> texts``."""

    needs_encoder = True

    def __init__(self, network, tokenizer, options: JointOptions) -> None:
        self.network, self.tokenizer, self.options = network, tokenizer, options

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor, encoder_out: torch.Tensor) -> list[str]:
        eos, texts = self.tokenizer.eos, []
        for row, length in enumerate(lengths.tolist()):
            best = joint_beam_search(self.network.decoder, encoder_out[row, :length], log_probs[row, :length],
                                     sos=eos, eos=eos, blank=self.tokenizer.blank, options=self.options)
            texts.append(" ".join(self.tokenizer.decode(list(best[0].token_ids)).split()) if best else "")
        return texts


def model_decoder(network, tokenizer=None, decoder: str = "auto", beam_size: int | None = None,
                  lexicon: str | None = None) -> Callable:
    """The decoder ``avsr evaluate`` runs for ``network`` with its ``tokenizer`` (None: the characters).

    ``decoder`` ``auto`` is the model's own (joint CTC/attention beam search for a model with an attention
    decoder, with its beam unless ``beam_size`` says otherwise; else CTC, greedy unless ``beam_size`` > 1).

    Raises:
        OptionError: ``joint`` for a model without an attention decoder, a lexicon with joint decoding, or a CTC
            beam search over SentencePiece pieces (it reads characters).
    """
    tokenizer = tokenizer or CharTokenizer()
    decoding = getattr(network, "decoding", None)  # an imported auto_avsr model's (avsr.models.e2e_network)
    kind = decoder if decoder != "auto" else ("joint" if decoding else "ctc")
    if kind == "joint":
        if decoding is None:
            raise OptionError("--decoder joint: this model has no attention decoder (it is a CTC model); use "
                              "--decoder ctc or auto")
        if lexicon:
            raise OptionError("--lexicon applies to CTC beam search; add --decoder ctc, or leave the lexicon out")
        return JointDecoder(network, tokenizer, JointOptions(beam_size=beam_size or decoding.beam_size,
                                                             ctc_weight=decoding.ctc_weight,
                                                             length_bonus=decoding.length_bonus))
    beam_size = beam_size or 1
    if beam_size > 1 and not isinstance(tokenizer, CharTokenizer):
        raise OptionError(f"--beam-size {beam_size} with --decoder ctc: the CTC beam search reads character models; "
                          "this model's pieces decode greedily with --decoder ctc, or use --decoder joint")
    return make_decoder(beam_size, lexicon, tokenizer=tokenizer)


@dataclass(frozen=True)
class Reading:
    """Which stretches of each utterance a model reads: ``spans[i]`` the ``[start, stop)`` frames of utterance i
    (None: all of it), and ``segmentation`` how they were found (:data:`SEGMENTATIONS`)."""

    spans: list[list[tuple[int, int]] | None]
    segmentation: str = "whole"

    @property
    def segmented(self) -> int:
        """Utterances read in stretches rather than whole."""
        return sum(spans is not None for spans in self.spans)


def lips_signal(video: np.ndarray, face_found: np.ndarray, roi_size: int) -> np.ndarray:
    """:func:`~avsr.inference.sync.mouth_signal` of an evaluation item's centre crops ``(T, c, c)``, put back in
    the middle of ``roi_size`` crops (the mouth box lies inside the centre crop). Its sign is left as the
    principal component gives it: the lips' activity reads its spread alone."""
    pad = (roi_size - video.shape[1]) // 2
    roi = np.pad(video, ((0, 0), (pad, roi_size - video.shape[1] - pad), (pad, roi_size - video.shape[2] - pad)))
    return mouth_signal(roi, np.asarray(face_found, bool), np.full(len(face_found), np.nan))


def reading(items: list[dict], mode: str, network, vad: VadOptions | None, padded: bool) -> Reading:
    """The stretches ``network`` reads of each item in ``mode``: where an item is longer than the model's longest
    input (``max_input_s``), or ``padded`` (given a lead-in or trail) with ``vad`` on, its speech regions as
    ``avsr transcribe`` finds them (:func:`~avsr.inference.regions.find_regions` of
    :func:`~avsr.inference.regions.speech_probability`: Silero VAD on the item's audio, noise and all, the lips'
    movement in video mode); else the whole item. With ``vad`` None only items over the longest input are cut,
    at their least speech-like frames, as ``avsr transcribe --no-vad`` cuts them."""
    longest = getattr(network, "max_input_s", None)
    roi_size = network.preprocessing.roi_size
    spans = []
    for item in items:
        frames = len(item["video"])
        if not ((vad is not None and padded) or (longest is not None and frames > round(longest * VIDEO_FPS))):
            spans.append(None)
            continue
        lips = lips_signal(item["video"], item["face_found"], roi_size) if mode != "audio" else None
        audio = np.asarray(item["audio"], np.float32)[: frames * SAMPLES_PER_FRAME]
        probability = speech_probability(mode, audio, True, lips, np.asarray(item["face_found"], bool))
        spans.append(find_regions(probability, vad, longest))
    if not any(s is not None for s in spans):
        return Reading(spans)
    return Reading(spans, "vad" if vad is not None else "split")
