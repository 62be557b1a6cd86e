"""Words where the speech is: word timing against the synthesiser's truth, WER with lead-ins and trails of
quiet, and words written on non-speech, through ``avsr transcribe``'s Transcriber at its defaults.

Held-out synthetic speakers (``avsr synth``, the test split: faces and voices the embedded model never
saw). For each clip as made (speech within 55 ms of its start) and with ``--lead-s``/``--trail-s`` of
held first/last picture over white room tone at -60 dBFS (``avsr.io.writer.write_padded_copy``):

- WER, and the word start and end errors of exactly recognised clips (median, share within 50 and 100 ms),
  and the share of last-word ends within 100 ms;
- words per minute written on non-speech: the music recording of tests/fixtures (8 s, looped to 60 s),
  a still face over room tone (60 s) and white noise at -20 dBFS (60 s);
- with ``--no-vad`` the same with the segmentation off (the model reads the whole file), as a baseline in
  the same run;
- ``--refine off on``: the word boundaries as aligned, and moved onto the audio's energy envelope
  (``TranscribeOptions.refine_words``, :mod:`avsr.decoding.boundaries`), side by side in one run.

With ``--vad-choice``, first the voice activity detectors side by side on real recordings (the LibriVox
reading and the music of tests/fixtures, white noise at -20 dBFS and room tone at -60 dBFS, 30 s each at most):
the share of 32 ms / 30 ms frames each flags as speech, and its time per second of audio. Silero VAD
(avsr.io.vad) against WebRTC's (``pip install webrtcvad-wheels`` to include it; not a dependency).

    python -m bench.word_timing                    # 40 utterances, lead-ins 0 and 3 s, trail 2 s
    python -m bench.word_timing --utterances 80 --lead-s 0 1 3 10
    python -m bench.word_timing --vad-choice --utterances 0
    python -m bench.word_timing --refine off on    # word boundaries as aligned and moved onto the audio
    python -m bench.word_timing --utterances 300 --seed 12 --lead-s 0 --true-lengths   # the lengths probe
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.common import ROOT

MUSIC = ROOT / "tests" / "fixtures" / "music_morning_coffee_8k_20-28s.wav"


def held_out_clips(folder: Path, utterances: int, seed: int = 11) -> list[dict]:
    """The test split of a fresh synthetic corpus: records with ``video`` (absolute), ``text`` and ``words``."""
    import json

    from avsr.synth.corpus import SynthOptions, synthesize_corpus

    records = synthesize_corpus(folder, SynthOptions(num_utterances=utterances, speakers=6, test_speakers=2,
                                                     val_speakers=1, seed=seed), progress=False)["test"]
    out = []
    for record in records:
        video = folder / record["video"]
        side = json.loads(video.with_suffix(".json").read_text())
        out.append({"video": video, "text": record["text"], "words": side["words"]})
    return out


def timing_errors(clips: list[dict], transcripts: list, lead_s: float, show_misses: bool = False) -> dict:
    """Start/end errors (s) of the words of exactly recognised clips, and last-word end errors; with
    ``show_misses``, each start more than 100 ms off is printed with its clip and neighbours."""
    starts, ends, last = [], [], []
    for clip, transcript in zip(clips, transcripts):
        if [w.word for w in transcript.words] != [w["text"] for w in clip["words"]]:
            continue
        for i, (ours, truth) in enumerate(zip(transcript.words, clip["words"])):
            starts.append(ours.start_s - (truth["start_s"] + lead_s))
            ends.append(ours.end_s - (truth["end_s"] + lead_s))
            if show_misses and abs(starts[-1]) > 0.1:
                context = " ".join(w["text"] for w in clip["words"][max(0, i - 1):i + 2])
                print(f"  miss: {clip['video'].name} word {i} {truth['text']!r} ({context}): start "
                      f"{1000 * starts[-1]:+.0f} ms, end {1000 * ends[-1]:+.0f} ms")
        last.append(transcript.words[-1].end_s - (clip["words"][-1]["end_s"] + lead_s))
    starts, ends, last = (np.abs(np.array(x)) if x else np.array([np.nan]) for x in (starts, ends, last))
    return {"exact clips": len(last), "start median ms": 1000 * np.median(starts),
            "start within 50 ms": np.mean(starts <= 0.05), "start within 100 ms": np.mean(starts <= 0.1),
            "end median ms": 1000 * np.median(ends), "last end within 100 ms": np.mean(last <= 0.1)}


class TrueLengths:
    """A probe of the word-boundary refinement: ``avsr transcribe``'s Transcriber at its defaults, but each
    segment's refinement is given the true durations of its words (the synthesiser's) as their spoken lengths.
    How far this is above the default says how much of the remaining error is the guessed lengths, with the
    same boundary evidence; words of a clip not read exactly keep the guess."""

    def __init__(self, model, clips: list[dict]) -> None:
        import avsr.inference.transcribe as transcribe

        self.module, self.refine, self.truth = transcribe, transcribe.refine_boundaries, None
        self.reader = transcribe.Transcriber(model.network, model.tokenizer, model.id, transcribe.TranscribeOptions())

    def _refine(self, words: list, audio: np.ndarray, offset_s: float):
        truth, self.truth = self.truth[:len(words)], self.truth[len(words):]
        lengths = None
        if [w.word for w in words] == [t["text"] for t in truth]:
            lengths = np.array([t["end_s"] - t["start_s"] for t in truth])
        return self.refine(words, audio, offset_s, lengths=lengths)

    def __call__(self, path: Path, clip: dict):
        self.truth, self.module.refine_boundaries = list(clip["words"]), self._refine
        try:
            return self.reader(path)
        finally:
            self.module.refine_boundaries = self.refine


def nonspeech_files(folder: Path, face_clip: Path) -> dict[str, Path]:
    """60 s each of music (with no picture), a still face over room tone, and white noise at -20 dBFS."""
    import librosa

    from avsr.io.media import load_media
    from avsr.io.writer import write_video

    rng = np.random.default_rng(0)
    music, rate = librosa.load(MUSIC, sr=16000)
    still = load_media(face_clip).video[:1]
    files = {"music": (None, np.resize(music, 60 * 16000)),
             "still face, room tone": (np.repeat(still, 60 * 25, 0), 1e-3 * rng.standard_normal(60 * 16000)),
             "white noise -20 dBFS": (None, 0.1 * rng.standard_normal(60 * 16000))}
    return {name: write_video(folder / f"nonspeech_{i}.mp4", video, 25, audio.astype(np.float32))
            for i, (name, (video, audio)) in enumerate(files.items())}


SPEECH = ROOT / "tests" / "fixtures" / "sense_and_sensibility_01_austen_64kb-0880.wav"


def vad_choice() -> None:
    """The share of frames Silero and WebRTC's VAD flag as speech on speech, music, noise and room tone."""
    import time

    import librosa

    from avsr.io.vad import silero_probability

    rng = np.random.default_rng(0)
    recordings = {"speech (LibriVox)": librosa.load(SPEECH, sr=16000)[0],
                  "music": np.resize(librosa.load(MUSIC, sr=16000)[0], 30 * 16000),
                  "white noise -20 dBFS": 0.1 * rng.standard_normal(30 * 16000),
                  "room tone -60 dBFS": 1e-3 * rng.standard_normal(30 * 16000)}
    try:
        import webrtcvad
    except ImportError:
        webrtcvad = None
        print("(webrtcvad not installed: pip install webrtcvad-wheels to compare it)")
    print("| recording | seconds | Silero: speech frames | ms per s | WebRTC (3): speech frames | ms per s |\n"
          "|---|---|---|---|---|---|")
    silero_probability(np.zeros(16000, np.float32))  # the ONNX session is made once, before the timing
    for name, audio in recordings.items():
        audio = audio.astype(np.float32)
        started = time.perf_counter()
        silero = float((silero_probability(audio) >= 0.5).mean())
        silero_ms = 1000 * (time.perf_counter() - started) / (len(audio) / 16000)
        row = f"| {name} | {len(audio) / 16000:.1f} | {100 * silero:.1f} % | {silero_ms:.1f} |"
        if webrtcvad is not None:
            vad, pcm, step = webrtcvad.Vad(3), (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), 480
            started = time.perf_counter()
            flags = [vad.is_speech(pcm[2 * i: 2 * (i + step)], 16000) for i in range(0, len(audio) - step + 1, step)]
            webrtc_ms = 1000 * (time.perf_counter() - started) / (len(audio) / 16000)
            row += f" {100 * np.mean(flags):.1f} % | {webrtc_ms:.2f} |"
        print(row + (" | |" if webrtcvad is None else ""), flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=40, help="corpus size (about a third are held out)")
    parser.add_argument("--lead-s", type=float, nargs="+", default=[0.0, 3.0])
    parser.add_argument("--trail-s", type=float, default=2.0)
    parser.add_argument("--refine", nargs="+", choices=("on", "off"), default=["on"],
                        help="word boundaries moved onto the audio's energy envelope (on, the default) or not")
    parser.add_argument("--vad-choice", action="store_true", help="first compare Silero's and WebRTC's VAD")
    parser.add_argument("--seed", type=int, default=11, help="the corpus's seed (11: the one the refinement was tuned on)")
    parser.add_argument("--show-misses", action="store_true", help="print every word start more than 100 ms off")
    parser.add_argument("--true-lengths", action="store_true",
                        help="a probe: one more reader whose refinement is given each word's true duration (the "
                             "synthesiser's) instead of the one guessed from its spelling")
    args = parser.parse_args()
    if args.vad_choice:
        vad_choice()
    if args.utterances == 0:
        return

    from avsr.inference.transcribe import TranscribeOptions, Transcriber
    from avsr.io.writer import write_padded_copy
    from avsr.models.loader import load_model
    from avsr.text import word_error_rate

    model = load_model("synth-grid-tiny")
    readers = {f"vad, refine {r}" + (" (default)" if r == "on" else ""): Transcriber(
        model.network, model.tokenizer, model.id, TranscribeOptions(refine_words=r == "on")) for r in args.refine}
    readers["--no-vad"] = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(vad=False))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = held_out_clips(folder / "corpus", args.utterances, args.seed)
        if args.true_lengths:
            readers["vad, refine with true lengths (probe)"] = TrueLengths(model, clips)
        print(f"{len(clips)} held-out clips; embedded model synth-grid-tiny\n")
        print("| segmentation | lead-in / trail | WER % | exact clips | word start error, median | start within "
              "50 / 100 ms | end error, median | last end within 100 ms |\n|---|---|---|---|---|---|---|---|")
        for lead in args.lead_s:
            trail = args.trail_s if lead else 0.0
            inputs = [write_padded_copy(c["video"], folder / f"lead{lead}_{i}.mp4", lead, trail) if lead else c["video"]
                      for i, c in enumerate(clips)]
            for label, reader in readers.items():
                transcripts = [reader(path, clip) if isinstance(reader, TrueLengths) else reader(path)
                               for path, clip in zip(inputs, clips)]
                wer = 100 * word_error_rate([c["text"] for c in clips], [t.text for t in transcripts])
                e = timing_errors(clips, transcripts, lead, args.show_misses)
                print(f"| {label} | {lead:g} s / {trail:g} s | {wer:.1f} | {e['exact clips']} | "
                      f"{e['start median ms']:.0f} ms | {100 * e['start within 50 ms']:.0f} / "
                      f"{100 * e['start within 100 ms']:.0f} % | {e['end median ms']:.0f} ms | "
                      f"{100 * e['last end within 100 ms']:.0f} % |", flush=True)
        readers.pop("vad, refine with true lengths (probe)", None)
        print("\n| non-speech (60 s) | " + " | ".join(f"words, {label}" for label in readers) + " |\n|---|"
              + "---|" * len(readers))
        for name, path in nonspeech_files(folder, clips[0]["video"]).items():
            counts = [len(reader(path).words) for reader in readers.values()]
            print(f"| {name} | " + " | ".join(map(str, counts)) + " |", flush=True)


if __name__ == "__main__":
    main()
