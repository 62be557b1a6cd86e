"""Transcribing one media file: lip ROIs and audio in, text with word timings and gate weights out.

Two stages, so that a batch can run the first in worker processes and the second on the model's
device: :func:`~avsr.inference.prepare.prepare_input` decodes the file (16 kHz audio, 96x96 mouth
crops at 25 fps) and :meth:`Transcriber.recognise` runs the model over windows of the recording, stitches the per-frame
log-probabilities of each chunk (the frames between two cuts), cuts it into speech segments at pauses, decodes each
segment (greedy or beam search) and forces the text back onto the frames for word timings and confidences, a chunk
at a time. Memory in the second stage is bounded by the window, so hour-long files are fine. Given the transcriber
(``reader``), the first stage already runs the model over the windows it has cut
(:mod:`avsr.inference.stream`), and the second takes those outputs where they are the ones it needs.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.align import align_words
from avsr.decoding.boundaries import refine_boundaries
from avsr.decoding.joint import joint_beam_search
from avsr.inference.chunks import Window, apart, chunk_plan, pause_cuts, quiet_lacking, tail_frames
from avsr.errors import OptionError
from avsr.inference.decoders import joint_options, make_ctc_decoder
from avsr.inference.options import TranscribeOptions  # noqa: F401 (also imported from here)
from avsr.inference.prepare import PreparedInput, prepare_input
from avsr.inference.regions import (find_regions, fit_to_speech, heard_or_loud, inside, no_speech_prob, read_spans,
                                    region_cuts, speech_extent,
                                    speech_probability)
from avsr.inference.transcript import Segment, Transcript, Word, with_faces  # noqa: F401 (also imported from here)
from avsr.inference.speaker import speaker_changes
from avsr.inference.sync import SYNC_MS, SyncEstimate, attention_offset, estimate_offset, frames_to_undo
from avsr.io.face_align import true_runs
from avsr.io.lip_roi import release_free_heap
from avsr.io.results import FileError, Reason
from avsr.io.spool import ShiftedFrames
from avsr.io.vad import seconds
from avsr.models.av_model import MODES as MODEL_MODES
from avsr.models.av_model import AVSRModel
from avsr.models.fusion import attention_summary
from avsr.models.loader import LoadedModel, load_model
from avsr.parallel import landmarkers_per_file
from avsr.preprocessing import FRAME_S, SAMPLES_PER_FRAME, VIDEO_FPS

# One chunk's outputs (Transcriber._read): start, stop, log_probs, audio_weight, attention, encoder_out, and the CTC
# scores of the quiet read after it
Chunk = tuple[int, int, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None,
              torch.Tensor | None]


def choose_mode(prepared: PreparedInput, requested: str, modes: tuple[str, ...] = MODEL_MODES,
                ) -> tuple[str, list[str]]:
    """The mode to run (one of the model's ``modes``) and the warnings that explain it.

    Raises:
        FileError: a mode that cannot apply to the file (``video`` without a face, ``audio`` without an
            audio track, or an audio-only model on a file without one), rather than words made up.
    """
    notes = []
    face_rate = float(prepared.face_found.mean()) if prepared.frames else 0.0
    mode = requested
    if requested in ("auto", "audio") and modes == ("audio",) and not prepared.has_audio:
        raise FileError(prepared.path, Reason.NO_AUDIO, "has no audio track, and this model reads audio alone; "
                        "use a model that reads the lips")
    if requested == "audio" and not prepared.has_audio:
        raise FileError(prepared.path, Reason.NO_AUDIO, "--mode audio: the file has no audio track; use --mode "
                        "video or auto")
    if requested == "video" and face_rate == 0.0:
        raise FileError(prepared.path, Reason.NO_FACE, "--mode video: no face was found in any frame; use --mode "
                        "audio or auto")
    if requested == "auto" and modes == ("audio",):
        mode = "audio"
    elif requested == "auto":
        if not prepared.has_audio:
            mode = "video"
            notes.append("no audio track: transcribed from the lips alone (video mode)")
        elif not prepared.has_video:
            mode = "audio"
            notes.append("no video track: transcribed from the audio alone (audio mode)")
        elif face_rate == 0.0:
            mode = "audio"
            notes.append("no face found in any frame: transcribed from the audio alone (audio mode)")
        else:
            mode = "av"
            if face_rate < 1.0:
                notes.append(f"face lost in {100 * (1 - face_rate):.0f}% of the frames: the gate leans on the "
                             "audio there")
    elif requested == "av" and face_rate == 0.0:
        notes.append("av mode was asked for but no face was found: the lips carry nothing here")
    elif requested == "av" and not prepared.has_audio:
        notes.append("av mode was asked for but the file has no audio track")
    return mode, notes


def speech_segments(log_probs: torch.Tensor, blank: int, pause_frames: int, max_frames: int,
                    word_break: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
    """Split ``(T, V)`` CTC output into ``[start, stop)`` stretches of speech at pauses (runs of frames
    whose most likely token is blank, at least ``pause_frames`` long) that fall between words: given
    ``word_break(a, b)`` (whether the tokens ``a`` then ``b`` have a word boundary between them), a pause
    inside a word (a model that gives a word's first letter, then the rest late) does not split it;
    stretches over ``max_frames`` are cut in the middle of their longest inner pause (or in half without
    one)."""
    best = log_probs.argmax(-1).numpy()
    silent = best == blank
    speech = ~silent
    for start, stop in true_runs(silent):
        if start > 0 and stop < len(silent) and (stop - start < pause_frames or (
                word_break is not None and not word_break(int(best[start - 1]), int(best[stop])))):
            speech[start:stop] = True  # a short pause, or one inside a word, stays inside the segment
    segments = []
    todo = [(int(a), int(b)) for a, b in true_runs(speech)]
    while todo:
        start, stop = todo.pop(0)
        if stop - start <= max_frames:
            segments.append((start, stop))
            continue
        inner = [(b - a, a, b) for a, b in true_runs(silent[start:stop]) if a > 0 and b < stop - start]
        cut = start + ((inner and max(inner)[1] + max(inner)[0] // 2) or (stop - start) // 2)
        todo[:0] = [(start, cut), (cut, stop)]
    # Widen each segment by up to two frames of the pause around it (never into a neighbour), so that
    # the alignment has room at the edges.
    bounds = [0] + [x for segment in segments for x in segment] + [len(silent)]
    return [(max(a - 2, bounds[2 * i]), min(b + 2, bounds[2 * i + 3])) for i, (a, b) in enumerate(segments)]


class Transcriber:
    """A model with its decoder, ready to transcribe many files (see :func:`transcribe`)."""

    def __init__(self, model: AVSRModel, tokenizer: CharTokenizer = CharTokenizer(), model_id: str = "",
                 options: TranscribeOptions = TranscribeOptions(), device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.tokenizer, self.model_id, self.options, self.device = tokenizer, model_id, options, device
        if options.mode not in ("auto",) + model.modes:
            raise OptionError(f"mode={options.mode!r}: this model runs {', '.join(model.modes)} (or auto)")
        self.joint = joint_options(model, options)
        self.decoder = None if self.joint else make_ctc_decoder(options, tokenizer)

    @property
    def reader(self) -> Transcriber | None:
        """What :func:`prepare_input` is given to read a file's windows while it is cut (None: not read so)."""
        wanted = self.options.read_while_cutting
        return self if (torch.device(self.device).type != "cpu" if wanted is None else wanted) else None

    def __call__(self, path: str | Path) -> Transcript:
        prepared = prepare_input(path, self.options.detect_every, self.options.crop_memory_mb,
                                 self.options.audio_memory_mb, landmarkers=landmarkers_per_file(1), reader=self.reader,
                                 roi_style=self.model.preprocessing.roi_style, every_face=self.options.every_face)
        try:
            return self.recognise(prepared)
        finally:
            prepared.close()

    @torch.no_grad()
    def _read(self, prepared: PreparedInput, mode: str, cuts: list[int], regions: list[tuple[int, int]],
              early: dict | None = None) -> Iterator[Chunk]:
        """Each chunk of the recording in the ``regions`` (the frames between two of ``cuts``, which hold the
        regions' edges), in order, as soon as its last window is read: ``(start, stop, log_probs (n, V),
        audio_weight (n,), attention (n, 2W + 1), encoder_out (n, D), tail (m, V))`` with n = stop - start (None
        where the model gives none); ``tail``: the CTC scores of the quiet read after the chunk (see
        :meth:`forward_group`). A file's outputs are never held whole (an imported model's CTC scores over ten
        minutes are 300 MB). ``early``: outputs of groups of windows already run (:class:`EarlyForward`)."""
        o, frames, spec = self.options, prepared.frames, self.model.preprocessing
        spec.check_roi(prepared.roi, str(prepared.path))
        plan = [window for window in chunk_plan(frames, cuts, round(o.window_s * spec.fps),
                                                round(o.overlap_s * spec.fps)) if inside(window, regions)]
        bounds = [0] + sorted(c for c in set(cuts) if 0 < c < frames) + [frames]
        parts, begin = [], 0  # the kept outputs of the chunk being read, window by window, and where it begins
        for first in range(0, len(plan), o.batch_size):
            group = tuple(plan[first:first + o.batch_size])
            kept = (early or {}).get(group)
            if kept is None:
                release_free_heap()  # what the last group and its decoding left: 1.9 GB grew to 2.6 GB without
                kept = self.forward_group(group, prepared.roi, prepared.face_found, prepared.audio, mode)
            for (_, _, keep_from, keep_to), outputs in zip(group, kept):
                begin = keep_from if not parts else begin
                parts.append(outputs[:4])
                if keep_to == bounds[bisect.bisect_right(bounds, keep_from)]:  # the end of the window's chunk
                    yield (begin, keep_to, *(None if pieces[0] is None else torch.cat(pieces)
                                             for pieces in zip(*parts)), outputs[4])
                    parts = []

    @torch.no_grad()
    def forward_group(self, group: tuple[Window, ...], roi, face_found, audio,
                      mode: str) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                                               torch.Tensor | None, torch.Tensor | None]]:
        """One forward pass over the windows of ``group`` (padded to the longest), and per window the
        outputs on its kept frames: ``log_probs (K, V)``, ``audio_weight (K,)``, ``attention
        (K, 2W + 1)`` and ``encoder_out (K, D)`` (None where the model gives none), and ``tail (m, V)``: a window
        that ends its chunk is read with quiet after it (:meth:`tail_after`; digital silence, its last crop held),
        whose CTC scores these are (None for the others). ``roi``, ``face_found`` and ``audio`` are read by ranges
        of frames (samples): arrays, spools, or what :class:`EarlyForward` holds."""
        spec = self.model.preprocessing
        step, (rows, columns) = spec.samples_per_frame, spec.crop_box()
        tails = [self.tail_after(audio, start, stop) if keep_to == stop else 0 for start, stop, _, keep_to in group]
        length = max(stop - start + tail for (start, stop, _, _), tail in zip(group, tails))
        video = torch.zeros(len(group), length, spec.crop_size, spec.crop_size, dtype=torch.uint8)
        found = torch.zeros(len(group), length, dtype=torch.bool)
        samples = torch.zeros(len(group), length * step)
        lengths = torch.tensor([stop - start + tail for (start, stop, _, _), tail in zip(group, tails)])
        for row, ((start, stop, _, _), tail) in enumerate(zip(group, tails)):
            video[row, : stop - start] = torch.from_numpy(roi[start:stop, rows, columns])
            found[row, : stop - start] = torch.from_numpy(face_found[start:stop])
            samples[row, : (stop - start) * step] = torch.from_numpy(audio[start * step: stop * step])
            if tail:  # the last crop held, as the recipe's pads hold a clip's edge crops; the sound stays silent
                video[row, stop - start: stop - start + tail] = video[row, stop - start - 1]
                found[row, stop - start: stop - start + tail] = found[row, stop - start - 1]
        video = spec.normalise_video(video, found, lengths)
        out = self.model(samples.to(self.device), (lengths * step).to(self.device), video.to(self.device),
                         lengths.to(self.device), found.to(self.device), mode)

        def kept(output: torch.Tensor | None, row: int, span: slice) -> torch.Tensor | None:
            return None if output is None else output[row, span].float().cpu()

        encoded = getattr(out, "encoder_out", None)
        return [(kept(out.log_probs, row, span), kept(out.audio_weight, row, span), kept(out.attention, row, span),
                 kept(encoded, row, span), kept(out.log_probs, row, slice(stop - start, stop - start + tail)) if tail
                 else None) for row, ((start, stop, _, _), span, tail) in enumerate(
                     zip(group, (slice(kf - start, kt - start) for start, _, kf, kt in group), tails))]

    @property
    def tail_frames(self) -> int:
        """Frames of quiet each chunk ends with (``options.tail_s``; none for a model that reads utterances)."""
        return tail_frames(self.model, self.options.tail_s)

    def tail_after(self, audio, start: int, stop: int) -> int:
        """Frames of quiet to read after frames ``[start, stop)`` of ``audio``, the end of a chunk
        (:func:`~avsr.inference.chunks.quiet_lacking` of :attr:`tail_frames`)."""
        step = self.model.preprocessing.samples_per_frame
        return quiet_lacking(audio[start * step: stop * step], self.tail_frames) if self.tail_frames else 0

    def _plan(self, prepared: PreparedInput, mode: str, regions: list[tuple[int, int]],
              probability: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
        """Where chunks end (:meth:`_cuts`) and the stretches read: each chunk from ``options.lead_s`` before its
        first frame loud or heard as speech (:func:`heard_or_loud`; with the segmentation on and audio; its whole
        region without). The quiet before a turn, with
        the face waiting to speak, cost a model trained on tightly cut clips its first word (av mode, conversations:
        18.8 % WER read from the pause's middle, 10.6 % from a frame before the speech; docs/history/2026-12-07.md)."""
        cuts = self._cuts(prepared, mode, regions)
        if not self.options.vad or not prepared.has_audio or mode == "video" or \
                getattr(self.model, "reads_utterances", False):
            return cuts, regions
        spans = read_spans(regions, cuts, heard_or_loud(prepared.audio, probability), self.options.vad_threshold,
                           round(self.options.lead_s * VIDEO_FPS))
        return sorted(set(cuts) | {a for a, _ in spans}), spans

    def _cuts(self, prepared: PreparedInput, mode: str, regions: list[tuple[int, int]]) -> list[int]:
        """Where chunks end: the regions' edges, where the face read changes, and pauses in the audio inside the
        regions (not for a model that reads whole utterances), none of the last two within a pause's length
        (``cut_pause_s``) of another cut or an edge (:func:`apart`)."""
        edges, pause = region_cuts(regions, prepared.frames), round(self.options.cut_pause_s * VIDEO_FPS)
        # Several faces: a chunk reads one (its crops are normalised over it).
        cuts = speaker_changes(prepared.face_ids) if mode != "audio" else []
        if prepared.has_audio and mode != "video" and not getattr(self.model, "reads_utterances", False):
            cuts += pause_cuts(prepared.audio, pause, prepared.roi if prepared.has_video else None)
        return sorted(set(edges) | set(apart(sorted(set(cuts)), edges, prepared.frames, pause)))

    def _word_break(self, before: int, after: int) -> bool:
        """Whether the tokens ``before`` then ``after`` end one word and start another."""
        return " " in self.tokenizer.decode([before, after])

    def _decode(self, log_probs: torch.Tensor, encoded: torch.Tensor | None = None) -> str:
        """The text of one stretch: joint CTC/attention beam search over its encoder output, or the CTC decoder."""
        if self.joint is None:
            return self.decoder(log_probs[None], torch.tensor([len(log_probs)]))[0]
        eos = self.tokenizer.eos
        hypotheses = joint_beam_search(self.model.decoder, encoded, log_probs, sos=eos, eos=eos,
                                       blank=self.tokenizer.blank, options=self.joint)
        return " ".join(self.tokenizer.decode(list(hypotheses[0].token_ids)).split()) if hypotheses else ""

    def _estimate(self, prepared: PreparedInput, attention: torch.Tensor | None) -> SyncEstimate | None:
        """The offset read from the model's attention where its frames agree on one, else from the mouth."""
        if attention is not None:
            estimate = attention_offset(attention.numpy(), prepared.face_found)
            if estimate is not None and estimate.sure:
                return estimate
        if prepared.mouth_signal is None:
            return None
        return estimate_offset(prepared.mouth_signal, prepared.audio)

    def _sync(self, prepared: PreparedInput, mode: str,
              attention: torch.Tensor | None) -> tuple[SyncEstimate | None, int, list[str]]:
        """The offset estimate, the frames to move the video back by (0: none) and what to tell the user."""
        if mode != "av" or not prepared.has_audio:
            return None, 0, []
        estimate = self._estimate(prepared, attention)
        if estimate is None or abs(estimate.offset_ms) <= SYNC_MS:
            return estimate, 0, []
        late = "the video lags" if estimate.offset_ms > 0 else "the video leads"
        found = (f"by about {abs(estimate.offset_ms):.0f} ms (from the {estimate.source}, "
                 f"confidence {estimate.confidence:.2f})")
        if self.options.av_sync == "auto" and estimate.sure:
            shift = frames_to_undo(estimate)
            return estimate, shift, [f"audio and video are out of step: {late} {found}; the video was moved back "
                                     f"by {abs(shift) * FRAME_S * 1000:.0f} ms before recognition (--av-sync off to "
                                     "keep it)"]
        action = "left as it is (--av-sync auto corrects it)" if estimate.sure else \
            "left as it is: the estimate is unsure"
        return estimate, 0, [f"audio and video may be out of step: {late} {found}; {action}"]

    def recognise(self, prepared: PreparedInput) -> Transcript:
        started = time.perf_counter()
        mode, notes = choose_mode(prepared, self.options.mode, self.model.modes)
        o = self.options
        probability = speech_probability(mode, prepared.audio, prepared.has_audio, prepared.mouth_signal,
                                         prepared.face_found)
        regions = find_regions(probability, o.vad_options, getattr(self.model, "max_input_s", None))
        cuts, spans = self._plan(prepared, mode, regions, probability)
        # The windows read while the file was cut, if they were read in this mode (and the video is not moved).
        early = prepared.early if prepared.early_mode == mode else None
        # An xattn model is run first as the file is: where its audio frames looked is the offset estimate.
        first = list(self._read(prepared, mode, cuts, spans, early)) \
            if mode == "av" and getattr(self.model.config, "fusion", None) == "xattn" else None
        estimate, shift, sync_notes = self._sync(prepared, mode, None if first is None else
                                                 _whole(first, 4, prepared.frames, 0.0))
        notes += sync_notes
        if shift:  # the video frame that belongs to audio frame t is t + shift; the clip's ends are held
            prepared = replace(prepared, roi=ShiftedFrames(prepared.roi, -shift),
                               face_found=ShiftedFrames(prepared.face_found, -shift)[:],
                               face_ids=None if prepared.face_ids is None else
                               ShiftedFrames(prepared.face_ids, -shift)[:])
            (cuts, spans), first = self._plan(prepared, mode, regions, probability), None
        chunks = first if first is not None else self._read(prepared, mode, cuts, spans, None if shift else early)
        heard = prepared.audio if self.options.refine_words and prepared.has_audio and mode != "video" else None
        segments, read = self._decode_chunks(chunks, prepared, probability, heard)
        weights, attention = _whole(read, 3, prepared.frames, float("nan")), _whole(read, 4, prepared.frames, 0.0)
        segments = with_faces(segments, prepared.face_ids, prepared.face_boxes, shift)
        return Transcript(
            path=prepared.path, text=" ".join(s.text for s in segments), segments=segments, mode=mode,
            model_id=self.model_id, input_sha256=prepared.sha256, duration_s=prepared.frames * FRAME_S,
            face_found_rate=float(prepared.face_found.mean()),
            audio_weight=weights.tolist() if weights is not None else [],
            warnings=prepared.warnings + notes,
            timings_s={"prepare": prepared.prepare_s, "recognise": time.perf_counter() - started},
            av_offset_ms=None if estimate is None else round(estimate.offset_ms, 1),
            av_sync_confidence=None if estimate is None else round(estimate.confidence, 3),
            av_sync_source=None if estimate is None else estimate.source,
            av_sync_shift_ms=round(shift * FRAME_S * 1000),
            speech_regions=seconds(regions),
            **self._attention_fields(attention))

    def _decode_chunks(self, chunks: Iterable[Chunk], prepared: PreparedInput, probability,
                       heard) -> tuple[list[Segment], list[Chunk]]:
        """The segments of each of the ``chunks`` (:meth:`_read`), decoded as it comes: a chunk's speech segments
        (the whole chunk for joint decoding, which reads it as one utterance); and the chunks without their
        large outputs (the CTC scores, the encoder's), for the transcript's audio weights and attention."""
        o, segments, read = self.options, [], []
        for chunk in chunks:
            start, stop, log_probs, _, _, encoded, tail = chunk
            if tail is not None:  # the words the model gives in the quiet after the chunk are the chunk's
                log_probs = torch.cat([log_probs, tail])
            if not torch.isfinite(log_probs).all():
                raise FileError(prepared.path, Reason.INVALID, f"the model gave NaN or infinite scores; its weights "
                                f"are damaged: re-export the bundle ({self.model_id})")
            read.append((start, stop, None, *chunk[3:5], None, None))
            spans = [(0, stop - start)] if self.joint else in_chunk(speech_segments(
                log_probs, self.tokenizer.blank, round(o.pause_s * VIDEO_FPS), round(o.max_segment_s * VIDEO_FPS),
                self._word_break), stop - start)
            segments += [segment for a, b in spans if (segment := self._segment(
                log_probs[a:b], start + a, probability, None if encoded is None else encoded[a:b], heard,
                stop)) is not None]
        return segments, read

    def _segment(self, log_probs: torch.Tensor, start: int, probability, encoded: torch.Tensor | None = None,
                 audio=None, chunk_stop: int | None = None) -> Segment | None:
        """The frames of ``log_probs`` ``(n, V)`` (and ``encoded`` ``(n, D)``), the file's from frame ``start`` on,
        decoded and their words timed; None where they read as nothing. The frames past ``chunk_stop`` are the
        quiet read after the chunk: the words are kept before it. With the segmentation on, the words are
        kept inside the segment's speech (:func:`fit_to_speech`); given the ``audio`` (16 kHz samples of the
        file), their boundaries are moved onto it (:func:`refine_boundaries`)."""
        stop = start + len(log_probs) if chunk_stop is None else min(start + len(log_probs), chunk_stop)
        text = self._decode(log_probs, encoded)
        if not text:
            return None
        words = fit_to_speech(align_words(log_probs, text, self.tokenizer, offset_s=start * FRAME_S),
                              start * FRAME_S, stop * FRAME_S)
        if self.options.vad:
            onset, offset = speech_extent(probability, start, stop, self.options.vad_threshold)
            words = fit_to_speech(words, onset * FRAME_S, offset * FRAME_S)
        if audio is not None:
            step = SAMPLES_PER_FRAME
            words = refine_boundaries(words, audio[start * step: stop * step], start * FRAME_S)
        return Segment(words[0].start_s, words[-1].end_s, text, words, no_speech_prob(probability, start, stop))

    def _attention_fields(self, attention: torch.Tensor | None) -> dict:
        if not self.options.attention:
            return {}
        if attention is None:  # asked for, but this model (or mode) has no cross-attention: empty lists
            return {"attention_offset_frames": [], "attention_peak": []}
        offset, peak = attention_summary(attention)
        return {"attention_offset_frames": offset.tolist(), "attention_peak": peak.tolist()}


def in_chunk(spans: list[tuple[int, int]], frames: int) -> list[tuple[int, int]]:
    """Speech ``spans`` of a chunk's CTC scores read with quiet after its ``frames``: a span that starts in the
    quiet (the chunk's last word, given late) joins the one before it, or starts on the chunk's last frame."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if a < frames:
            out.append((a, b))
        elif out:
            out[-1] = (out[-1][0], b)
        else:
            out.append((max(frames - 1, 0), b))
    return out


def _whole(chunks: list[Chunk], field: int, frames: int, fill: float) -> torch.Tensor | None:
    """One output of :meth:`Transcriber._read` (``field``: 3 the audio weight, 4 the attention) over the whole
    file: ``fill`` outside the chunks; None where the model gives none."""
    whole = None
    for chunk in chunks:
        if chunk[field] is not None:
            whole = torch.full((frames, *chunk[field].shape[1:]), fill) if whole is None else whole
            whole[chunk[0]:chunk[1]] = chunk[field]
    return whole


def transcribe(model, path: str | Path, options: TranscribeOptions = TranscribeOptions(),
               device: str = "cpu") -> Transcript:
    """Transcribe one media file.

    Args:
        model: what :func:`avsr.load_model` returned, or a name or path it loads.
        path: any file PyAV opens (video with audio, video alone, or audio alone).
        options: see :class:`TranscribeOptions`.

    Raises:
        MediaError: the file cannot be read or holds neither audio nor a face.
    """
    if not isinstance(model, LoadedModel):
        model = load_model(model, device)
    return Transcriber(model.network, model.tokenizer, model.id, options, device)(path)
